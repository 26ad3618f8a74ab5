"""Cursor on Target (CoT) events of tracks, own units and alerts, as TAK clients read them.

Pure functions: messages in, :class:`CotEvent` values and their XML out (no I/O, no clock: the
caller passes ``now``). The type codes, ``how`` values, the ``opex`` flag and the error fields
follow the MITRE CoT 2.0 event schema and CoT type table; ``docs/tak.md`` gives the mapping and
its sources.

* uids are stable: ``borderwatch.<track_id>``, ``borderwatch.unit.<node_id>``,
  ``borderwatch.alert.<alert_id>`` (a later event for a uid replaces the earlier one).
* ``type`` is ``a-<affiliation>-<2525 dimension and function>`` for tracks and units, and
  :attr:`TakSettings.alert_type` (``b-a-g``) for alerts.
* ``ce`` is the radius of the circle about the point that holds the true position with the
  probability of a circular normal's one-sigma circle (1 - e^-1/2, about 39.35 %), computed
  from the 2×2 position covariance (:func:`circular_error_m`); ``le`` and ``hae`` are
  :data:`UNKNOWN` (9999999) when not known.

XML is built with :mod:`xml.etree.ElementTree`, which escapes every attribute and text; text
from the field (callsigns, vessel names, notes) is first cleared of the characters XML 1.0
cannot carry at all.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import numpy as np
from scipy.optimize import brentq
from scipy.special import erf

from borderwatch.config.tak import TakSettings
from borderwatch.fusion.outputs import AlertEvent, AlertKind
from borderwatch.schema import Alert, AlertPriority, TargetClassName

#: TAK's value for an unknown height or error (hae, ce, le).
UNKNOWN: Final = 9999999.0

#: Probability inside the one-sigma circle of a circular normal distribution.
CE_PROBABILITY: Final = 1.0 - math.exp(-0.5)

#: Prefix of every uid this software sends.
UID_PREFIX: Final = "borderwatch"

#: Type of the delete task TAK clients act on (ATAK's CotDeleteEventMarshal).
DELETE_TYPE: Final = "t-x-d-d"

XML_DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n'

#: Characters XML 1.0 cannot carry (controls other than tab, LF, CR; surrogates; U+FFFE/F).
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

#: Longest callsign and remarks sent (TAK clients show a line, a paragraph).
MAX_CALLSIGN = 64
MAX_REMARKS = 2000

UnitKind = Literal["boat", "ground"]


def xml_text(value: str, limit: int) -> str:
    """``value`` with the characters XML 1.0 cannot carry replaced (U+FFFD), cut to ``limit``."""
    return _NOT_XML.sub("\ufffd", value)[:limit]


# ------------------------------------------------------------------------------ the event


@dataclass(frozen=True, slots=True)
class CotLink:
    """A ``<link>``: the related item's uid and type, and how it relates."""

    uid: str
    type: str
    relation: str


@dataclass(frozen=True, slots=True)
class CotEvent:
    """One CoT event (schema 2.0) with the details this software sends.

    Times are aware datetimes (UTC); ``lat``/``lon`` WGS-84 degrees; ``hae`` metres above the
    ellipsoid; ``ce``/``le`` metres (:data:`UNKNOWN` when not known); ``course_deg`` clockwise
    from true north, ``speed_mps`` metres per second.
    """

    uid: str
    type: str
    how: str
    time: datetime
    start: datetime
    stale: datetime
    lat: float
    lon: float
    hae: float = UNKNOWN
    ce: float = UNKNOWN
    le: float = UNKNOWN
    opex: str | None = None
    callsign: str | None = None
    course_deg: float | None = None
    speed_mps: float | None = None
    remarks: str | None = None
    link: CotLink | None = None
    emergency_type: str | None = None
    emergency_text: str | None = None
    emergency_cancel: bool = False
    force_delete: bool = False

    @property
    def is_alert(self) -> bool:
        """True for an alert's event (b-…), which queues apart from tracks."""
        return self.type.startswith("b-")

    def ended(self, now: datetime) -> CotEvent:
        """The final event of this uid: the same item, stale at ``now`` (TAK drops it); an
        alert's emergency is cancelled."""
        return replace(
            self,
            time=now,
            start=now,
            stale=now,
            emergency_cancel=self.emergency_type is not None,
        )

    def delete(self, now: datetime) -> CotEvent:
        """A ``t-x-d-d`` task telling TAK clients to delete this uid's item now."""
        return CotEvent(
            uid=f"{self.uid}.delete",
            type=DELETE_TYPE,
            how=self.how,
            time=now,
            start=now,
            stale=now + timedelta(seconds=60),
            lat=self.lat,
            lon=self.lon,
            opex=self.opex,
            link=CotLink(uid=self.uid, type=self.type, relation="none"),
            force_delete=True,
        )


def _num(value: float, digits: int) -> str:
    if not math.isfinite(value):
        raise ValueError(f"CoT numbers must be finite, got {value}")
    return f"{value:.{digits}f}"


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("CoT times must be timezone-aware")
    return t.astimezone(UTC)


def to_xml(event: CotEvent) -> bytes:
    """The event as one UTF-8 XML document (with its declaration)."""
    attrs = {
        "version": "2.0",
        "uid": xml_text(event.uid, 256),
        "type": event.type,
        "how": event.how,
        "time": _iso(event.time),
        "start": _iso(event.start),
        "stale": _iso(event.stale),
    }
    if event.opex is not None:
        attrs["opex"] = event.opex
    root = ET.Element("event", attrs)
    ET.SubElement(
        root,
        "point",
        {
            "lat": _num(event.lat, 7),
            "lon": _num(event.lon, 7),
            "hae": _num(event.hae, 1),
            "ce": _num(event.ce, 1),
            "le": _num(event.le, 1),
        },
    )
    detail = ET.SubElement(root, "detail")
    if event.callsign is not None:
        ET.SubElement(detail, "contact", {"callsign": xml_text(event.callsign, MAX_CALLSIGN)})
    if event.course_deg is not None and event.speed_mps is not None:
        ET.SubElement(
            detail,
            "track",
            {"course": _num(event.course_deg, 1), "speed": _num(event.speed_mps, 2)},
        )
    if event.link is not None:
        ET.SubElement(
            detail,
            "link",
            {
                "uid": xml_text(event.link.uid, 256),
                "type": event.link.type,
                "relation": event.link.relation,
            },
        )
    if event.emergency_type is not None:
        attrs = {"cancel": "true"} if event.emergency_cancel else {}
        attrs["type"] = xml_text(event.emergency_type, MAX_CALLSIGN)
        emergency = ET.SubElement(detail, "emergency", attrs)
        emergency.text = xml_text(event.emergency_text or "", MAX_CALLSIGN)
    if event.force_delete:
        ET.SubElement(detail, "__forcedelete")
    if event.remarks is not None:
        remarks = ET.SubElement(detail, "remarks")
        remarks.text = xml_text(event.remarks, MAX_REMARKS)
    return XML_DECLARATION + ET.tostring(root, encoding="unicode").encode("utf-8")


def _iso(t: datetime) -> str:
    # ISO 8601 UTC with milliseconds, as TAK clients write it.
    return _utc(t).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


# ---------------------------------------------------------------------------- error circle


def _containment(r: float, k: float) -> float:
    """P(|x| ≤ r) for x = (u, k·v), u and v independent standard normals, 0 ≤ k ≤ 1.

    ``E_v[erf(√(r² − k²v²) / √2)]``: for ``r/k`` within 8, substituting ``v = (r/k) sin θ``
    makes the integrand smooth on [−π/2, π/2]; beyond, ``|v| ≤ 8`` holds all but 1e-15 of the
    mass. Gauss–Legendre with 64 nodes either way.
    """
    nodes, weights = _legendre()
    if k <= 0.0:
        return float(erf(r / math.sqrt(2.0)))
    if r / k <= 8.0:
        theta = nodes * (math.pi / 2.0)
        v = (r / k) * np.sin(theta)
        f = np.exp(-0.5 * v * v) / math.sqrt(2.0 * math.pi)
        f = f * erf(r * np.cos(theta) / math.sqrt(2.0)) * (r / k) * np.cos(theta)
        return float(np.sum(weights * f) * (math.pi / 2.0))
    v = nodes * 8.0
    f = np.exp(-0.5 * v * v) / math.sqrt(2.0 * math.pi)
    f = f * erf(np.sqrt(np.maximum(r * r - (k * v) ** 2, 0.0)) / math.sqrt(2.0))
    return float(np.sum(weights * f) * 8.0)


@functools.cache
def _legendre() -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.legendre.leggauss(64)
    return nodes, weights


def ce_ratio(k: float) -> float:
    """Radius, in units of the long axis' σ, of the circle holding :data:`CE_PROBABILITY` of a
    zero-mean normal whose short axis' σ is ``k`` times the long one's (0 ≤ k ≤ 1).

    1 for a circular distribution; √2·erf⁻¹(0.3935) ≈ 0.516 for a one-dimensional one. The
    root lies in [0.5, 1]: the circle of radius σ_long holds at least the circular share, and
    one of radius r at most erf(r/√2).
    """
    k = min(max(k, 0.0), 1.0)
    return float(brentq(lambda r: _containment(r, k) - CE_PROBABILITY, 0.5, 1.0, xtol=1e-12))


@functools.cache
def _ce_table() -> tuple[list[float], list[float]]:
    ks = [i / 400 for i in range(401)]
    return ks, [ce_ratio(k) for k in ks]


def circular_error_m(cov: Sequence[Sequence[float]] | np.ndarray) -> float:
    """CoT ``ce`` of a 2×2 east/north position covariance (m²), metres.

    The radius of the circle about the estimate holding the true position with probability
    1 − e^−½ ≈ 39.35 %: σ for a circular error (the schema's "one sigma point"), less than the
    long axis' σ for an elongated one. Interpolated in a table of :func:`ce_ratio` (within
    1e-5 relative). :data:`UNKNOWN` for a covariance that is not finite.
    """
    a, b = float(cov[0][0]), (float(cov[0][1]) + float(cov[1][0])) / 2.0
    d = float(cov[1][1])
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(d)):
        return UNKNOWN
    # Eigenvalues of the symmetric 2×2 matrix in closed form (numpy's cost 60 µs a call).
    mid, half = (a + d) / 2.0, math.hypot((a - d) / 2.0, b)
    long_var, short_var = mid + half, max(mid - half, 0.0)
    if long_var <= 0.0:
        return 0.0
    k = math.sqrt(short_var / long_var)
    ks, ratios = _ce_table()
    i = min(bisect.bisect_right(ks, k), len(ks) - 1)
    k0, k1 = ks[i - 1], ks[i]
    ratio = ratios[i - 1] + (ratios[i] - ratios[i - 1]) * (k - k0) / (k1 - k0)
    ce = math.sqrt(long_var) * ratio
    return ce if ce < UNKNOWN else UNKNOWN


# ------------------------------------------------------------------------------- content


@dataclass(frozen=True, slots=True)
class CotTrack:
    """What a CoT track event needs of a track, whatever it came from (a node's table, a
    Track message, a centre's picture).

    Attributes:
        track_id: the borderwatch track id (``boat-2:417``, ``centre-1:12``).
        time: time of the estimate, UTC.
        lat, lon: WGS-84 degrees; alt_m: height above the ellipsoid or None.
        cov: 2×2 east/north position covariance, m².
        speed_mps, course_deg: velocity over ground.
        label, confidence: class hint.
        coasting: no detection for a while (the position is a prediction).
        vessel_name, mmsi: AIS identity; own: one of the deployment's own vessels.
        dark: a boat without AIS.
    """

    track_id: str
    time: datetime
    lat: float
    lon: float
    alt_m: float | None
    cov: tuple[tuple[float, float], tuple[float, float]]
    speed_mps: float
    course_deg: float
    label: TargetClassName
    confidence: float
    coasting: bool = False
    vessel_name: str | None = None
    mmsi: int | None = None
    own: bool = False
    dark: bool = False


def track_uid(track_id: str) -> str:
    """uid of a track's events."""
    return f"{UID_PREFIX}.{track_id}"


def unit_uid(node_id: str) -> str:
    """uid of an own unit's position events."""
    return f"{UID_PREFIX}.unit.{node_id}"


def alert_uid(alert_id: str) -> str:
    """uid of an alert's events."""
    return f"{UID_PREFIX}.alert.{alert_id}"


def opex(simulated: bool, exercise: bool) -> str | None:
    """The CoT ``opex`` flag: ``e`` exercise (also a simulated inject into one), ``s``
    simulation; None (no statement) for real operations."""
    if exercise:
        return "e"
    return "s" if simulated else None


def _marker(simulated: bool, exercise: bool) -> str:
    # Shown in the callsign: TAK clients display neither opex nor how.
    return ("[EX] " if exercise else "") + ("[SIM] " if simulated else "")


def track_type(view: CotTrack, settings: TakSettings, open_alert: AlertKind | None = None) -> str:
    """CoT type of a track: own vessels are friends; otherwise the affiliation policy (an open
    crossing, then approach alert, then AIS identity, then dark) and the class's type."""
    types = settings.types
    if view.own:
        return f"a-f-{types.own_boat}"
    policy = settings.affiliation
    if open_alert is AlertKind.CROSSING:
        affiliation = policy.crossing
    elif open_alert is AlertKind.APPROACH:
        affiliation = policy.approach
    elif view.mmsi is not None:
        affiliation = policy.identified
    elif view.dark:
        affiliation = policy.dark
    else:
        affiliation = policy.track
    suffix = {
        TargetClassName.PERSON: types.person,
        TargetClassName.VEHICLE: types.vehicle,
        TargetClassName.BOAT: types.boat,
        TargetClassName.UNKNOWN: types.unknown,
    }[view.label]
    return f"a-{affiliation}-{suffix}"


def track_event(
    view: CotTrack,
    settings: TakSettings,
    *,
    now: datetime,
    simulated: bool,
    exercise: bool,
    open_alert: AlertKind | None = None,
) -> CotEvent:
    """A track's event: fused (``m-f``), predicted while coasting (``m-p``) or simulated
    (``m-s``); valid for ``track_stale_s`` from ``now``."""
    how = "m-s" if simulated else ("m-p" if view.coasting else "m-f")
    name = view.vessel_name or view.track_id
    label = "own" if view.own else view.label.value
    return CotEvent(
        uid=track_uid(view.track_id),
        type=track_type(view, settings, open_alert),
        how=how,
        time=now,
        start=view.time,
        stale=now + timedelta(seconds=settings.track_stale_s),
        lat=view.lat,
        lon=view.lon,
        hae=UNKNOWN if view.alt_m is None else view.alt_m,
        ce=circular_error_m(view.cov),
        opex=opex(simulated, exercise),
        callsign=f"{settings.callsign_prefix}{_marker(simulated, exercise)}{name} {label}",
        course_deg=view.course_deg,
        speed_mps=view.speed_mps,
        remarks=_track_remarks(view, open_alert),
    )


def _track_remarks(view: CotTrack, open_alert: AlertKind | None) -> str:
    parts = [f"track {view.track_id}", f"class {view.label.value} ({view.confidence:.2f})"]
    if view.coasting:
        parts.append("coasting (no recent detection)")
    if view.mmsi is not None:
        parts.append(f"AIS MMSI {view.mmsi}" + (" (own)" if view.own else ""))
    if view.dark:
        parts.append("dark: no AIS")
    if open_alert is not None:
        parts.append(f"open {open_alert.value} alert")
    return "; ".join(parts)


def unit_event(
    node_id: str,
    *,
    time: datetime,
    lat: float,
    lon: float,
    alt_m: float | None,
    cov: Sequence[Sequence[float]] | None,
    kind: UnitKind,
    settings: TakSettings,
    now: datetime,
    simulated: bool,
    exercise: bool,
) -> CotEvent:
    """An own unit's position (its GPS navigation estimate): friendly, ``m-g``."""
    suffix = settings.types.own_boat if kind == "boat" else settings.types.own_ground
    return CotEvent(
        uid=unit_uid(node_id),
        type=f"a-f-{suffix}",
        how="m-s" if simulated else "m-g",
        time=now,
        start=time,
        stale=now + timedelta(seconds=settings.unit_stale_s),
        lat=lat,
        lon=lon,
        hae=UNKNOWN if alt_m is None else alt_m,
        ce=UNKNOWN if cov is None else circular_error_m(cov),
        opex=opex(simulated, exercise),
        callsign=f"{settings.callsign_prefix}{_marker(simulated, exercise)}{node_id}",
    )


_DIRECTION = {"left_to_right": "left to right", "right_to_left": "right to left"}
_BORDER = {"green": "green border (land)", "blue": "blue border (river/lake)"}


def alert_remarks(alert: Alert, status: str | None = None) -> str:
    """What an operator reads of an alert: kind, border, direction, priority, probability,
    time to cross, target, track and, at a centre, what operators did about it."""
    after = alert.after
    lines = [
        f"{alert.kind.value.upper()} {_BORDER[alert.border_kind.value]}, segment "
        f"{alert.border_segment}, {_DIRECTION[alert.direction]}",
        f"priority {after.priority.value.upper()}; p_cross {after.p_cross:.2f}; "
        f"confidence {after.confidence:.2f}",
        f"target {after.class_hint.label.value} ({after.class_hint.confidence:.2f}), "
        f"{after.velocity.speed_mps:.1f} m/s course {after.velocity.course_deg:.0f}°; "
        f"track {alert.track_id}",
    ]
    if after.time_to_cross_s is not None:
        lines.append(f"time to cross {after.time_to_cross_s:.0f} s")
    if alert.event is AlertEvent.END:
        reason = alert.end_reason.value if alert.end_reason is not None else "ended"
        lines.append(f"ended: {reason}")
    if status:
        lines.append(status)
    lines.append(f"alert {alert.alert_id} ({alert.event.value}) from {alert.provenance.node_id}")
    return "\n".join(lines)


def alert_event(
    alert: Alert,
    settings: TakSettings,
    *,
    now: datetime,
    track_type_code: str,
    status: str | None = None,
) -> CotEvent:
    """An alert's event at the target's position, linked to its track (``p-p``: ATAK then
    ties the alert to the track's marker and shows range and bearing to it).

    An ``end`` event is final: stale at ``now`` with its emergency cancelled.
    """
    p = alert.after.position
    flags = alert.provenance
    kind = "crossing" if alert.kind is AlertKind.CROSSING else "approach"
    rescue = " RESCUE" if alert.after.priority is AlertPriority.RESCUE else ""
    event = CotEvent(
        uid=alert_uid(alert.alert_id),
        type=settings.alert_type,
        how="m-s" if flags.simulated else "m-f",
        time=now,
        start=alert.time,
        stale=now + timedelta(seconds=settings.alert_stale_s),
        lat=p.lat_deg,
        lon=p.lon_deg,
        hae=UNKNOWN if p.alt_m is None else p.alt_m,
        ce=circular_error_m(alert.after.cov_m2),
        opex=opex(flags.simulated, flags.exercise),
        callsign=f"{settings.callsign_prefix}{_marker(flags.simulated, flags.exercise)}"
        f"ALERT{rescue} {alert.alert_id} {kind}",
        course_deg=alert.after.velocity.course_deg,
        speed_mps=alert.after.velocity.speed_mps,
        remarks=alert_remarks(alert, status),
        link=CotLink(uid=track_uid(alert.track_id), type=track_type_code, relation="p-p"),
        emergency_type=f"Border {kind} ({alert.border_kind.value}){rescue}",
        emergency_text=_ncname(f"BW-{alert.alert_id}"),
    )
    return event.ended(now) if alert.event is AlertEvent.END else event


def _ncname(value: str) -> str:
    # The emergency detail's text is an NCName in TAK's schema: letters, digits, '.', '-', '_'.
    return re.sub(r"[^A-Za-z0-9._-]", "-", value)


__all__ = [
    "CE_PROBABILITY",
    "DELETE_TYPE",
    "UNKNOWN",
    "CotEvent",
    "CotLink",
    "CotTrack",
    "alert_event",
    "alert_remarks",
    "alert_uid",
    "ce_ratio",
    "circular_error_m",
    "opex",
    "to_xml",
    "track_event",
    "track_type",
    "track_uid",
    "unit_event",
    "unit_uid",
    "xml_text",
]
