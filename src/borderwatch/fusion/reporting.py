"""Which tracks a node reports: dead reckoning, as distributed simulation (IEEE 1278 DIS) and
tactical data links do it.

A boat's radio link is narrow, and a thousand tracks a second also cost the node and the
centre more than the tracking itself. A receiver of a track summary predicts the track forward
at constant velocity from its last report. The node knows what every receiver predicts, so
it reports a track only when that prediction has drifted more than ``threshold_m`` from its
own estimate, and otherwise at least every ``heartbeat_s`` (so a receiver can tell a quiet
track from a lost one). It also reports at once a new track, a track whose status changes
between confirmed and coasting, and a track whose class hint changes.

A walker at a steady pace is then reported every ``heartbeat_s`` instead of every second; a
target that turns, stops or starts is reported within one reporting interval of the
change. The picture a receiver holds is never further than ``threshold_m`` (plus the time
to the next interval's motion) from the node's own.

Pure and deterministic: time is the tables' own ``t``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from borderwatch.fusion.detections import BoolArray, FloatArray, IntArray
from borderwatch.fusion.outputs import TrackTable


@dataclass(frozen=True, slots=True)
class _Sent:
    """What the receivers last got, per track, sorted by track id."""

    track_id: IntArray
    t: FloatArray
    x: FloatArray  # (n, 4): x, y, vx, vy
    coasting: BoolArray
    cls: IntArray


class DeadReckoningReporter:
    """Chooses the rows of each track table to report (see the module docstring).

    Args:
        threshold_m: largest drift, metres, of a receiver's constant-velocity prediction from
            the node's estimate before the track is reported again; 0 reports every track
            every time.
        heartbeat_s: a track is reported at least this often, s.
        coast_after_s: a track is coasting when its last detection is older than this, s
            (as in the Track messages).
    """

    def __init__(self, threshold_m: float, heartbeat_s: float, coast_after_s: float) -> None:
        if threshold_m < 0 or heartbeat_s <= 0:
            raise ValueError("threshold_m must be >= 0 and heartbeat_s > 0")
        self.threshold_m = threshold_m
        self.heartbeat_s = heartbeat_s
        self.coast_after_s = coast_after_s
        #: Ids of the tracks reported before and missing from the last table selected from.
        self.ended: IntArray = np.zeros(0, dtype=np.int64)
        self._sent = _Sent(
            np.zeros(0, dtype=np.int64),
            np.zeros(0),
            np.zeros((0, 4)),
            np.zeros(0, dtype=bool),
            np.zeros(0, dtype=np.int64),
        )

    def select(self, table: TrackTable) -> IntArray:
        """Rows of ``table`` to report now, in table order; remembers them as reported.

        Tracks no longer in the table are forgotten (a track that comes back is new), and
        their ids are left in :attr:`ended` until the next call: the tracker ended them, and
        receivers should hear so.
        """
        n = len(table)
        coasting = table.t - table.last_update_t > self.coast_after_s
        sent = self._sent
        self.ended = sent.track_id[~np.isin(sent.track_id, table.track_id)]
        pos = np.searchsorted(sent.track_id, table.track_id)
        pos = np.minimum(pos, max(len(sent.track_id) - 1, 0))
        known = sent.track_id[pos] == table.track_id if len(sent.track_id) else np.zeros(n, bool)
        report = ~known
        if known.any():
            k, rows = pos[known], np.flatnonzero(known)
            dt = table.t - sent.t[k]
            predicted = sent.x[k, :2] + sent.x[k, 2:] * dt[:, None]
            drift = np.hypot(*(predicted - table.x[rows, :2]).T)
            report[rows] = (
                (drift > self.threshold_m)
                | (self.threshold_m == 0.0)
                | (dt >= self.heartbeat_s)
                | (sent.coasting[k] != coasting[rows])
                | (sent.cls[k] != table.cls[rows])
            )
        chosen = np.flatnonzero(report)
        # The new memory: the chosen rows as sent now, the others as they were.
        t = np.where(report, table.t, sent.t[pos] if len(sent.t) else table.t)
        x = np.where(report[:, None], table.x[:, :4], sent.x[pos] if len(sent.t) else table.x)
        was_coasting = sent.coasting[pos] if len(sent.t) else coasting
        cls = sent.cls[pos] if len(sent.t) else table.cls
        order = np.argsort(table.track_id, kind="stable")
        self._sent = _Sent(
            table.track_id[order].astype(np.int64),
            np.asarray(t, dtype=np.float64)[order],
            np.asarray(x, dtype=np.float64)[order],
            np.where(report, coasting, was_coasting)[order],
            np.where(report, table.cls, cls)[order].astype(np.int64),
        )
        return chosen
