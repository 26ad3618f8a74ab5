"""Drivers of CO2 detectors: a streaming GMP343-style probe and a polled SenseAir sensor."""

from __future__ import annotations

import asyncio

from borderwatch.config.devices import Gmp343Device, SenseAirDevice
from borderwatch.drivers.base import Driver
from borderwatch.drivers.transport import Transport
from borderwatch.sensors.co2 import REG_CO2, REG_METER_STATUS, modbus_frame

#: Modbus function "read input registers".
READ_INPUT_REGISTERS = 0x04


class Gmp343Driver(Driver[Gmp343Device]):
    """A Vaisala GMP343-style probe in streaming (``R``) mode: one ASCII line per reading."""

    parser_name = "gmp343"


def read_co2_request(slave: int) -> bytes:
    """The Modbus RTU request for input registers 0-3 (meter status .. CO2) of ``slave``.

    Reading the status with the CO2 register lets the parser refuse readings the sensor itself
    flags as bad.
    """
    count = REG_CO2 - REG_METER_STATUS + 1
    body = bytes(
        (slave, READ_INPUT_REGISTERS, REG_METER_STATUS >> 8, REG_METER_STATUS & 0xFF, 0, count)
    )
    return modbus_frame(body)


class SenseAirDriver(Driver[SenseAirDevice]):
    """A SenseAir K30/S8-style sensor, polled every ``poll_interval_s`` over Modbus RTU.

    A poll that got no answer (no response and no rejected bytes) by the next poll is counted
    as ``no_response``; the sensor then goes stale. An echo of the request (RS-485 adaptors
    without echo suppression, ``loop://``) is recognised by the parser and ignored.
    """

    parser_name = "senseair"

    async def _converse(self, transport: Transport) -> None:
        request = read_co2_request(self.config.slave)
        items_at_poll: int | None = None
        while True:
            if items_at_poll is not None and self._items == items_at_poll:
                self._device_error(
                    "no_response",
                    f"slave {self.config.slave} did not answer within "
                    f"{self.config.poll_interval_s:g} s",
                )
            items_at_poll = self._items
            await transport.write(request)
            await asyncio.sleep(self.config.poll_interval_s)
