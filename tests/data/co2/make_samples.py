"""Writes the synthetic CO2 recordings in this directory (run from the repository root).

``python tests/data/co2/make_samples.py`` rewrites ``gmp343_truck_inspection.txt`` and
``senseair_capture.bin`` byte for byte (fixed seeds); see README.txt for their contents.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from borderwatch.sensors.co2 import modbus_frame

HERE = Path(__file__).resolve().parent

READ_CO2 = bytes.fromhex("FE0400030001D5C5")  # read input register 3 (SenseAir documentation)
READ_STATUS_TO_CO2 = modbus_frame(bytes.fromhex("FE0400000004"))  # input registers 0..3


def co2_profile(k: int, n: int, baseline: float, peak: float) -> float:
    """Baseline, the probe in the cargo space from 30 % to 75 % of the run, then baseline."""
    t_in, t_out = int(n * 0.3), int(n * 0.75)
    if k < t_in:
        return baseline
    if k < t_out:
        return baseline + (peak - baseline) * (1.0 - math.exp(-(k - t_in) / (n * 0.06)))
    top = baseline + (peak - baseline) * (1.0 - math.exp(-(t_out - t_in) / (n * 0.06)))
    return baseline + (top - baseline) * math.exp(-(k - t_out) / (n * 0.03))


def gmp343_stream() -> bytes:
    rng = random.Random(343)
    n = 200
    lines = []
    for k in range(n):
        ppm = co2_profile(k, n, 420.0, 2500.0) + rng.gauss(0.0, 3.0)
        temp = 21.5 + rng.gauss(0.0, 0.1)
        lines.append(f"CO2= {ppm:7.1f} ppm  {temp:4.1f} 'C")
        if k == 20:
            lines.append("E 1: CO2 MEASUREMENT ERROR")  # one probe status line
        if k == 59:
            lines.append("CO2= 4#@!.2 ppm")  # line noise while the probe is moved
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def senseair_capture() -> bytes:
    rng = random.Random(8)
    n = 40
    out = bytearray()
    for k in range(n):
        ppm = round(co2_profile(k, n, 430.0, 2400.0) + rng.gauss(0.0, 5.0))
        if k % 10 == 5:  # registers 0..3: meter status 0, alarm, output, CO2
            out += READ_STATUS_TO_CO2
            out += modbus_frame(bytes([0xFE, 0x04, 0x08, 0, 0, 0, 0, 0, 0, ppm >> 8, ppm & 0xFF]))
        else:
            out += READ_CO2
            response = bytearray(modbus_frame(bytes([0xFE, 0x04, 0x02, ppm >> 8, ppm & 0xFF])))
            if k == 17:
                response[4] ^= 0x10  # one corrupted byte: a CRC mismatch
            out += response
        if k in (3, 22, 31):
            out += b"\x00\xff\x55\x00"[: 2 + k % 3]  # line noise between frames
        if k == 12:
            out += READ_CO2 + modbus_frame(bytes([0xFE, 0x84, 0x02]))  # an exception response
    out += READ_CO2 + modbus_frame(bytes([0xFE, 0x04, 0x02, 0x01, 0xA4]))[:4]  # cut off
    return bytes(out)


if __name__ == "__main__":
    (HERE / "gmp343_truck_inspection.txt").write_bytes(gmp343_stream())
    (HERE / "senseair_capture.bin").write_bytes(senseair_capture())
