"""``borderwatch bench parsers``: messages per second of each device parser on one core.

Each parser is fed a synthetic recording of 50,000 messages in 64 KiB chunks, as
``borderwatch parse`` reads files; the figure is the best of three runs. The recordings are
generated here (deterministically), so the figures need no files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial, reduce
from typing import Any

from borderwatch.sensors.base import Accepted, StreamParser
from borderwatch.sensors.registry import make_parser

MESSAGES = 50_000
CHUNK = 64 * 1024


def _nmea(body: str) -> str:
    checksum = reduce(lambda acc, ch: acc ^ ord(ch), body, 0)
    return f"${body}*{checksum:02X}\r\n"


def nmea_stream(n: int = MESSAGES) -> bytes:
    """A GPS at work: alternating GGA and RMC sentences."""
    out = []
    for k in range(n // 2):
        lat = f"42{3 + k % 50:02d}.{k % 10000:04d}"
        lon = f"019{6 + k % 40:02d}.{(7 * k) % 10000:04d}"
        t = f"09{k // 60 % 60:02d}{k % 60:02d}.00"
        out.append(_nmea(f"GPGGA,{t},{lat},N,{lon},E,1,09,0.9,12.{k % 10},M,41.2,M,,"))
        out.append(_nmea(f"GPRMC,{t},A,{lat},N,{lon},E,9.72,90.{k % 10},231126,4.3,E,A"))
    return "".join(out).encode("ascii")


def ais_stream(n: int = MESSAGES) -> bytes:
    """Vessel traffic: AIS type 1 position reports from 500 vessels."""
    from pyais import encode_dict

    out: list[str] = []
    for k in range(n):
        msg: dict[str, Any] = {
            "type": 1,
            "mmsi": 262000000 + k % 500,
            "speed": 5.0 + k % 100 / 10,
            "lat": 42.0 + (k % 1000) / 10000,
            "lon": 19.0 + (k % 777) / 10000,
            "course": float(k % 3600) / 10,
            "heading": k % 360,
            "second": k % 60,
        }
        out.extend(encode_dict(msg, talker_id="AI", sentence_type="VDM", radio_channel="AB"[k % 2]))
    return "".join(f"{line}\r\n" for line in out).encode("ascii")


def gmp343_stream(n: int = MESSAGES) -> bytes:
    """A CO2 probe streaming readings with temperature."""
    return "".join(
        f"CO2= {400 + (k % 2100) + 0.1 * (k % 10):7.1f} ppm  21.{k % 10} 'C\r\n" for k in range(n)
    ).encode("ascii")


def senseair_stream(n: int = MESSAGES) -> bytes:
    """Modbus RTU polling of a SenseAir sensor: request and response per reading."""
    from borderwatch.sensors.co2 import modbus_frame

    request = bytes.fromhex("FE0400030001D5C5")
    out = bytearray()
    for k in range(n):
        ppm = 400 + k % 2100
        out += request + modbus_frame(bytes([0xFE, 0x04, 0x02, ppm >> 8, ppm & 0xFF]))
    return bytes(out)


STREAMS: dict[str, Callable[[int], bytes]] = {
    "nmea": nmea_stream,
    "ais": ais_stream,
    "gmp343": gmp343_stream,
    "senseair": senseair_stream,
}


def accepted_per_second(
    make: Callable[[], StreamParser], data: bytes, runs: int = 3
) -> tuple[int, float]:
    """Accepted messages and the best rate (messages/s) over ``runs`` chunked passes."""
    best = float("inf")
    count = 0
    for _ in range(runs):
        parser = make()
        start = time.perf_counter()
        count = 0
        for pos in range(0, len(data), CHUNK):
            count += sum(isinstance(i, Accepted) for i in parser.feed(data[pos : pos + CHUNK]))
        count += sum(isinstance(i, Accepted) for i in parser.close())
        best = min(best, time.perf_counter() - start)
    return count, count / best


def run_parser_bench(messages: int = MESSAGES) -> dict[str, Any]:
    """Figures for every parser; ``text`` is the printable table."""
    rows = []
    for name, make_stream in STREAMS.items():
        data = make_stream(messages)
        count, rate = accepted_per_second(partial(make_parser, name), data)
        rows.append({"parser": name, "messages": count, "bytes": len(data), "per_s": round(rate)})
    lines = [
        f"Device parsers: {messages:,} synthetic messages each, 64 KiB chunks, best of 3",
        f"{'parser':<10} {'accepted':>9} {'messages/s':>11}",
    ]
    lines += [f"{r['parser']:<10} {r['messages']:>9} {r['per_s']:>11,}" for r in rows]
    return {"parsers": rows, "text": "\n".join(lines)}
