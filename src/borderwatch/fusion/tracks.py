"""Track storage: one row per track in parallel numpy arrays (no Python object per track).

Rows are added by initiation and removed by deletion; both rebuild the arrays, which costs a few
hundred kilobytes of copying per scan at a thousand tracks, far below the filter arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Self

import numpy as np

from borderwatch.fusion.detections import BoolArray, FloatArray, IntArray

TENTATIVE = 0
CONFIRMED = 1

#: Number of target classes tracked in the class evidence (see TargetClass).
N_CLASSES = 4


@dataclass(slots=True)
class TrackStore:
    """All live tracks. Every field has the track index as its first axis.

    Filter state: ``x (N, M, 4)``, ``P (N, M, 4, 4)``, ``mu (N, M)`` (see
    :mod:`borderwatch.fusion.imm`). Management: ``status`` (tentative/confirmed), ``hits``,
    first and last detection times, the sensor bit mask and class evidence.
    Border state (see :mod:`borderwatch.fusion.crossings`): ``side`` is the side the track is
    established on (0 unknown), ``cross_alert``/``approach_alert`` the ids of open alerts (0 none),
    ``cross_from`` the side a crossing alert started from, ``cross_confirmed_t`` when it was
    confirmed (NaN if not), ``alert_t`` the time of the last event sent for the open alerts.
    Identity (see ``docs/fusion.md``): ``identity`` the MMSI an identified detection gave the
    track (0 none), ``own`` whether it is one of the deployment's own vessels, ``identity_t`` the
    time of its last identified update, ``anon_first_t`` and ``anon_t`` the times of its first
    and last update from an anonymous sensor (radar, camera); NaN when there was none.
    """

    track_id: IntArray
    x: FloatArray
    P: FloatArray
    mu: FloatArray
    status: IntArray
    hits: IntArray
    first_t: FloatArray
    last_t: FloatArray
    sensor_mask: IntArray
    cls_evidence: FloatArray
    side: IntArray
    cross_alert: IntArray
    cross_from: IntArray
    cross_confirmed_t: FloatArray
    approach_alert: IntArray
    alert_t: FloatArray
    identity: IntArray
    own: BoolArray
    identity_t: FloatArray
    anon_first_t: FloatArray
    anon_t: FloatArray

    def __len__(self) -> int:
        return int(self.track_id.shape[0])

    @classmethod
    def empty(cls, modes: int) -> Self:
        zi = np.zeros(0, dtype=np.int64)
        zf = np.zeros(0)
        return cls(
            track_id=zi,
            x=np.zeros((0, modes, 4)),
            P=np.zeros((0, modes, 4, 4)),
            mu=np.zeros((0, modes)),
            status=zi,
            hits=zi,
            first_t=zf,
            last_t=zf,
            sensor_mask=zi,
            cls_evidence=np.zeros((0, N_CLASSES)),
            side=zi,
            cross_alert=zi,
            cross_from=zi,
            cross_confirmed_t=zf,
            approach_alert=zi,
            alert_t=zf,
            identity=zi,
            own=np.zeros(0, dtype=bool),
            identity_t=zf,
            anon_first_t=zf,
            anon_t=zf,
        )

    @classmethod
    def new(
        cls,
        track_id: IntArray,
        x: FloatArray,
        P: FloatArray,
        mu: FloatArray,
        t: float,
        sensor: IntArray,
        cls_hint: IntArray,
        cls_conf: FloatArray,
        identity: IntArray,
        own: BoolArray,
    ) -> Self:
        """Tracks born from one detection each (``x (K, M, 4)`` etc.).

        A track born from an anonymous detection is tentative; one born from an identified
        detection (an AIS report: the vessel's own GNSS position under its MMSI) is confirmed
        at once, since a report cannot be clutter.
        """
        k = track_id.shape[0]
        zi = np.zeros(k, dtype=np.int64)
        identified = identity != 0
        evidence = np.zeros((k, N_CLASSES))
        evidence[np.arange(k), cls_hint] += cls_conf
        return cls(
            track_id=track_id,
            x=x,
            P=P,
            mu=mu,
            status=np.where(identified, CONFIRMED, TENTATIVE).astype(np.int64),
            hits=np.ones(k, dtype=np.int64),
            first_t=np.full(k, t),
            last_t=np.full(k, t),
            sensor_mask=np.left_shift(1, np.minimum(sensor, 62)).astype(np.int64),
            cls_evidence=evidence,
            side=zi.copy(),
            cross_alert=zi.copy(),
            cross_from=zi.copy(),
            cross_confirmed_t=np.full(k, np.nan),
            approach_alert=zi.copy(),
            alert_t=np.full(k, np.nan),
            identity=identity.copy(),
            own=own.copy(),
            identity_t=np.where(identified, t, np.nan),
            anon_first_t=np.where(identified, np.nan, t),
            anon_t=np.where(identified, np.nan, t),
        )

    def select(self, index: IntArray | np.ndarray) -> Self:
        """The tracks selected by an index array or boolean mask."""
        return replace(self, **{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def append(self, other: Self) -> Self:
        """These tracks followed by ``other``'s."""
        if len(other) == 0:
            return self
        return replace(
            self,
            **{
                f.name: np.concatenate([getattr(self, f.name), getattr(other, f.name)])
                for f in fields(self)
            },
        )
