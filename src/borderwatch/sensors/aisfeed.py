"""AIS reports as identified detections for the fusion core, and static vessel data by MMSI.

:func:`ais_detections` turns the position reports decoded by
:class:`~borderwatch.sensors.ais.AisParser` (message types 1, 2, 3, 18, 19 and 27) into
``POSITION`` detections in the local ENU frame whose ``identity`` is the sender's MMSI, so the
tracker can name the vessel's track (``docs/fusion.md``, "Identities, own boats and dark boats").
:class:`AisRegistry` keeps what the static messages (types 5, 19 and 24) say about each MMSI
(name, call sign, ship type) for labelling tracks.

Noise (1-σ per axis) comes from the report's position accuracy flag (ITU-R M.1371):

* high (``accuracy`` true: better than 10 m, a differential GNSS fix): :data:`HIGH_ACCURACY_SIGMA_M`
  = 5 m. The 10 m bound is read as a 95 % horizontal radius, which is about 4 m 1-σ per axis
  (10 / 2.45); the remainder covers the antenna's offset from the hull and the whole-second
  time stamp.
* low (false or absent: more than 10 m, a plain GNSS fix): :data:`LOW_ACCURACY_SIGMA_M` = 15 m.
  A stand-alone GNSS fix of a class B unit with a poor antenna is often 5-10 m 1-σ, and the
  class gives no upper bound; 15 m keeps a sound report inside a radar track's gate without
  pulling the track around.
* type 27 (long-range broadcast) sends positions in tenths of a minute (185 m north-south); the
  quantisation adds its uniform-error σ, 185 / √12 ≈ 54 m.

Report time: position reports carry the UTC second of their GNSS fix (field ``second``,
0-59). The fix was made before reception, so the report time is the latest whole UTC second
with that value not after the reception time (with ``max_skew_s`` allowance for a receiver
clock slightly behind GNSS time). Without a valid second (type 27, or 60-63: not available,
manual, dead reckoning, inoperative) the reception time is used.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from borderwatch.fusion.detections import DetectionBatch, TargetClass
from borderwatch.fusion.frames import LocalFrame

__all__ = [
    "HIGH_ACCURACY_SIGMA_M",
    "LONG_RANGE_SIGMA_M",
    "LOW_ACCURACY_SIGMA_M",
    "POSITION_TYPES",
    "STATIC_TYPES",
    "AisRegistry",
    "ais_detections",
]

#: Message types that carry a vessel's position: class A (1-3), class B (18, 19), long range.
POSITION_TYPES = frozenset((1, 2, 3, 18, 19, 27))
#: Message types that carry static vessel data: class A (5), extended class B (19), class B (24).
STATIC_TYPES = frozenset((5, 19, 24))

HIGH_ACCURACY_SIGMA_M = 5.0
LOW_ACCURACY_SIGMA_M = 15.0
#: Uniform error of type 27's 1/10-minute latitude steps (1852 m / 10), as a 1-σ.
LONG_RANGE_SIGMA_M = 185.2 / math.sqrt(12.0)

#: MMSIs have nine decimal digits; 0 would read as "anonymous" in the fusion core.
MAX_MMSI = 999_999_999
#: The "not available" values of latitude and longitude (degrees).
_LAT_NOT_AVAILABLE = 91.0
_LON_NOT_AVAILABLE = 181.0


def ais_detections(
    messages: Sequence[tuple[float, Mapping[str, Any]]],
    frame: LocalFrame,
    sensor_index: int = 0,
    *,
    utc_offset_s: float = 0.0,
    max_age_s: float = 10.0,
    max_skew_s: float = 1.0,
) -> tuple[DetectionBatch, dict[str, int]]:
    """AIS position reports → identified ``POSITION`` detections (one per usable report).

    Args:
        messages: ``(t_rx, data)`` pairs: reception time in seconds on the caller's time axis,
            and an ``ais`` item's data as :class:`~borderwatch.sensors.ais.AisParser` gives it
            (``msg_type``, ``mmsi``, ``lat``/``lon`` in degrees, ``accuracy``, ``second``).
        frame: the local ENU frame of the tracker.
        sensor_index: the receiver's index in the caller's sensor table.
        utc_offset_s: POSIX UTC time of ``t = 0`` on the caller's axis (0 when ``t_rx`` is
            POSIX time already); needed to read the report's UTC second.
        max_age_s: a report older than this by its own time stamp is skipped as ``stale``
            (a delayed or repeated message, or a receiver clock far from UTC), s.
        max_skew_s: how far after ``t_rx`` a report's time stamp may lie (receiver clock
            behind GNSS time), s.

    Returns:
        The detections, in input order, with ``identity`` = MMSI, class boat, and the counts
        of skipped reports by reason: ``not_position_report`` (another message type or not an
        AIS item), ``bad_mmsi`` (missing or outside 1..999999999), ``no_position`` (latitude
        or longitude not available: 91 / 181, or missing), ``bad_value`` (a value of the wrong
        type, not finite or out of range, including the reception time), ``stale``.
    """
    skipped: Counter[str] = Counter()
    t_out: list[float] = []
    lat: list[float] = []
    lon: list[float] = []
    sigma: list[float] = []
    mmsi: list[int] = []
    for t_rx, data in messages:
        report = _report(t_rx, data, utc_offset_s, max_age_s, max_skew_s)
        if isinstance(report, str):
            skipped[report] += 1
            continue
        t_out.append(report[0])
        lat.append(report[1])
        lon.append(report[2])
        sigma.append(report[3])
        mmsi.append(report[4])
    n = len(t_out)
    xy = frame.to_enu(np.asarray(lat), np.asarray(lon)) if n else np.zeros((0, 2))
    batch = DetectionBatch.positions(
        np.asarray(t_out, dtype=np.float64),
        xy,
        np.asarray(sigma, dtype=np.float64),
        sensor=np.full(n, sensor_index, dtype=np.int64),
        identity=np.asarray(mmsi, dtype=np.int64),
    )
    # Only vessels send these message types (SAR aircraft and aids to navigation use others).
    batch.cls[:] = TargetClass.BOAT
    batch.cls_conf[:] = 1.0
    return batch, dict(sorted(skipped.items()))


def _report(
    t_rx: float, data: Mapping[str, Any], utc_offset_s: float, max_age_s: float, max_skew_s: float
) -> tuple[float, float, float, float, int] | str:
    """``(t, lat, lon, sigma_m, mmsi)`` of one report, or the reason it is skipped."""
    if not isinstance(data, Mapping) or data.get("kind", "ais") != "ais":
        return "not_position_report"
    msg_type = data.get("msg_type")
    if not _is_int(msg_type) or msg_type not in POSITION_TYPES:
        return "not_position_report"
    mmsi = _mmsi(data.get("mmsi"))
    if mmsi is None:
        return "bad_mmsi"
    lat, lon = data.get("lat"), data.get("lon")
    if lat is None or lon is None:
        return "no_position"
    if not (_is_real(lat) and _is_real(lon) and _is_real(t_rx)):
        return "bad_value"
    if lat == _LAT_NOT_AVAILABLE or lon == _LON_NOT_AVAILABLE:
        return "no_position"
    if abs(lat) > 90.0 or abs(lon) > 180.0:
        return "bad_value"
    t = report_time(float(t_rx), data.get("second"), utc_offset_s, max_skew_s)
    if t_rx - t > max_age_s:
        return "stale"
    sigma = HIGH_ACCURACY_SIGMA_M if data.get("accuracy") is True else LOW_ACCURACY_SIGMA_M
    if msg_type == 27:
        sigma = math.hypot(sigma, LONG_RANGE_SIGMA_M)
    return t, float(lat), float(lon), sigma, mmsi


def report_time(
    t_rx: float, second: Any, utc_offset_s: float = 0.0, max_skew_s: float = 1.0
) -> float:
    """Time of a report's GNSS fix on the caller's axis, from its UTC ``second`` (0-59).

    The latest whole UTC second whose seconds-of-minute equal ``second`` and that is not after
    ``t_rx + max_skew_s``; ``t_rx`` itself when ``second`` is not a valid 0-59 integer. GNSS
    receivers fix on the whole second, which is what the field names.
    """
    if not _is_int(second) or not 0 <= second <= 59:
        return t_rx
    latest = math.floor(t_rx + utc_offset_s + max_skew_s)
    back = (latest - second) % 60
    return float(latest - back) - utc_offset_s


def _mmsi(value: Any) -> int | None:
    """A valid MMSI (1..999999999) as an int, or None."""
    return int(value) if _is_int(value) and 0 < value <= MAX_MMSI else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


class AisRegistry:
    """Static vessel data by MMSI from AIS messages 5, 19 and 24, for labelling tracks.

    Keeps the latest non-empty ``name``, ``callsign``, ``ship_type`` (and its name, ``imo``,
    ``length_m``, ``beam_m``) of at most ``max_vessels`` MMSIs; the one updated longest ago is
    forgotten first. Type 24 sends the name (part A) and the call sign and type (part B) in two
    messages; they are merged.
    """

    FIELDS = ("name", "callsign", "ship_type", "ship_type_name", "imo", "length_m", "beam_m")

    def __init__(self, max_vessels: int = 10_000) -> None:
        if max_vessels < 1:
            raise ValueError("max_vessels must be at least 1")
        self.max_vessels = max_vessels
        self._vessels: OrderedDict[int, dict[str, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._vessels)

    def update(self, data: Mapping[str, Any]) -> bool:
        """Take one decoded AIS item's data; True when it added or changed static data."""
        if not isinstance(data, Mapping):
            return False
        msg_type = data.get("msg_type")
        if not _is_int(msg_type) or msg_type not in STATIC_TYPES:
            return False
        mmsi = _mmsi(data.get("mmsi"))
        if mmsi is None:
            return False
        found = {k: v for k in self.FIELDS if (v := _static_value(k, data.get(k))) is not None}
        if "ship_type" not in found:  # the name of type 0 is "NotAvailable"
            found.pop("ship_type_name", None)
        if not found:
            return False
        entry = self._vessels.setdefault(mmsi, {})
        changed = any(entry.get(k) != v for k, v in found.items())
        entry.update(found)
        self._vessels.move_to_end(mmsi)
        while len(self._vessels) > self.max_vessels:
            self._vessels.popitem(last=False)
        return changed

    def lookup(self, mmsi: int) -> dict[str, Any] | None:
        """What is known of ``mmsi`` (a copy), or None."""
        entry = self._vessels.get(mmsi)
        return None if entry is None else dict(entry)


def _static_value(name: str, value: Any) -> Any:
    """A field's value, or None when it says "not available" (empty text, type 0, IMO 0)."""
    if isinstance(value, str):
        text = value.strip(" @")
        return text or None
    if name in ("ship_type", "imo"):
        return int(value) if _is_int(value) and value > 0 else None
    if name in ("length_m", "beam_m"):
        return value if _is_real(value) and value > 0 else None
    return None
