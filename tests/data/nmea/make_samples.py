"""Writes the synthetic NMEA recordings of this folder (run: python make_samples.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from functools import reduce
from pathlib import Path

HERE = Path(__file__).parent
START = datetime(2026, 11, 23, 9, 0, 0, tzinfo=UTC)
M_PER_DEG_LAT = 111_320.0


def sentence(body: str) -> str:
    return f"${body}*{reduce(lambda acc, ch: acc ^ ord(ch), body, 0):02X}"


def ddmm(value: float, lat: bool) -> str:
    deg = int(abs(value))
    minutes = (abs(value) - deg) * 60.0
    hemi = ("N" if value >= 0 else "S") if lat else ("E" if value >= 0 else "W")
    width = 2 if lat else 3
    return f"{deg:0{width}d}{minutes:07.4f},{hemi}"


def hhmmss(t: datetime) -> str:
    return t.strftime("%H%M%S.") + f"{t.microsecond // 10_000:02d}"


def boat() -> list[str]:
    """A patrol boat heading 090° at 5 m/s for 60 s, fixes at 1 Hz, small weaving."""
    lines = []
    lat0, lon0 = 42.0500, 19.1000
    speed = 5.0
    for k in range(60):
        t = START + timedelta(seconds=k)
        heading = 90.0 + 2.0 * math.sin(k / 9.0)
        lat = lat0 + 0.3 * math.sin(k / 7.0) / M_PER_DEG_LAT
        lon = lon0 + speed * k / (M_PER_DEG_LAT * math.cos(math.radians(lat0)))
        knots = speed * 3600.0 / 1852.0
        pos = f"{ddmm(lat, True)},{ddmm(lon, False)}"
        lines.append(sentence(f"GPGGA,{hhmmss(t)},{pos},2,11,0.8,3.{k % 10},M,41.2,M,2.0,0120"))
        lines.append(
            sentence(f"GPRMC,{hhmmss(t)},A,{pos},{knots:.2f},{heading:.1f},{t:%d%m%y},4.3,E,D")
        )
        lines.append(
            sentence(
                f"GPVTG,{heading:.1f},T,{heading - 4.3:.1f},M,{knots:.2f},N,{speed * 3.6:.2f},K,D"
            )
        )
        lines.append(sentence(f"HEHDT,{heading + 1.5:.2f},T"))
        lines.append(sentence(f"GPGST,{hhmmss(t)},1.1,0.9,0.6,35.0,0.8,0.7,1.6"))
    return lines


def radar() -> list[str]:
    """Three targets seen by a coastal radar every 2.5 s for 50 s (TTM then TLL)."""
    lines = []
    site_lat, site_lon = 41.8700, 19.3600
    targets = [
        (1, "SKIFF1", 2.0, 45.0, 8.0, 270.0),  # nm, deg, kn, deg
        (2, "", 3.5, 120.0, 15.0, 330.0),
        (3, "FERRY", 6.0, 200.0, 12.0, 20.0),
    ]
    for scan in range(20):
        t = START + timedelta(seconds=2.5 * scan)
        for number, name, rng0, brg0, kn, cog in targets:
            east0 = rng0 * 1852 * math.sin(math.radians(brg0))
            north0 = rng0 * 1852 * math.cos(math.radians(brg0))
            dist = kn * 1852 / 3600 * 2.5 * scan
            east = east0 + dist * math.sin(math.radians(cog))
            north = north0 + dist * math.cos(math.radians(cog))
            rng = math.hypot(east, north) / 1852
            brg = math.degrees(math.atan2(east, north)) % 360
            status = "T" if scan < 19 or number != 2 else "L"
            lines.append(
                sentence(
                    f"RATTM,{number:02d},{rng:.3f},{brg:.1f},T,{kn:.1f},{cog:.1f},T,,,N,"
                    f"{name},{status},,{hhmmss(t)},A"
                )
            )
            lat = site_lat + north / M_PER_DEG_LAT
            lon = site_lon + east / (M_PER_DEG_LAT * math.cos(math.radians(site_lat)))
            lines.append(
                sentence(
                    f"RATLL,{number:02d},{ddmm(lat, True)},{ddmm(lon, False)},{name},"
                    f"{hhmmss(t)},{status},"
                )
            )
    return lines


if __name__ == "__main__":
    (HERE / "boat_gps_1hz.nmea").write_text("".join(f"{ln}\r\n" for ln in boat()), newline="")
    (HERE / "radar_targets.nmea").write_text("".join(f"{ln}\r\n" for ln in radar()), newline="")
