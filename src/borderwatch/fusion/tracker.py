"""The multi-target tracker: detections in, tracks and border alerts out.

``Tracker.step(detections, time)`` is the whole interface. It is synchronous, does no I/O and
reads no clock: ``time`` is the caller's notion of "now" on the detections' own time axis, used
only to release detections from the reorder window.

Processing of one sensor scan (all detections with the same time and sensor):

1. IMM mixing and prediction of every track to the scan time (:mod:`.imm`);
2. KD-tree pre-gating, Mahalanobis gating and GNN assignment per cluster (:mod:`.association`);
3. batched mode-matched EKF updates of the assigned tracks;
4. border decisions on the updated tracks (:mod:`.crossings`);
5. track management: M-of-N confirmation (M detections within a time window), deletion after
   missing detections for a coasting time or on covariance growth, and initiation of tentative
   tracks from unused detections.

Scans from several sensors at the same time are processed one after the other (sequential
fusion), so two sensors seeing one target update one track rather than creating two.

Identified detections (AIS reports, ``DetectionBatch.identity`` = MMSI) name their track: they
never update a track holding another identity, find the track holding theirs through a wider
gate and with a preference in the assignment, start tracks that are confirmed at once, and keep
them alive for ``identified_coast_s``. Anonymous detections (radar, camera) update identified
tracks like any other, so a vessel seen by both is one track. The output table marks own vessels
and *dark* boats: seen by anonymous sensors, silent on AIS.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree
from scipy.stats import chi2

from borderwatch.config.tracker import TrackerConfig
from borderwatch.fusion import imm
from borderwatch.fusion.association import Pairs, candidate_pairs, gnn_assign, identity_pairs
from borderwatch.fusion.borders import Border, BorderKind
from borderwatch.fusion.crossings import AlertIds, BorderMonitor
from borderwatch.fusion.detections import (
    BoolArray,
    DetectionBatch,
    FloatArray,
    IntArray,
    MeasurementKind,
    TargetClass,
)
from borderwatch.fusion.models import (
    measurement_dof,
    mode_transition,
    padded_noise,
    to_cartesian,
    transition_matrices,
)
from borderwatch.fusion.outputs import BorderAlert, TrackTable
from borderwatch.fusion.tracks import CONFIRMED, TENTATIVE, TrackStore


@dataclass(slots=True)
class TrackerStats:
    """Counters of what the tracker did; the edge reports them in the node's health."""

    detections_received: int = 0
    detections_processed: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    scans: int = 0
    tracks_created: int = 0
    tracks_confirmed: int = 0
    tracks_deleted: int = 0
    tracks_merged: int = 0
    alerts: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "detections_received": self.detections_received,
            "detections_processed": self.detections_processed,
            "rejected": dict(sorted(self.rejected.items())),
            "scans": self.scans,
            "tracks_created": self.tracks_created,
            "tracks_confirmed": self.tracks_confirmed,
            "tracks_deleted": self.tracks_deleted,
            "tracks_merged": self.tracks_merged,
            "alerts": self.alerts,
        }


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """Combined estimates and border proximity of the tracks after the last scan at ``t``
    (rows in store order; births appended after it are not covered)."""

    t: float
    xc: FloatArray
    Pc: FloatArray
    segment: IntArray
    distance: FloatArray

    def without(self, doomed: np.ndarray) -> _Snapshot:
        keep = ~doomed[: len(self.xc)]
        return _Snapshot(
            self.t, self.xc[keep], self.Pc[keep], self.segment[keep], self.distance[keep]
        )


@dataclass(frozen=True, slots=True)
class StepResult:
    """Output of :meth:`Tracker.step`.

    Attributes:
        tracks: confirmed tracks at ``tracks.t``, the time of the last processed scan (or the
            previous table when nothing was released).
        alerts: border alert events raised by the scans processed in this step, in time order.
        scan_times: times of the scans processed in this step.
        tables: one table per distinct processed scan time, in time order (``tracks`` is the
            last); empty when nothing was released.
    """

    tracks: TrackTable
    alerts: list[BorderAlert]
    scan_times: list[float]
    tables: list[TrackTable]


class Tracker:
    """IMM/GNN multi-target tracker with border crossing alerts. See the module docstring."""

    def __init__(self, config: TrackerConfig | None = None, border: Border | None = None):
        self.config = config or TrackerConfig()
        self.modes = list(self.config.modes)
        self.border = border
        self.stats = TrackerStats()
        self.store = TrackStore.empty(len(self.modes))
        self.time: float | None = None
        self._next_id = 1
        self._alert_ids = AlertIds()
        self._monitor = (
            BorderMonitor(border, self.config.crossing, self._alert_ids) if border else None
        )
        self._pending = DetectionBatch.empty()
        self._mu0 = _stationary(mode_transition(self.modes, 1.0))
        # Chi-square gates indexed by the measurement's degrees of freedom (1 or 2).
        self._gate = chi2.ppf(self.config.gate_probability, [1, 1, 2])
        self._identity_gate = chi2.ppf(self.config.identity_gate_probability, [1, 1, 2])
        self._own = np.array(sorted(self.config.own_identities), dtype=np.int64)
        self._table = TrackTable.empty(0.0, len(self.modes))
        self._snapshot: _Snapshot | None = None
        # sensor index -> (time of its last scan, smoothed interval between its scans)
        self._revisit: dict[int, tuple[float, float]] = {}
        self._transition_cache: dict[float, tuple[FloatArray, FloatArray, FloatArray]] = {}

    # ----------------------------------------------------------------------------- public API
    def step(self, detections: DetectionBatch, time: float) -> StepResult:
        """Take new detections and process every scan that the reorder window releases.

        Detections with ``t <= time - reorder_lag_s`` are processed in time order (ties by
        sensor, then arrival); later ones wait for a later step. Invalid detections, and
        detections older than the already processed time, are rejected and counted in
        :attr:`stats` (``rejected``), never raised: one bad reading must not stop the tracker.
        """
        self.stats.detections_received += len(detections)
        accepted = self._validate(detections)
        self._pending = DetectionBatch.concat([self._pending, accepted])
        ready = self._pending.t <= time - self.config.reorder_lag_s
        released = self._pending.take(ready)
        self._pending = self._pending.take(~ready)
        alerts: list[BorderAlert] = []
        times: list[float] = []
        tables: list[TrackTable] = []
        scans = _scans(released)
        for k, (t, scan) in enumerate(scans):
            alerts.extend(self._process_scan(t, scan))
            times.append(t)
            if k + 1 < len(scans) and scans[k + 1][0] != t:
                tables.append(self._build_table())
        expired = self._expire(time - self.config.reorder_lag_s)
        alerts.extend(expired)
        if times or expired:
            self._table = self._build_table()
            tables.append(self._table)
        self.stats.alerts += len(alerts)
        return StepResult(self._table, alerts, times, tables)

    def flush(self) -> StepResult:
        """Process everything still held in the reorder window (end of a recording)."""
        if len(self._pending) == 0:
            return StepResult(self._table, [], [], [])
        return self.step(
            DetectionBatch.empty(), float(self._pending.t.max()) + self.config.reorder_lag_s
        )

    @property
    def pending(self) -> int:
        """Detections waiting in the reorder window."""
        return len(self._pending)

    # ----------------------------------------------------------------------------- validation
    def _validate(self, d: DetectionBatch) -> DetectionBatch:
        if len(d) == 0:
            return d
        reasons = np.full(len(d), "", dtype=object)
        bo = d.kind == MeasurementKind.BEARING_ONLY
        z_ok = np.isfinite(d.z[:, 0]) & (np.isfinite(d.z[:, 1]) | bo)
        R = d.R
        r_ok = np.isfinite(R[:, 0, 0]) & (R[:, 0, 0] > 0)
        r2 = np.isfinite(R[:, 1, 1]) & (R[:, 1, 1] > 0) & np.isfinite(R[:, 0, 1])
        det = R[:, 0, 0] * R[:, 1, 1] - R[:, 0, 1] * R[:, 1, 0]
        sym = np.abs(R[:, 0, 1] - R[:, 1, 0]) <= 1e-9 * np.maximum(1.0, np.abs(R[:, 0, 1]))
        r_ok &= bo | (r2 & (det > 0) & sym)
        r_ok &= (R[:, 0, 0] <= _MAX_VARIANCE) & (bo | (R[:, 1, 1] <= _MAX_VARIANCE))
        known = np.isin(d.kind, [k.value for k in MeasurementKind])
        polar = d.kind != MeasurementKind.POSITION
        sensor_ok = ~polar | np.all(np.abs(d.sensor_xy) <= _MAX_COORD_M, axis=1)
        rb = d.kind == MeasurementKind.RANGE_BEARING
        position = d.kind == MeasurementKind.POSITION
        range_ok = ~rb | ((d.z[:, 0] >= _MIN_RANGE_M) & (d.z[:, 0] <= _MAX_COORD_M))
        range_ok &= ~position | np.all(np.abs(d.z) <= _MAX_COORD_M, axis=1)
        range_ok &= ~bo | (np.abs(d.z[:, 0]) <= 4 * np.pi)
        range_ok &= ~rb | (np.abs(d.z[:, 1]) <= 4 * np.pi)
        # Checks in order of precedence: the first failing one names the reason.
        for ok, reason in (
            (known, "unknown_model"),
            (np.isfinite(d.t), "bad_time"),
            (z_ok, "non_finite"),
            (r_ok, "bad_covariance"),
            (sensor_ok, "bad_sensor_position"),
            (range_ok, "out_of_range"),
        ):
            reasons[(reasons == "") & ~ok] = reason
        if self.time is not None:
            reasons[(reasons == "") & (d.t < self.time)] = "late"
        bad = reasons != ""
        if np.any(bad):
            self.stats.rejected.update(reasons[bad].tolist())
        return d.take(~bad) if np.any(bad) else d

    # ----------------------------------------------------------------------------- one scan
    def _process_scan(self, t: float, scan: DetectionBatch) -> list[BorderAlert]:
        # An AIS receiver does not revisit anything: each vessel reports at its own rate, so
        # identified scans say nothing about how often the scanning sensors come round.
        if not np.all(scan.identity):
            self._note_revisit(int(scan.sensor[0]), t)
        self.stats.scans += 1
        self.stats.detections_processed += len(scan)
        self._predict_to(t)
        store = self.store
        xc, Pc = imm.combine(store.x, store.P, store.mu)
        det_xy, det_cov = to_cartesian(scan.z, scan.R, scan.kind, scan.sensor_xy)
        R_pad = padded_noise(scan.R, scan.kind)
        gated = self._gate_pairs(xc, Pc, scan, det_xy, det_cov, R_pad)
        assigned = gnn_assign(gated, len(store), len(scan), np.full(len(store), _MISS_COST))
        # Twins are judged on when each track was last seen before this scan.
        seen_before = store.last_t.copy() if np.any(scan.identity) else store.last_t
        self._update(assigned, scan, R_pad, t)
        free = _initiation_candidates(scan, gated, assigned, len(store))
        twins = self._twins(scan, gated, assigned, R_pad, seen_before)
        xc, Pc = imm.combine(store.x, store.P, store.mu)
        alerts: list[BorderAlert] = []
        if twins is not None:
            alerts.extend(self._remove(twins, xc, Pc, t))
            self.stats.tracks_merged += int(twins.sum())
            store, xc, Pc = self.store, xc[~twins], Pc[~twins]
        segment = np.full(len(store), -1, dtype=np.int64)
        distance = np.full(len(store), np.nan)
        if self._monitor is not None and len(store):
            step_alerts, rows, prox = self._monitor.step(store, xc, Pc, t)
            segment[rows] = prox.segment
            distance[rows] = prox.signed_distance_m
            alerts.extend(step_alerts)
        # The table of this scan reuses these estimates (births come after them, tentative).
        self._snapshot = _Snapshot(t, xc, Pc, segment, distance)
        alerts.extend(self._delete(t, xc, Pc))
        self._initiate(t, scan, det_xy, det_cov, free)
        return alerts

    def _predict_to(self, t: float) -> None:
        if self.time is None:
            self.time = t
            return
        dt = t - self.time
        self.time = t
        if dt <= 0 or len(self.store) == 0:
            return
        F, Q, Pi = self._transitions(dt)
        s = self.store
        s.x, s.P, s.mu = imm.predict(s.x, s.P, s.mu, F, Q, Pi)

    def _transitions(self, dt: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        """``F``, ``Q`` and ``Π`` for an interval; scans mostly repeat a few intervals, so the
        matrices are kept (a small table, emptied when full) rather than rebuilt every scan."""
        cached = self._transition_cache.get(dt)
        if cached is None:
            if len(self._transition_cache) >= 64:
                self._transition_cache.clear()
            F, Q = transition_matrices(self.modes, dt)
            cached = (F, Q, mode_transition(self.modes, dt))
            self._transition_cache[dt] = cached
        return cached

    def _gate_pairs(
        self,
        xc: FloatArray,
        Pc: FloatArray,
        scan: DetectionBatch,
        det_xy: FloatArray,
        det_cov: FloatArray,
        R_pad: FloatArray,
    ) -> Pairs:
        n = len(self.store)
        if n == 0 or len(scan) == 0:
            z = np.zeros(0, dtype=np.int64)
            return Pairs(z, z, np.zeros(0), np.zeros(0))
        has_xy = scan.kind != MeasurementKind.BEARING_ONLY
        det_var = float(np.max(imm.max_eig2(det_cov[has_xy]))) if np.any(has_xy) else 0.0
        trk_var = imm.max_eig2(Pc[:, :2, :2])
        radius = np.minimum(np.sqrt(self._gate[2] * (trk_var + det_var)), self.config.max_gate_m)
        trk, det = candidate_pairs(xc[:, :2], radius, det_xy, has_xy)
        named = np.any(scan.identity)
        if named:
            # A detection naming a track's identity is sought whatever the distance (an
            # anchored vessel reports every 3 minutes, and its track has drifted in between).
            i_trk, i_det = identity_pairs(self.store.identity, scan.identity)
            if i_trk.size:
                d = len(scan)
                key = np.unique(np.concatenate([trk * d + det, i_trk * d + i_det]))
                trk, det = key // d, key % d
        d2, logdet = imm.gate_statistics(
            xc[trk], Pc[trk], scan.z[det], R_pad[det], scan.kind[det], scan.sensor_xy[det]
        )
        dof = measurement_dof(scan.kind[det])
        # A bearing cannot confirm that anything exists at a tentative track's range: any
        # target along the ray would "hit" it. Bearings only refine confirmed tracks.
        bearing = scan.kind[det] == MeasurementKind.BEARING_ONLY
        usable = ~bearing | (self.store.status[trk] == CONFIRMED)
        if not named:
            return Pairs(trk, det, d2, logdet).select(usable & (d2 <= self._gate[dof]))
        trk_id, det_id = self.store.identity[trk], scan.identity[det]
        same = (det_id != 0) & (trk_id == det_id)
        other = (det_id != 0) & (trk_id != 0) & (trk_id != det_id)
        gate = np.where(same, self._identity_gate[dof], self._gate[dof])
        inside = usable & ~other & (d2 <= gate)
        bonus = np.where(same, _IDENTITY_BONUS, 0.0)
        return Pairs(trk, det, d2, logdet, bonus).select(inside)

    def _update(self, assigned: Pairs, scan: DetectionBatch, R_pad: FloatArray, t: float) -> None:
        s = self.store
        if len(s) == 0:
            return
        a_trk, a_det = assigned.track, assigned.det
        if a_trk.size:
            s.x[a_trk], s.P[a_trk], s.mu[a_trk] = imm.update(
                s.x[a_trk],
                s.P[a_trk],
                s.mu[a_trk],
                scan.z[a_det],
                R_pad[a_det],
                scan.kind[a_det],
                scan.sensor_xy[a_det],
            )
        s.hits[a_trk] += 1
        s.last_t[a_trk] = t
        s.sensor_mask[a_trk] |= np.left_shift(1, np.minimum(scan.sensor[a_det], 62))
        np.add.at(s.cls_evidence, (a_trk, scan.cls[a_det]), scan.cls_conf[a_det])
        det_id = scan.identity[a_det]
        named = det_id != 0
        if np.any(named):
            rows = a_trk[named]
            s.identity[rows] = det_id[named]
            s.identity_t[rows] = t
            s.own[rows] = np.isin(det_id[named], self._own)
        anon = a_trk[~named]
        s.anon_t[anon] = t
        s.anon_first_t[anon] = np.fmin(s.anon_first_t[anon], t)  # NaN until the first
        # An identified update confirms at once: the vessel reported its own position.
        ready = (s.hits >= self.config.confirm_hits) | (s.identity != 0)
        promote = (s.status == TENTATIVE) & ready
        s.status[promote] = CONFIRMED
        self.stats.tracks_confirmed += int(promote.sum())

    def _expire(self, now: float) -> list[BorderAlert]:
        """Delete stale tracks (see :meth:`_stale`) when time passes without any scan.

        Scans that contain no detection at all never reach the tracker, so silence alone must
        be able to end a track (and its alerts).
        """
        s = self.store
        if len(s) == 0 or self.time is None:
            return []
        doomed = self._stale(now)
        if not np.any(doomed):
            return []
        xc, Pc = imm.combine(s.x, s.P, s.mu)
        return self._remove(doomed, xc, Pc, max(now, self.time))

    def _note_revisit(self, sensor: int, t: float) -> None:
        last = self._revisit.get(sensor)
        if last is None:
            self._revisit[sensor] = (t, 0.0)
            return
        last_t, interval = last
        if t > last_t:
            dt = t - last_t
            interval = dt if interval == 0.0 else 0.8 * interval + 0.2 * dt
        self._revisit[sensor] = (max(t, last_t), interval)

    def time_scale(self) -> float:
        """Factor (≥ 1) by which the time thresholds stretch for sensors slower than nominal."""
        slowest = max((i for _t, i in self._revisit.values()), default=0.0)
        return max(1.0, slowest / self.config.nominal_revisit_s)

    def _stale(self, now: float) -> np.ndarray:
        """Tracks that missed detections for too long, or failed M-of-N confirmation, by ``now``.

        Misses are counted in time rather than in scans: a scan from a sensor whose field of
        view does not cover a track says nothing about it, and sensors of different rates mix.
        An identified track coasts for ``identified_coast_s`` at least: its vessel may report
        only every 3 minutes.
        """
        s, c = self.store, self.config
        k = self.time_scale()
        silent = now - s.last_t
        tentative = s.status == TENTATIVE
        too_old = now - s.first_t > k * c.confirm_window_s
        coast = k * c.coast_s
        coast_limit = np.where(s.identity != 0, max(coast, c.identified_coast_s), coast)
        return np.asarray(
            (tentative & ((silent > k * c.tentative_coast_s) | too_old))
            | (~tentative & (silent > coast_limit))
        )

    def _delete(self, t: float, xc: FloatArray, Pc: FloatArray) -> list[BorderAlert]:
        s, c = self.store, self.config
        if len(s) == 0:
            return []
        # An identified track's covariance grows between sparse reports; its next report finds
        # it by identity, so only silence (identified_coast_s) ends it.
        vague = (imm.max_eig2(Pc[:, :2, :2]) > c.max_position_sigma_m**2) & (s.identity == 0)
        doomed = self._stale(t) | vague
        if not np.any(doomed):
            return []
        return self._remove(doomed, xc, Pc, t)

    def _remove(
        self, doomed: np.ndarray, xc: FloatArray, Pc: FloatArray, t: float
    ) -> list[BorderAlert]:
        s = self.store
        alerts: list[BorderAlert] = []
        if self._monitor is not None:
            alerts = self._monitor.end_lost(s, np.flatnonzero(doomed), xc, Pc, t)
        self.stats.tracks_deleted += int(doomed.sum())
        self.store = s.select(~doomed)
        if self._snapshot is not None:
            self._snapshot = self._snapshot.without(doomed)
        return alerts

    def _twins(
        self,
        scan: DetectionBatch,
        gated: Pairs,
        assigned: Pairs,
        R_pad: FloatArray,
        seen_before: FloatArray,
    ) -> BoolArray | None:
        """Anonymous tracks that an identified detection just showed to be its vessel's twin.

        A vessel can get a second, anonymous track when radar saw it where its identified track
        did not reach (a long ship whose radar echo centre is far from its GNSS antenna, a track
        that coasted out of reach between sparse reports). When an identified detection updates
        the identified track and also falls in the gate of such an anonymous track that no
        detection of this scan updated, the two are one vessel: the anonymous twin is merged
        into the identified track, which keeps its id and identity and takes over the twin's
        sensors and anonymous-sensor times. When the twin was seen more recently than the
        identified track (which coasted, perhaps far off, between sparse reports), the twin's
        filter state is the better one: the identified track takes it, updated with the report.

        Returns the mask of tracks to remove, or None when there is none.
        """
        s = self.store
        if len(gated) == 0 or not np.any(scan.identity[assigned.det]):
            return None
        owner = np.full(len(scan), -1, dtype=np.int64)
        owner[assigned.det] = assigned.track
        updated = np.zeros(len(s), dtype=bool)
        updated[assigned.track] = True
        target = owner[gated.det]
        twin = (
            (scan.identity[gated.det] != 0)
            & (target >= 0)
            & (target != gated.track)
            & (s.identity[gated.track] == 0)
            & ~updated[gated.track]
        )
        if not np.any(twin):
            return None
        # One surviving track per twin (the first pair in the canonical order).
        rows, first = np.unique(gated.track[twin], return_index=True)
        into = target[twin][first]
        fresher = seen_before[rows] > seen_before[into]
        if np.any(fresher):
            r, a, d = rows[fresher], into[fresher], gated.det[twin][first][fresher]
            s.x[a], s.P[a], s.mu[a] = imm.update(
                s.x[r], s.P[r], s.mu[r], scan.z[d], R_pad[d], scan.kind[d], scan.sensor_xy[d]
            )
        np.bitwise_or.at(s.sensor_mask, into, s.sensor_mask[rows])
        np.fmin.at(s.anon_first_t, into, s.anon_first_t[rows])
        np.fmax.at(s.anon_t, into, s.anon_t[rows])
        doomed = np.zeros(len(s), dtype=bool)
        doomed[rows] = True
        return doomed

    def _initiate(
        self,
        t: float,
        scan: DetectionBatch,
        det_xy: FloatArray,
        det_cov: FloatArray,
        free: np.ndarray,
    ) -> None:
        idx = np.flatnonzero(free)
        if idx.size == 0:
            return
        k, m = idx.size, len(self.modes)
        x = np.zeros((k, m, 4))
        x[:, :, :2] = det_xy[idx, None, :]
        P = np.zeros((k, m, 4, 4))
        P[:, :, :2, :2] = det_cov[idx, None] + _MIN_INITIAL_VARIANCE_M2 * np.eye(2)
        var_v = self.config.initial_speed_sigma_mps**2
        P[:, :, 2, 2] = var_v
        P[:, :, 3, 3] = var_v
        ids = np.arange(self._next_id, self._next_id + k, dtype=np.int64)
        self._next_id += k
        identity = scan.identity[idx]
        born = TrackStore.new(
            ids,
            x,
            P,
            np.tile(self._mu0, (k, 1)),
            t,
            scan.sensor[idx],
            scan.cls[idx],
            scan.cls_conf[idx],
            identity,
            np.isin(identity, self._own),
        )
        self.stats.tracks_confirmed += int(np.count_nonzero(identity))
        if self._monitor is not None:
            born.side[:] = self._inherited_sides(t, det_xy[idx])
        self.store = self.store.append(born)
        self.stats.tracks_created += k

    def _inherited_sides(self, t: float, xy: FloatArray) -> IntArray:
        """Border side handed over to new tracks from nearby confirmed tracks that just lost
        their target.

        A sharp turn at the line can make a track lose its target; the successor track is then
        born on the far side and would never see a crossing. Inheriting the established side
        of a coasting confirmed track within ``handover_radius_m`` keeps the crossing visible.
        """
        s = self.store
        sides = np.zeros(xy.shape[0], dtype=np.int64)
        coasting = np.flatnonzero((s.status == CONFIRMED) & (s.last_t < t) & (s.side != 0))
        if coasting.size == 0:
            return sides
        centre = np.einsum("nj,njd->nd", s.mu[coasting], s.x[coasting])[:, :2]
        radius = self.config.crossing.handover_radius_m
        dist, nearest = cKDTree(centre).query(xy, k=1, distance_upper_bound=radius)
        found = np.isfinite(dist)
        sides[found] = s.side[coasting[nearest[found]]]
        return sides

    # ----------------------------------------------------------------------------- output
    def _build_table(self) -> TrackTable:
        s = self.store
        t = float(self.time if self.time is not None else 0.0)
        sel = np.flatnonzero(s.status == CONFIRMED)
        if sel.size == 0:
            return TrackTable.empty(t, len(self.modes))
        snap = self._snapshot
        if snap is not None and snap.t == t and sel.max() < len(snap.xc):
            xc, Pc = snap.xc[sel], snap.Pc[sel]
            segment, distance = snap.segment[sel], snap.distance[sel]
        else:
            xc, Pc = imm.combine(s.x[sel], s.P[sel], s.mu[sel])
            segment = np.full(sel.size, -1, dtype=np.int64)
            distance = np.full(sel.size, np.nan)
            if self.border is not None:
                prox = self.border.proximity(xc[:, :2])
                segment, distance = prox.segment, prox.signed_distance_m
        evidence = s.cls_evidence[sel]
        total = evidence.sum(axis=1)
        cls_conf = np.where(total > 0, evidence.max(axis=1) / np.maximum(total, 1e-12), 0.0)
        if self.border is not None:
            side = np.where(s.side[sel] != 0, s.side[sel], np.where(distance >= 0, 1, -1))
        else:
            side = np.zeros(sel.size, dtype=np.int64)
        cls = np.argmax(evidence, axis=1).astype(np.int64)
        return TrackTable(
            t=t,
            track_id=s.track_id[sel],
            x=xc,
            P=Pc,
            mode_prob=s.mu[sel],
            cls=cls,
            cls_conf=cls_conf,
            hits=s.hits[sel],
            first_t=s.first_t[sel],
            last_update_t=s.last_t[sel],
            sensor_mask=s.sensor_mask[sel],
            side=side.astype(np.int64),
            border_segment=segment,
            border_distance_m=distance,
            identity=s.identity[sel],
            own=s.own[sel],
            dark=self._dark(sel, t, cls, segment, distance),
            identity_t=s.identity_t[sel],
        )

    def _dark(
        self, sel: IntArray, t: float, cls: IntArray, segment: IntArray, distance: FloatArray
    ) -> BoolArray:
        """Which of the confirmed tracks ``sel`` are dark boats (no AIS).

        A track is dark when (1) anonymous sensors (radar, camera) have seen it over at least
        ``dark_after_s``, (2) it is a boat: class boat, an identity (only vessels send AIS
        position reports), or within ``dark_water_distance_m`` of a blue border segment, and
        (3) no identified report has come for ``identified_coast_s`` (a track that never had
        one qualifies at once): a vessel reporting every 3 minutes at anchor is not dark, one
        that switched its transponder off becomes dark.
        """
        s, c = self.store, self.config
        seen = s.anon_t[sel] - s.anon_first_t[sel] >= c.dark_after_s  # False while NaN
        silent = ~(t - s.identity_t[sel] < c.identified_coast_s)  # True while NaN
        boat = (cls == TargetClass.BOAT) | (s.identity[sel] != 0)
        if self.border is not None:
            on_line = segment >= 0
            blue = np.zeros(sel.size, dtype=bool)
            blue[on_line] = self.border.kind[segment[on_line]] == BorderKind.BLUE
            boat |= blue & (np.abs(distance) <= c.dark_water_distance_m)
        return np.asarray(seen & silent & boat)


#: Plausibility limits: a local tangent plane is only meaningful within a few hundred km, a
#: sensor's 1-σ beyond 10,000 km says nothing, and a radar cannot measure a range below 1 m.
_MAX_COORD_M = 1e7
_MAX_VARIANCE = 1e14
_MIN_RANGE_M = 1.0
#: Smallest position variance a new track starts with (1 cm², against degenerate conversions).
_MIN_INITIAL_VARIANCE_M2 = 1e-4

#: Subtracted from the cost of a pair whose detection and track hold the same identity: far
#: more than any difference of ``d² + ln det S`` between gated pairs, far less than the miss cost.
_IDENTITY_BONUS = 1e3

#: Cost of leaving a track without a detection. Larger than any gated pair's cost: inside a
#: cluster the assignment first serves as many tracks as it can, then minimises the total
#: ``d² + ln det S`` (a well-known track keeps its detection against a wide new one).
_MISS_COST = 1e6


def _initiation_candidates(
    scan: DetectionBatch, gated: Pairs, assigned: Pairs, n_tracks: int
) -> np.ndarray:
    """Detections that may start a track: unassigned, with a position, not next to a hit.

    A detection inside the gate of a track updated by this very scan is most likely the same
    object seen twice (an overlapping sensor, a split blob): it must not start a twin track.
    """
    free: np.ndarray = np.asarray(scan.kind != MeasurementKind.BEARING_ONLY)
    free[assigned.det] = False
    if len(gated):
        updated = np.zeros(n_tracks, dtype=bool)
        updated[assigned.track] = True
        free[gated.det[updated[gated.track]]] = False
    return free


def _stationary(Pi: FloatArray) -> FloatArray:
    """Stationary distribution of a mode transition matrix (initial mode probabilities)."""
    values, vectors = np.linalg.eig(Pi.T)
    v = np.real(vectors[:, np.argmin(np.abs(values - 1.0))])
    v = np.abs(v)
    return np.asarray(v / v.sum(), dtype=np.float64)


def _scans(batch: DetectionBatch) -> list[tuple[float, DetectionBatch]]:
    """Split detections into scans (same time and sensor), in time, then sensor, order.

    Within a scan, detections are put in a canonical order (by measurement), so the result
    does not depend on the order in which a transport delivered them.
    """
    if len(batch) == 0:
        return []
    order = np.lexsort(
        (batch.identity, batch.z[:, 1], batch.z[:, 0], batch.kind, batch.sensor, batch.t)
    )
    b = batch.take(order)
    change = np.flatnonzero((np.diff(b.t) != 0) | (np.diff(b.sensor) != 0)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(b)]])
    return [(float(b.t[s]), b.take(np.arange(s, e))) for s, e in zip(starts, ends, strict=True)]
