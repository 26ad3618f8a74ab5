"""Driver of networked sensors that publish JSON Detection messages on an MQTT topic."""

from __future__ import annotations

from borderwatch.config.devices import MqttDetectionsDevice
from borderwatch.drivers.base import Driver
from borderwatch.sensors.base import StreamParser
from borderwatch.sensors.jsondet import JsonDetectionParser


class MqttDetectionDriver(Driver[MqttDetectionsDevice]):
    """Each MQTT payload is one Detection (format ``json_detection``, see ``docs/drivers.md``)."""

    def _new_parser(self) -> StreamParser:
        return JsonDetectionParser()
