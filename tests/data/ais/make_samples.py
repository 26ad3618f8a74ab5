"""Writes the synthetic AIS recording of this folder (run: python make_samples.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pyais import encode_dict

HERE = Path(__file__).parent
M_PER_DEG_LAT = 111_320.0

#: (mmsi, name, callsign, ship type, lat, lon, knots, course, class)
VESSELS: list[tuple[int, str, str, int, float, float, float, float, str]] = [
    (262001234, "BAR PILOT 2", "4OAB2", 50, 42.0900, 19.0800, 6.5, 225.0, "A"),
    (278123456, "POLICIJA 12", "9AB12", 55, 42.0500, 19.1500, 18.0, 300.0, "A"),
    (247321000, "ADRIA CARRIER", "IBCD7", 70, 41.9800, 19.0200, 11.2, 135.0, "A"),
    (262009876, "", "", 37, 42.0600, 19.1200, 15.2, 300.0, "B"),
    (262005555, "", "", 30, 42.1000, 19.0500, 4.0, 10.0, "B"),
]
OWN = (262000777, 42.0700, 19.1000, 9.7, 90.0)


def _move(lat: float, lon: float, knots: float, course: float, t: float) -> tuple[float, float]:
    dist = knots * 1852.0 / 3600.0 * t
    north = dist * math.cos(math.radians(course))
    east = dist * math.sin(math.radians(course))
    return (
        lat + north / M_PER_DEG_LAT,
        lon + east / (M_PER_DEG_LAT * math.cos(math.radians(lat))),
    )


def _enc(
    data: dict[str, Any],
    kind: str = "VDM",
    channel: str = "A",
    seq: int | None = None,
    talker: str = "AI",
) -> list[str]:
    return list(
        encode_dict(data, talker_id=talker, sentence_type=kind, radio_channel=channel, seq_id=seq)
    )


def _class_a_report(
    mmsi: int, lat: float, lon: float, knots: float, course: float, second: int
) -> dict[str, Any]:
    """An AIS type 1 position report under way."""
    return {
        "type": 1,
        "mmsi": mmsi,
        "status": 0,
        "speed": knots,
        "lat": lat,
        "lon": lon,
        "course": course,
        "heading": int(course) % 360,
        "second": second,
    }


def traffic() -> list[str]:
    """60 s of traffic: class A reports every 10 s, class B every 30 s, own ship every 2 s,
    static data (type 5 in two fragments, type 24 parts A and B) once a minute."""
    lines: list[str] = []
    seq = 0
    for second in range(60):
        if second % 2 == 0:
            mmsi, lat0, lon0, knots, course = OWN
            lat, lon = _move(lat0, lon0, knots, course, second)
            lines += _enc(_class_a_report(mmsi, lat, lon, knots, course, second), kind="VDO")
        for i, (mmsi, name, call, stype, lat0, lon0, knots, course, cls) in enumerate(VESSELS):
            channel = "AB"[(second + i) % 2]
            lat, lon = _move(lat0, lon0, knots, course, second)
            if cls == "A" and (second + i) % 10 == 0:
                lines += _enc(
                    _class_a_report(mmsi, lat, lon, knots, course, second),
                    channel=channel,
                    talker="AI" if i != 2 else "BS",
                )
            if cls == "B" and (second + 3 * i) % 30 == 0:
                lines += _enc(
                    {
                        "type": 18,
                        "mmsi": mmsi,
                        "speed": knots,
                        "lat": lat,
                        "lon": lon,
                        "course": course,
                        "heading": 511,
                        "second": second,
                        "cs": True,
                    },
                    channel=channel,
                )
            if second == 20 + 7 * i:
                if cls == "A":
                    seq = (seq + 1) % 10
                    fragments = _enc(
                        {
                            "type": 5,
                            "mmsi": mmsi,
                            "imo": 0 if i != 2 else 9412345,
                            "callsign": call,
                            "shipname": name,
                            "ship_type": stype,
                            "to_bow": 12 + 8 * i,
                            "to_stern": 5 + 3 * i,
                            "to_port": 2 + i,
                            "to_starboard": 2 + i,
                            "epfd": 1,
                            "month": 11,
                            "day": 23,
                            "hour": 14,
                            "minute": 30,
                            "draught": 1.5 + 2.5 * i,
                            "destination": "BAR",
                        },
                        channel=channel,
                        seq=seq,
                    )
                    # Another station's report arrives between the two fragments, as on air.
                    other = VESSELS[(i + 1) % 3]
                    olat, olon = _move(other[4], other[5], other[6], other[7], second)
                    between = _enc(
                        {
                            "type": 1,
                            "mmsi": other[0],
                            "status": 0,
                            "speed": other[6],
                            "lat": olat,
                            "lon": olon,
                            "course": other[7],
                            "heading": int(other[7]),
                            "second": second,
                        },
                        channel="B" if channel == "A" else "A",
                    )
                    lines += [fragments[0], *between, *fragments[1:]]
                else:
                    lines += _enc(
                        {"type": 24, "mmsi": mmsi, "partno": 0, "shipname": f"SAILOR {i}"},
                        channel=channel,
                    )
                    lines += _enc(
                        {
                            "type": 24,
                            "mmsi": mmsi,
                            "partno": 1,
                            "ship_type": stype,
                            "vendorid": "SRT",
                            "callsign": f"9A{i}XY",
                            "to_bow": 6,
                            "to_stern": 4,
                            "to_port": 1,
                            "to_starboard": 2,
                        },
                        channel=channel,
                    )
    return lines


if __name__ == "__main__":
    (HERE / "harbour_traffic.ais").write_text("".join(f"{ln}\r\n" for ln in traffic()), newline="")
