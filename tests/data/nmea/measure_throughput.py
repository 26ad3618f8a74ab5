"""Sentences per second of NmeaParser on 50,000 GGA + RMC lines (run: python measure_throughput.py).

Not a test: prints the figure, best of three runs on one core, and where the time goes.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from functools import reduce

import pynmea2

from borderwatch.sensors.base import Accepted, feed_all
from borderwatch.sensors.nmea import NmeaParser

LINES = 50_000


def sentence(body: str) -> str:
    return f"${body}*{reduce(lambda acc, ch: acc ^ ord(ch), body, 0):02X}"


def stream() -> bytes:
    out = []
    for k in range(LINES // 2):
        s = k % 60
        lat = f"42{3 + k % 50:02d}.{k % 10000:04d}"
        lon = f"019{6 + k % 40:02d}.{(7 * k) % 10000:04d}"
        t = f"09{k // 60 % 60:02d}{s:02d}.00"
        out.append(sentence(f"GPGGA,{t},{lat},N,{lon},E,1,09,0.9,12.{k % 10},M,41.2,M,,"))
        out.append(sentence(f"GPRMC,{t},A,{lat},N,{lon},E,9.72,90.{k % 10},231126,4.3,E,A"))
    return "".join(f"{ln}\r\n" for ln in out).encode("ascii")


def main() -> None:
    data = stream()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        items = feed_all(NmeaParser(), data)
        best = min(best, time.perf_counter() - t0)
    assert len(items) == LINES
    assert all(isinstance(i, Accepted) for i in items)
    print(f"NmeaParser: {LINES} GGA+RMC lines in {best:.3f} s = {LINES / best:,.0f} sentences/s")
    lines = data.decode().split("\r\n")[:-1]
    t0 = time.perf_counter()
    for ln in lines:
        pynmea2.parse(ln, check=True)
    pn = time.perf_counter() - t0
    print(f"  of which pynmea2.parse alone: {pn:.3f} s ({LINES / pn:,.0f} sentences/s)")
    if "--profile" in sys.argv:
        prof = cProfile.Profile()
        prof.runcall(feed_all, NmeaParser(), data)
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
