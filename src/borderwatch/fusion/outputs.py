"""What the fusion core hands out: confirmed tracks as arrays, and border alerts.

State vectors are ``[x_m, y_m, vx_mps, vy_mps]`` in the local ENU frame (east, north).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from borderwatch.fusion.borders import BorderKind
from borderwatch.fusion.detections import BoolArray, FloatArray, IntArray


@dataclass(frozen=True, slots=True)
class TrackTable:
    """Confirmed tracks at one time, as parallel arrays (length ``n``).

    Attributes:
        t: time of the estimates, seconds.
        track_id: stable integer id per track (the edge prefixes it with the node id).
        x: state ``(n, 4)``: x, y (m), vx, vy (m/s), combined over IMM modes.
        P: state covariance ``(n, 4, 4)``.
        mode_prob: IMM mode probabilities ``(n, M)``.
        cls: :class:`~borderwatch.fusion.detections.TargetClass` hint per track.
        cls_conf: confidence of the class hint in [0, 1].
        hits: number of detections assigned so far.
        first_t: time of the track's first detection.
        last_update_t: time of the last assigned detection.
        sensor_mask: bit ``k`` set when sensor index ``k`` (< 63) contributed to the track.
        side: +1 left of the border, -1 right, 0 when no border is configured.
        border_segment: nearest border segment index, -1 when no border is configured.
        border_distance_m: signed distance to the border (positive on the left), NaN without one.
        identity: the MMSI an AIS report gave the track, 0 for an anonymous track.
        own: the identity is one of the deployment's own vessels (``own_identities``).
        dark: a boat seen by radar or camera that sends no AIS (see ``Tracker._dark`` and
            ``docs/fusion.md``).
        identity_t: time of the last identified (AIS) update, NaN when there was none.

    The identity columns default to "anonymous" (zeros, False, NaN), so a table built without
    them stays valid.
    """

    t: float
    track_id: IntArray
    x: FloatArray
    P: FloatArray
    mode_prob: FloatArray
    cls: IntArray
    cls_conf: FloatArray
    hits: IntArray
    first_t: FloatArray
    last_update_t: FloatArray
    sensor_mask: IntArray
    side: IntArray
    border_segment: IntArray
    border_distance_m: FloatArray
    identity: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    own: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    dark: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    identity_t: FloatArray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        n = self.track_id.shape[0]
        defaults: dict[str, tuple[type, object]] = {
            "identity": (np.int64, 0),
            "own": (np.bool_, False),
            "dark": (np.bool_, False),
            "identity_t": (np.float64, np.nan),
        }
        for name, (dtype, fill) in defaults.items():
            if getattr(self, name).shape[0] != n:
                object.__setattr__(self, name, np.full(n, fill, dtype=dtype))

    def __len__(self) -> int:
        return int(self.track_id.shape[0])

    @classmethod
    def empty(cls, t: float, modes: int = 1) -> TrackTable:
        z = np.zeros(0)
        zi = np.zeros(0, dtype=np.int64)
        return cls(
            t=t,
            track_id=zi,
            x=np.zeros((0, 4)),
            P=np.zeros((0, 4, 4)),
            mode_prob=np.zeros((0, modes)),
            cls=zi,
            cls_conf=z,
            hits=zi,
            first_t=z,
            last_update_t=z,
            sensor_mask=zi,
            side=zi,
            border_segment=zi,
            border_distance_m=z,
        )


class AlertKind(StrEnum):
    """``crossing``: a track crossed the border. ``approach``: it is about to."""

    CROSSING = "crossing"
    APPROACH = "approach"


class AlertEvent(StrEnum):
    """Lifecycle of an alert, as operators and MQTT consumers know it."""

    NEW = "new"
    UPDATE = "update"
    END = "end"


@dataclass(frozen=True, slots=True)
class BorderAlert:
    """One lifecycle event of a border alert.

    Attributes:
        t: time of the event, seconds.
        alert_id: stable id of the alert across its ``new`` / ``update`` / ``end`` events.
        track_id: the track that raised it.
        kind: crossing or approach.
        event: new, update or end.
        direction: ``left_to_right`` or ``right_to_left`` of the crossed line's orientation.
        border_kind: green (land) or blue (river/lake) segment.
        segment: index of the border segment concerned.
        x, y: track position (m, local ENU) at ``t``.
        vx, vy: track velocity (m/s).
        cov_xy: 2×2 position covariance (m²).
        p_cross: probability the track is on the far side of the border at ``t``.
        confidence: how sure the core is that the crossing (or imminent crossing) is real, [0, 1].
        time_to_cross_s: predicted time until the crossing, for approach alerts; else None.
        cls: target class hint of the track; cls_conf its confidence.
        reason: why an ``end`` was issued (``confirmed``, ``retracted``, ``track_lost``,
            ``crossed``, ``turned_away``), empty otherwise.
    """

    t: float
    alert_id: int
    track_id: int
    kind: AlertKind
    event: AlertEvent
    direction: str
    border_kind: BorderKind
    segment: int
    x: float
    y: float
    vx: float
    vy: float
    cov_xy: FloatArray
    p_cross: float
    confidence: float
    time_to_cross_s: float | None = None
    cls: int = 0
    cls_conf: float = 0.0
    reason: str = ""
    sensor_mask: int = field(default=0)
