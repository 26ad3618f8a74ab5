"""Transports: bytes and messages in from devices (serial, UDP/TCP, MQTT). No interpretation here.

:func:`~borderwatch.drivers.registry.make_driver` builds the driver of a configured device;
``await driver.run()`` reads it until cancelled, handing each accepted message to a sink as a
:class:`~borderwatch.drivers.base.Reading`; ``driver.health()`` reports its
:class:`~borderwatch.drivers.base.SensorHealth`. ``docs/drivers.md`` is the reference.
"""

from borderwatch.drivers.base import Driver, Reading, SensorHealth
from borderwatch.drivers.registry import DRIVER_PATHS, make_driver
from borderwatch.drivers.transport import TransportError

__all__ = ["DRIVER_PATHS", "Driver", "Reading", "SensorHealth", "TransportError", "make_driver"]
