"""Throughput of the CO2 parsers: messages per second on 50,000 messages, one core.

``python tests/data/co2/measure_throughput.py`` feeds each parser a synthetic stream in 64 KiB
chunks (as ``borderwatch parse`` does) and prints the best of three runs.
"""

from __future__ import annotations

import time

from borderwatch.sensors.base import Accepted, StreamParser
from borderwatch.sensors.co2 import Gmp343Parser, SenseAirParser, modbus_frame
from borderwatch.sensors.registry import AutoParser

N = 50_000
CHUNK = 64 * 1024
READ_CO2 = bytes.fromhex("FE0400030001D5C5")


def gmp343_stream() -> bytes:
    return "".join(
        f"CO2= {400 + (k % 2100) + 0.1 * (k % 10):7.1f} ppm  21.{k % 10} 'C\r\n" for k in range(N)
    ).encode("ascii")


def senseair_stream() -> bytes:
    out = bytearray()
    for k in range(N):
        ppm = 400 + k % 2100
        out += READ_CO2 + modbus_frame(bytes([0xFE, 0x04, 0x02, ppm >> 8, ppm & 0xFF]))
    return bytes(out)


def measure(make: type[StreamParser], data: bytes) -> float:
    best = float("inf")
    for _ in range(3):
        parser = make()
        t0 = time.perf_counter()
        count = 0
        for pos in range(0, len(data), CHUNK):
            count += sum(isinstance(i, Accepted) for i in parser.feed(data[pos : pos + CHUNK]))
        count += sum(isinstance(i, Accepted) for i in parser.close())
        best = min(best, time.perf_counter() - t0)
        assert count == N, count
    return N / best


if __name__ == "__main__":
    gmp, sen = gmp343_stream(), senseair_stream()
    for name, cls, data in (
        ("gmp343", Gmp343Parser, gmp),
        ("auto (gmp343 lines)", AutoParser, gmp),
        ("senseair (request + response)", SenseAirParser, sen),
    ):
        print(f"{name:32s} {measure(cls, data):12,.0f} messages/s")
