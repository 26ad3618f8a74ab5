"""NMEA 0183 sentences from GNSS receivers, heading sensors and marine radars.

:class:`NmeaParser` turns ``$``-sentences into JSON-ready items (see ``docs/devices.md``,
section "NMEA 0183"): GGA and RMC become ``fix`` items, VTG ``velocity``, GSA ``dop``, GST
``accuracy``, HDT and THS ``heading``, and the radar's TTM and TLL ``radar_target`` items. Every
sentence must carry a checksum, verified with pynmea2's checksum function; this module frames
and splits the sentence, converts the fields to SI units and checks their ranges.

Rejections: ``checksum`` (wrong, missing or unreadable checksum), ``malformed`` (a sentence or
field that does not parse), ``out_of_range`` (a latitude beyond 90°, a negative speed...),
``unsupported`` (a well-formed sentence of a type this parser does not handle).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pynmea2

from borderwatch.sensors.base import Accepted, Item, LineParser, Rejected

__all__ = ["NmeaParser"]

KNOT_MPS = 1852.0 / 3600.0
KMH_MPS = 1.0 / 3.6
MPH_MPS = 0.44704
NAUTICAL_MILE_M = 1852.0
KILOMETRE_M = 1000.0
STATUTE_MILE_M = 1609.344

#: Distance and speed factors of the TTM units field: nautical miles and knots, kilometres and
#: km/h, statute miles and mph.
_TTM_UNITS: dict[str, tuple[float, float]] = {
    "N": (NAUTICAL_MILE_M, KNOT_MPS),
    "K": (KILOMETRE_M, KMH_MPS),
    "S": (STATUTE_MILE_M, MPH_MPS),
}

_TARGET_STATUS = {"L": "lost", "Q": "query", "T": "tracking"}
_ACQUISITION = {"A": "auto", "M": "manual", "R": "reported"}
_REFERENCE = {"T": "true", "R": "relative"}

#: ``$``, the address and fields, ``*`` and two hexadecimal digits, nothing after.
_FRAME_RE = re.compile(r"\$([^$*!]*)\*([0-9A-Fa-f]{2})")
_CHECKSUM_TAIL_RE = re.compile(r"\*[0-9A-Fa-f]{2}\Z")
_NUMBER_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")
_COORD_RE = re.compile(r"(\d{1,3})(\d\d(?:\.\d*)?)")
_TIME_RE = re.compile(r"(\d\d)(\d\d)(\d\d)(?:\.(\d*))?")
#: Padding so that every field index a sentence reads exists (absent fields are empty).
_PAD = ("",) * 20
_HEAD_RE = re.compile(r"[A-Z][A-Z0-9]([A-Z]{3})")
_number_match = _NUMBER_RE.fullmatch
_checksum = pynmea2.NMEASentence.checksum
_coord_match = _COORD_RE.fullmatch
_time_match = _TIME_RE.fullmatch


class FieldError(ValueError):
    """A field that does not parse (``reason`` ``malformed``) or is out of its range."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# --- field converters -------------------------------------------------------------------------


def _float(fields: list[str], i: int, name: str) -> float | None:
    s = fields[i]
    if not s:
        return None
    if _number_match(s) is None:
        raise FieldError("malformed", f"{name} {s!r} is not a number")
    return float(s)


def _int(fields: list[str], i: int, name: str) -> int | None:
    s = fields[i]
    if not s:
        return None
    if not s.isdigit():
        raise FieldError("malformed", f"{name} {s!r} is not a whole number")
    return int(s)


def _nonneg(v: float | None, name: str) -> float | None:
    if v is not None and v < 0:
        raise FieldError("out_of_range", f"{name} {v} is negative")
    return v


def _angle(v: float | None, name: str) -> float | None:
    """An angle in degrees within [0, 360]; 360 is kept as sent (some devices send it)."""
    if v is not None and not 0.0 <= v <= 360.0:
        raise FieldError("out_of_range", f"{name} {v} is outside 0..360 degrees")
    return v


def _round(v: float | None, digits: int = 3) -> float | None:
    return None if v is None else round(v, digits)


def _coord(fields: list[str], i: int, axis: str) -> float | None:
    """``ddmm.mmmm`` (latitude) or ``dddmm.mmmm`` (longitude) and its hemisphere letter."""
    value = fields[i]
    hemi = fields[i + 1]
    if not value and not hemi:
        return None
    if axis == "lat":
        limit, negative, positive = 90.0, "S", "N"
    else:
        limit, negative, positive = 180.0, "W", "E"
    if not value or hemi not in (positive, negative):
        raise FieldError("malformed", f"{axis} {value!r} {hemi!r} is incomplete")
    match = _coord_match(value)
    if match is None:
        raise FieldError("malformed", f"{axis} {value!r} is not (d)ddmm.mmmm")
    whole, minute_text = match.groups()
    minutes = float(minute_text)
    if minutes >= 60.0:
        raise FieldError("out_of_range", f"{axis} minutes {minute_text} are not below 60")
    deg = int(whole) + minutes / 60.0
    if deg > limit:
        raise FieldError("out_of_range", f"{axis} {deg:.7f} is beyond {limit:g} degrees")
    return round(-deg if hemi == negative else deg, 7)


def _time_of_day(fields: list[str], i: int) -> str | None:
    """``hhmmss(.sss)`` as an ISO-8601 time of day ``hh:mm:ss.sss`` (UTC), or None if empty."""
    s = fields[i]
    if not s:
        return None
    match = _time_match(s)
    if match is None:
        raise FieldError("malformed", f"time {s!r} is not hhmmss.sss")
    hh, mm, ss, frac = match.groups()
    if hh > "23" or mm > "59" or ss > "60":
        raise FieldError("malformed", f"time {s!r} is not a time of day")
    return f"{hh}:{mm}:{ss}.{(frac or '').ljust(3, '0')[:3]}"


def _date(fields: list[str], i: int) -> str | None:
    """``ddmmyy`` as ``yyyy-mm-dd``; two-digit years 80-99 are 1980-1999, 00-79 2000-2079."""
    s = fields[i]
    if not s:
        return None
    if len(s) != 6 or not s.isdigit():
        raise FieldError("malformed", f"date {s!r} is not ddmmyy")
    dd, mo, yy = int(s[:2]), int(s[2:4]), int(s[4:])
    year = 1900 + yy if yy >= 80 else 2000 + yy
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not 1 <= mo <= 12 or not 1 <= dd <= days[mo - 1]:
        raise FieldError("malformed", f"date {s!r} is not a calendar date")
    return f"{year:04d}-{mo:02d}-{dd:02d}"


def _letter(fields: list[str], i: int, allowed: str, name: str) -> str | None:
    s = fields[i].upper()
    if not s:
        return None
    if len(s) != 1 or s not in allowed:
        raise FieldError("malformed", f"{name} {s!r} is not one of {allowed}")
    return s


# --- sentences --------------------------------------------------------------------------------


def _gga(talker: str, f: list[str]) -> dict[str, Any]:
    time = _time_of_day(f, 0)
    lat = _coord(f, 1, "lat")
    lon = _coord(f, 3, "lon")
    quality = _int(f, 5, "fix quality")
    satellites = _int(f, 6, "satellites")
    hdop = _nonneg(_float(f, 7, "hdop"), "hdop")
    alt = _float(f, 8, "altitude")
    geoid = _float(f, 10, "geoid separation")
    valid = lat is not None and lon is not None and bool(quality)
    return {
        "kind": "fix",
        "sentence": "GGA",
        "talker": talker,
        "time": time,
        "valid": valid,
        "lat": lat if valid else None,
        "lon": lon if valid else None,
        "fix_quality": quality,
        "satellites": satellites,
        "hdop": hdop,
        "alt_m": alt,
        "geoid_sep_m": geoid,
    }


def _rmc(talker: str, f: list[str]) -> dict[str, Any]:
    tod = _time_of_day(f, 0)
    status = _letter(f, 1, "AV", "status")
    lat = _coord(f, 2, "lat")
    lon = _coord(f, 4, "lon")
    speed = _nonneg(_float(f, 6, "speed"), "speed")
    course = _angle(_float(f, 7, "course"), "course")
    day = _date(f, 8)
    mode = _letter(f, 11, "ADEFMNPRSV", "mode")
    if tod is None:
        time = None
    elif day is None:
        time = tod
    else:
        time = f"{day}T{tod}Z"
    valid = lat is not None and lon is not None and status == "A" and mode != "N"
    return {
        "kind": "fix",
        "sentence": "RMC",
        "talker": talker,
        "time": time,
        "valid": valid,
        "lat": lat if valid else None,
        "lon": lon if valid else None,
        "status": status,
        "speed_mps": _round(None if speed is None else speed * KNOT_MPS),
        "course_deg": course,
        "mode": mode,
    }


def _vtg(talker: str, f: list[str]) -> dict[str, Any]:
    course = _angle(_float(f, 0, "course"), "course")
    knots = _nonneg(_float(f, 4, "speed (knots)"), "speed")
    kmh = _nonneg(_float(f, 6, "speed (km/h)"), "speed")
    if knots is not None:
        speed: float | None = knots * KNOT_MPS
    elif kmh is not None:
        speed = kmh * KMH_MPS
    else:
        speed = None
    return {
        "kind": "velocity",
        "sentence": "VTG",
        "talker": talker,
        "course_deg": course,
        "speed_mps": _round(speed),
        "mode": _letter(f, 8, "ADEFMNPRSV", "mode"),
    }


def _gsa(talker: str, f: list[str]) -> dict[str, Any]:
    fix_type = _int(f, 1, "fix type")
    if fix_type is not None and not 1 <= fix_type <= 3:
        raise FieldError("out_of_range", f"fix type {fix_type} is not 1, 2 or 3")
    return {
        "kind": "dop",
        "sentence": "GSA",
        "talker": talker,
        "mode": _letter(f, 0, "AM", "mode"),
        "fix_type": fix_type,
        "pdop": _nonneg(_float(f, 14, "pdop"), "pdop"),
        "hdop": _nonneg(_float(f, 15, "hdop"), "hdop"),
        "vdop": _nonneg(_float(f, 16, "vdop"), "vdop"),
    }


def _gst(talker: str, f: list[str]) -> dict[str, Any]:
    return {
        "kind": "accuracy",
        "sentence": "GST",
        "talker": talker,
        "time": _time_of_day(f, 0),
        "rms": _nonneg(_float(f, 1, "rms"), "rms"),
        "sigma_lat_m": _nonneg(_float(f, 5, "sigma lat"), "sigma lat"),
        "sigma_lon_m": _nonneg(_float(f, 6, "sigma lon"), "sigma lon"),
        "sigma_alt_m": _nonneg(_float(f, 7, "sigma alt"), "sigma alt"),
    }


def _hdt(talker: str, f: list[str]) -> dict[str, Any]:
    if f[1].upper() not in ("T", ""):
        raise FieldError("malformed", f"HDT reference {f[1]!r} is not T")
    return {
        "kind": "heading",
        "sentence": "HDT",
        "talker": talker,
        "heading_deg": _angle(_float(f, 0, "heading"), "heading"),
    }


def _ths(talker: str, f: list[str]) -> dict[str, Any]:
    return {
        "kind": "heading",
        "sentence": "THS",
        "talker": talker,
        "heading_deg": _angle(_float(f, 0, "heading"), "heading"),
        "mode": _letter(f, 1, "AEMSV", "mode"),
    }


def _ttm(talker: str, f: list[str]) -> dict[str, Any]:
    target = _int(f, 0, "target number")
    if target is None:
        raise FieldError("malformed", "TTM without a target number")
    units = _letter(f, 9, "NKS", "units") or "N"
    metres, mps = _TTM_UNITS[units]
    distance = _nonneg(_float(f, 1, "distance"), "distance")
    speed = _nonneg(_float(f, 4, "speed"), "speed")
    cpa = _nonneg(_float(f, 7, "CPA distance"), "CPA distance")
    brg_ref = _letter(f, 3, "TR", "bearing reference")
    cog_ref = _letter(f, 6, "TR", "course reference")
    status = _letter(f, 11, "LQT", "status")
    acquisition = _letter(f, 14, "AMR", "acquisition")
    return {
        "kind": "radar_target",
        "sentence": "TTM",
        "talker": talker,
        "target": target,
        "range_m": _round(None if distance is None else distance * metres, 1),
        "bearing_deg": _angle(_float(f, 2, "bearing"), "bearing"),
        "bearing_reference": None if brg_ref is None else _REFERENCE[brg_ref],
        "speed_mps": _round(None if speed is None else speed * mps),
        "course_deg": _angle(_float(f, 5, "course"), "course"),
        "course_reference": None if cog_ref is None else _REFERENCE[cog_ref],
        "cpa_m": _round(None if cpa is None else cpa * metres, 1),
        "tcpa_min": _float(f, 8, "time to CPA"),
        "name": f[10] or None,
        "status": None if status is None else _TARGET_STATUS[status],
        "reference_target": f[12].upper() == "R",
        "time": _time_of_day(f, 13),
        "acquisition": None if acquisition is None else _ACQUISITION[acquisition],
    }


def _tll(talker: str, f: list[str]) -> dict[str, Any]:
    target = _int(f, 0, "target number")
    if target is None:
        raise FieldError("malformed", "TLL without a target number")
    status = _letter(f, 7, "LQT", "status")
    return {
        "kind": "radar_target",
        "sentence": "TLL",
        "talker": talker,
        "target": target,
        "lat": _coord(f, 1, "lat"),
        "lon": _coord(f, 3, "lon"),
        "name": f[5] or None,
        "time": _time_of_day(f, 6),
        "status": None if status is None else _TARGET_STATUS[status],
        "reference_target": f[8].upper() == "R",
    }


_HANDLERS: dict[str, Callable[[str, list[str]], dict[str, Any]]] = {
    "GGA": _gga,
    "RMC": _rmc,
    "VTG": _vtg,
    "GSA": _gsa,
    "GST": _gst,
    "HDT": _hdt,
    "THS": _ths,
    "TTM": _ttm,
    "TLL": _tll,
}


class NmeaParser(LineParser):
    """NMEA 0183 ``$``-sentences, one per line, each with its checksum."""

    name = "nmea"

    def parse_line(self, text: str, line: int) -> list[Item]:
        frame = _FRAME_RE.fullmatch(text)
        if frame is None:
            if not text.startswith("$"):
                return [Rejected("malformed", "sentence does not start with '$'", line)]
            if "*" not in text:
                return [Rejected("checksum", "checksum missing", line)]
            if _CHECKSUM_TAIL_RE.search(text) is None:
                return [Rejected("checksum", "checksum is not two hex digits at the end", line)]
            return [Rejected("malformed", "stray '$', '!' or '*' inside the sentence", line)]
        body = frame.group(1)
        fields = body.split(",")
        head = _HEAD_RE.fullmatch(fields[0])
        sentence = head.group(1) if head is not None else ""
        # pynmea2's checksum over the framed body; building a pynmea2 sentence object as well
        # would cost a third of the parse time, and the fields are converted below anyway.
        sent, computed = int(frame.group(2), 16), _checksum(body)
        if sent != computed:
            return [
                Rejected("checksum", f"checksum does not match: {sent:02X} != {computed:02X}", line)
            ]
        handler = _HANDLERS.get(sentence)
        if handler is None or fields[0].startswith("P"):
            return [Rejected("unsupported", f"sentence type {fields[0]!r}", line)]
        try:
            data = handler(fields[0][:2], [*fields[1:], *_PAD])
        except FieldError as exc:
            return [Rejected(exc.reason, f"{sentence}: {exc.detail}", line)]
        return [Accepted(sentence, data, line)]
