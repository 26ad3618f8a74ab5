"""Sentences per second of AisParser on 50,000 type 1 lines (run: python measure_throughput.py).

Not a test: prints the figure, best of three runs on one core, and where the time goes.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time

from pyais import encode_dict
from pyais.messages import AISSentence

from borderwatch.sensors.ais import AisParser
from borderwatch.sensors.base import Accepted, feed_all

LINES = 50_000


def stream() -> bytes:
    out = []
    for k in range(LINES):
        msg: dict[str, str | int | float | bytes | bool] = {
            "type": 1,
            "mmsi": 262000000 + k % 500,
            "status": 0,
            "speed": 5.0 + k % 100 / 10,
            "lat": 42.0 + (k % 1000) / 10000,
            "lon": 19.0 + (k % 777) / 10000,
            "course": float(k % 3600) / 10,
            "heading": k % 360,
            "second": k % 60,
        }
        out.extend(encode_dict(msg, talker_id="AI", sentence_type="VDM", radio_channel="AB"[k % 2]))
    return "".join(f"{ln}\r\n" for ln in out).encode("ascii")


def main() -> None:
    data = stream()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        items = feed_all(AisParser(), data)
        best = min(best, time.perf_counter() - t0)
    assert len(items) == LINES
    assert all(isinstance(i, Accepted) for i in items)
    print(f"AisParser: {LINES} type 1 lines in {best:.3f} s = {LINES / best:,.0f} sentences/s")
    raw = data.split(b"\r\n")[:-1]
    t0 = time.perf_counter()
    for ln in raw:
        AISSentence(ln).decode().asdict()
    py = time.perf_counter() - t0
    print(f"  of which pyais sentence + decode + asdict alone: {py:.3f} s ({LINES / py:,.0f}/s)")
    if "--profile" in sys.argv:
        prof = cProfile.Profile()
        prof.runcall(feed_all, AisParser(), data)
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
