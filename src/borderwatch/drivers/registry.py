"""Drivers found by device type, imported only when a device of that type is configured.

As python-can's interface registry: a node that reads only NMEA never imports aiomqtt or the
message schema.
"""

from __future__ import annotations

import importlib
import random
import time
from collections.abc import Callable
from typing import Any

from borderwatch.config.devices import AnyDevice
from borderwatch.drivers.base import Driver, Reading

#: Device type -> ``module:Class`` of its driver.
DRIVER_PATHS: dict[str, str] = {
    "gps": "borderwatch.drivers.nmea:GpsDriver",
    "ais": "borderwatch.drivers.nmea:AisDriver",
    "radar": "borderwatch.drivers.nmea:RadarDriver",
    "gmp343": "borderwatch.drivers.co2:Gmp343Driver",
    "senseair": "borderwatch.drivers.co2:SenseAirDriver",
    "mqtt_detections": "borderwatch.drivers.detections:MqttDetectionDriver",
    "thermal_camera": "borderwatch.drivers.camera:CameraDriver",
    "nightvision_camera": "borderwatch.drivers.camera:CameraDriver",
}


def driver_class(device_type: str) -> type[Driver[Any]]:
    """The driver class of ``device_type``, imported now; KeyError for an unknown type."""
    path = DRIVER_PATHS[device_type]
    module_name, _, class_name = path.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise TypeError(f"{path} is not a Driver")
    return cls


def make_driver(
    config: AnyDevice,
    sink: Callable[[Reading], None],
    *,
    clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
) -> Driver[Any]:
    """A driver for the device ``config`` (not started: run it with ``await driver.run()``)."""
    return driver_class(config.type)(config, sink, clock=clock, rng=rng)
