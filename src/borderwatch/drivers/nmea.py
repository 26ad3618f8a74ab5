"""Drivers of NMEA 0183 devices: the own GNSS receiver, AIS, and a radar's target output.

They differ only in the parser: GPS and radar read NMEA sentences; AIS reads the ``auto``
format, because AIS receivers interleave AIVDM/AIVDO with ordinary NMEA sentences (their own
GNSS fix, heading). Offsets, mount angles and sigmas in their settings are applied downstream,
where readings become detections.
"""

from __future__ import annotations

from functools import cached_property

from borderwatch.config.devices import AisDevice, GpsDevice, RadarDevice
from borderwatch.drivers.base import Driver
from borderwatch.sensors.base import Accepted


class GpsDriver(Driver[GpsDevice]):
    """The platform's GNSS receiver: fixes, velocity, heading and accuracy sentences."""

    parser_name = "nmea"


class RadarDriver(Driver[RadarDevice]):
    """A radar's tracked-target output (TTM, TLL)."""

    parser_name = "nmea"


class AisDriver(Driver[AisDevice]):
    """An AIS receiver or transponder; reports of ``own_mmsi`` are marked ``own``."""

    parser_name = "auto"

    def _accepted_item(self, item: Accepted) -> Accepted:
        data = item.data
        if data.get("kind") == "ais" and not data.get("own") and data.get("mmsi") in self._own:
            return Accepted(item.key, {**data, "own": True}, item.line)
        return item

    @cached_property
    def _own(self) -> frozenset[int]:
        return frozenset(self.config.own_mmsi)
