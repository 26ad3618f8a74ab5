"""Scoring tracks and border alerts against ground truth.

Three families of figures, all described with their formulas in ``docs/metrics.md``:

* **GOSPA** (García-Fernández, Rahmathullah & Svensson, 2017) with cut-off ``c`` (metres),
  order ``p`` and ``α = 2``, evaluated at every truth time, with its decomposition into
  localisation, missed-target and false-track terms.
* **Identity**: ID switches, fragmentations, false tracks and per-truth track purity, read off
  the per-step GOSPA assignments.
* **Crossings**: truth border crossings matched one-to-one to ``new`` alerts; detected, missed,
  false alerts and alert delay.

The pure functions work on numpy arrays and the table types of :mod:`borderwatch.csvfiles`;
:func:`score_files` reads the CSV files and returns a JSON-ready ``dict``.

Times are seconds, positions metres in the local east/north frame. GOSPA terms are in
``metres ** p``; the GOSPA value itself is in metres.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from borderwatch.csvfiles import AlertRow, StateTable, read_alerts, read_tracks, read_truth
from borderwatch.errors import InputError
from borderwatch.fusion.borders import Border, load_border
from borderwatch.fusion.detections import FloatArray, IntArray

log = logging.getLogger(__name__)

#: Version of the shape of the ``dict`` returned by :func:`score_run` and :func:`score_files`.
SCORE_SCHEMA_VERSION = 1

#: Default GOSPA cut-off distance c, metres.
DEFAULT_C_M = 50.0
#: Default GOSPA order p.
DEFAULT_P = 2.0
#: GOSPA α; fixed at 2, the value for which GOSPA splits into localisation, missed and false.
GOSPA_ALPHA = 2.0
#: Track rows within this many seconds of a truth time are scored at that time.
TIME_TOLERANCE_S = 1e-3

#: Name of the border file looked for beside truth.csv when no border is given.
BORDER_FILENAME = "border.geojson"

_EPS_S = 1e-9  # slack on time comparisons, so that 1.001 - 1.000 counts as 1 ms


# --------------------------------------------------------------------------------------------
# GOSPA at one time step


@dataclass(frozen=True, slots=True)
class GospaStep:
    """GOSPA (``α = 2``) between one set of truth positions and one set of track positions.

    ``distance_m ** p == localisation + missed + false`` (up to rounding).

    Attributes:
        distance_m: the GOSPA value, metres.
        localisation: sum of ``d ** p`` over assigned pairs, ``m ** p``.
        missed: ``c ** p / 2`` times the number of unassigned truths, ``m ** p``.
        false: ``c ** p / 2`` times the number of unassigned tracks, ``m ** p``.
        n_missed: number of unassigned truths.
        n_false: number of unassigned tracks.
        truth_index: index into the truth positions of each assigned pair, ascending.
        track_index: index into the track positions of each assigned pair.
        pair_distance_m: Euclidean distance of each assigned pair (always ``< c``), metres.
    """

    distance_m: float
    localisation: float
    missed: float
    false: float
    n_missed: int
    n_false: int
    truth_index: IntArray
    track_index: IntArray
    pair_distance_m: FloatArray


def check_gospa_parameters(c: float, p: float) -> None:
    """Raise :class:`InputError` unless ``0 < c < inf`` (metres) and ``1 <= p < inf``."""
    if not (math.isfinite(c) and c > 0):
        raise InputError(f"GOSPA cut-off c must be a positive number of metres, got {c!r}")
    if not (math.isfinite(p) and p >= 1):
        raise InputError(f"GOSPA order p must be a number >= 1, got {p!r}")


def gospa(
    truth_xy: FloatArray, track_xy: FloatArray, c: float = DEFAULT_C_M, p: float = DEFAULT_P
) -> GospaStep:
    """GOSPA with ``α = 2`` between truth positions ``(n, 2)`` and track positions ``(m, 2)``.

    ``GOSPA = (min_γ Σ_{(i,j)∈γ} d_ij^p + c^p/2 · (n + m − 2|γ|))^(1/p)`` over partial
    assignments ``γ`` whose pairs are closer than ``c`` metres. This equals the optimal full
    assignment on ``min(d, c)^p`` with pairs at ``d >= c`` counted as one missed truth and one
    false track. Only pairs closer than ``c`` can be assigned, so the problem is solved exactly
    on each connected component of the "closer than c" graph (found with a KD-tree), which
    keeps large, spread-out scenes fast.
    """
    check_gospa_parameters(c, p)
    X = np.asarray(truth_xy, dtype=np.float64).reshape(-1, 2)
    Y = np.asarray(track_xy, dtype=np.float64).reshape(-1, 2)
    n, m = X.shape[0], Y.shape[0]
    rows, cols, dist = _pairs_closer_than(X, Y, c)
    cp = c**p
    chosen = _min_weight_matching(n, m, rows, cols, dist**p - cp)
    ti, ki, d = rows[chosen], cols[chosen], dist[chosen]
    order = np.argsort(ti, kind="stable")
    ti, ki, d = ti[order], ki[order], d[order]
    localisation = float(np.sum(d**p))
    n_missed, n_false = n - ti.size, m - ti.size
    missed, false = cp / 2 * n_missed, cp / 2 * n_false
    return GospaStep(
        distance_m=float((localisation + missed + false) ** (1.0 / p)),
        localisation=localisation,
        missed=missed,
        false=false,
        n_missed=n_missed,
        n_false=n_false,
        truth_index=ti,
        track_index=ki,
        pair_distance_m=d,
    )


def _pairs_closer_than(
    X: FloatArray, Y: FloatArray, c: float
) -> tuple[IntArray, IntArray, FloatArray]:
    """All pairs ``(i, j)`` with ``|X_i − Y_j| < c``, and their distances."""
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    found = cKDTree(X).sparse_distance_matrix(cKDTree(Y), c, output_type="ndarray")
    keep = found["v"] < c
    return (
        found["i"][keep].astype(np.int64),
        found["j"][keep].astype(np.int64),
        found["v"][keep].astype(np.float64),
    )


def _min_weight_matching(
    n_rows: int, n_cols: int, rows: IntArray, cols: IntArray, weight: FloatArray
) -> IntArray:
    """Indices of the edges of a matching of least total weight; every weight must be < 0.

    Leaving a row or column unmatched costs nothing, so the problem splits into the connected
    components of the bipartite graph; each is solved exactly with ``linear_sum_assignment`` on
    a dense block whose non-edges weigh 0 (the same as leaving both ends unmatched).
    """
    if rows.size == 0:
        return np.zeros(0, np.int64)
    nodes = n_rows + n_cols
    graph = coo_matrix((np.ones(rows.size), (rows, n_rows + cols)), shape=(nodes, nodes))
    _, label = connected_components(graph, directed=False)
    comp = label[rows]
    order = np.argsort(comp, kind="stable")
    starts = np.flatnonzero(np.r_[True, comp[order][1:] != comp[order][:-1]])
    ends = np.r_[starts[1:], order.size]
    single = ends - starts == 1
    # A component with a single edge is that edge: every edge has a negative weight.
    chosen = [order[starts[single]]]
    for s, e in zip(starts[~single].tolist(), ends[~single].tolist(), strict=True):
        edges = order[s:e]
        ur, r_at = np.unique(rows[edges], return_inverse=True)
        uc, c_at = np.unique(cols[edges], return_inverse=True)
        block = np.zeros((ur.size, uc.size))
        block[r_at, c_at] = weight[edges]
        edge_at = np.full((ur.size, uc.size), -1, dtype=np.int64)
        edge_at[r_at, c_at] = edges
        r, k = linear_sum_assignment(block)
        picked = edge_at[r, k]
        chosen.append(picked[picked >= 0])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Time alignment and GOSPA over a run


@dataclass(frozen=True, slots=True)
class StepAlignment:
    """Scoring steps (the distinct truth times) and the step of every truth and track row.

    Attributes:
        t: ``(S,)`` step times, seconds, ascending.
        truth_step: step index of each truth row.
        track_step: step index of each track row, ``-1`` where no truth time is within the
            tolerance (the row is not scored).
    """

    t: FloatArray
    truth_step: IntArray
    track_step: IntArray

    @property
    def unscored_track_rows(self) -> int:
        """Track rows at times absent from truth."""
        return int(np.count_nonzero(self.track_step < 0))


def align_steps(
    truth_t: FloatArray, track_t: FloatArray, tol_s: float = TIME_TOLERANCE_S
) -> StepAlignment:
    """Steps at the distinct truth times; each track row goes to the nearest within ``tol_s``.

    Truth times closer than ``tol_s / 2`` are one step (CSV times have millisecond
    resolution, so this only merges rounding noise), timed at the earliest of them.
    """
    truth_t = np.asarray(truth_t, dtype=np.float64).reshape(-1)
    track_t = np.asarray(track_t, dtype=np.float64).reshape(-1)
    truth_step = np.zeros(truth_t.size, dtype=np.int64)
    if truth_t.size == 0:
        return StepAlignment(np.zeros(0), truth_step, np.full(track_t.size, -1, dtype=np.int64))
    order = np.argsort(truth_t, kind="stable")
    ts = truth_t[order]
    first = np.r_[True, np.diff(ts) >= tol_s / 2]
    truth_step[order] = np.cumsum(first) - 1
    step_t = ts[first]
    right = np.clip(np.searchsorted(step_t, track_t), 0, step_t.size - 1)
    left = np.clip(right - 1, 0, step_t.size - 1)
    nearest = np.where(
        np.abs(track_t - step_t[left]) <= np.abs(track_t - step_t[right]), left, right
    )
    ok = np.abs(track_t - step_t[nearest]) <= tol_s + _EPS_S
    return StepAlignment(step_t, truth_step, np.where(ok, nearest, -1).astype(np.int64))


@dataclass(frozen=True, slots=True)
class TrackScore:
    """GOSPA per step and the assignments behind it, for a whole run.

    Per-step arrays have shape ``(S,)``; GOSPA terms are in ``m ** p``.

    Attributes:
        c: cut-off distance, metres.
        p: order.
        alignment: scoring steps and the step of every row.
        gospa_m: GOSPA value per step, metres.
        localisation, missed, false: GOSPA terms per step, ``m ** p``.
        n_truth, n_track, n_missed, n_false: counts per step.
        truth_track_row: for each truth row, the track row assigned to it at its step, or
            ``-1`` when it is missed.
        pair_distance_m: for each truth row, the distance to its assigned track row (NaN when
            missed), metres.
    """

    c: float
    p: float
    alignment: StepAlignment
    gospa_m: FloatArray
    localisation: FloatArray
    missed: FloatArray
    false: FloatArray
    n_truth: IntArray
    n_track: IntArray
    n_missed: IntArray
    n_false: IntArray
    truth_track_row: IntArray
    pair_distance_m: FloatArray

    @property
    def steps(self) -> int:
        """Number of scoring steps (distinct truth times)."""
        return int(self.gospa_m.size)


def _group_by_step(step: IntArray, n_steps: int) -> tuple[IntArray, IntArray]:
    """Row indices ordered by step, and the bounds ``(S + 1,)`` of each step's slice."""
    rows = np.flatnonzero(step >= 0)
    rows = rows[np.argsort(step[rows], kind="stable")]
    bounds = np.searchsorted(step[rows], np.arange(n_steps + 1))
    return rows.astype(np.int64), bounds.astype(np.int64)


def score_tracks(
    truth: StateTable,
    tracks: StateTable,
    c: float = DEFAULT_C_M,
    p: float = DEFAULT_P,
    tol_s: float = TIME_TOLERANCE_S,
) -> TrackScore:
    """GOSPA (``α = 2``) at every truth time between truth and track positions.

    Track rows are scored at the truth time within ``tol_s`` seconds (see
    :func:`align_steps`); a truth time without track rows scores all truths as missed.
    """
    check_gospa_parameters(c, p)
    al = align_steps(truth.t, tracks.t, tol_s)
    S = al.t.size
    t_rows, t_bounds = _group_by_step(al.truth_step, S)
    k_rows, k_bounds = _group_by_step(al.track_step, S)
    per_step = np.zeros((4, S))
    counts = np.zeros((4, S), dtype=np.int64)
    truth_track_row = np.full(truth.t.size, -1, dtype=np.int64)
    pair_distance = np.full(truth.t.size, np.nan)
    for s in range(S):
        tr = t_rows[t_bounds[s] : t_bounds[s + 1]]
        kr = k_rows[k_bounds[s] : k_bounds[s + 1]]
        g = gospa(truth.xy[tr], tracks.xy[kr], c, p)
        per_step[:, s] = (g.distance_m, g.localisation, g.missed, g.false)
        counts[:, s] = (tr.size, kr.size, g.n_missed, g.n_false)
        truth_track_row[tr[g.truth_index]] = kr[g.track_index]
        pair_distance[tr[g.truth_index]] = g.pair_distance_m
    return TrackScore(
        c=float(c),
        p=float(p),
        alignment=al,
        gospa_m=per_step[0],
        localisation=per_step[1],
        missed=per_step[2],
        false=per_step[3],
        n_truth=counts[0],
        n_track=counts[1],
        n_missed=counts[2],
        n_false=counts[3],
        truth_track_row=truth_track_row,
        pair_distance_m=pair_distance,
    )


# --------------------------------------------------------------------------------------------
# Identity: ID switches, fragmentations, purity, false tracks


@dataclass(frozen=True, slots=True)
class IdentityScore:
    """Track identity figures read off the per-step assignments.

    Attributes:
        id_switches: changes of assigned track between consecutive assigned steps of a truth,
            summed over truths.
        fragmentations: interruptions of a truth's coverage (assigned, then missed at one or
            more steps, then assigned again), summed over truths.
        false_tracks: scored tracks never assigned to any truth.
        purity: per truth id with at least one assigned step, the fraction of its assigned
            steps that went to its most frequent track, in ``(0, 1]``.
    """

    id_switches: int
    fragmentations: int
    false_tracks: int
    purity: dict[str, float]


def identity_metrics(
    truth_id: Sequence[str],
    truth_step: IntArray,
    assigned_track: Sequence[str | None],
    scored_track_ids: Sequence[str] = (),
) -> IdentityScore:
    """ID switches, fragmentations, purity and false tracks.

    Args:
        truth_id: truth id of each truth row.
        truth_step: step index (or any time-ordered integer) of each truth row.
        assigned_track: track id assigned to each truth row, ``None`` when missed.
        scored_track_ids: ids of all scored track rows (repeats allowed); those never found
            in ``assigned_track`` are false tracks.
    """
    n = len(truth_id)
    steps = np.asarray(truth_step, dtype=np.int64).reshape(-1)
    if steps.size != n or len(assigned_track) != n:
        raise ValueError("truth_id, truth_step and assigned_track must have the same length")
    assigned_ids = {a for a in assigned_track if a is not None}
    false_tracks = len(set(scored_track_ids) - assigned_ids)
    if n == 0:
        return IdentityScore(0, 0, false_tracks, {})
    truth_names, truth_code = np.unique(np.asarray(truth_id, dtype=str), return_inverse=True)
    track_names = sorted(assigned_ids)
    code_of = {name: i for i, name in enumerate(track_names)}
    track_code = np.array([-1 if a is None else code_of[a] for a in assigned_track], np.int64)

    order = np.lexsort((steps, truth_code))
    who, track = truth_code[order], track_code[order]
    on = track >= 0
    same_truth = np.r_[False, who[1:] == who[:-1]]
    # Fragmentations: starts of covered runs after the first one, per truth.
    run_start = on & ~(same_truth & np.r_[False, on[:-1]])
    runs = np.bincount(who[run_start], minlength=truth_names.size)
    fragmentations = int(np.sum(np.maximum(runs - 1, 0)))
    # ID switches: along each truth's assigned steps only.
    aw, at = who[on], track[on]
    id_switches = int(np.count_nonzero((aw[1:] == aw[:-1]) & (at[1:] != at[:-1])))
    # Purity: share of the most frequent track among a truth's assigned steps.
    pairs, pair_count = np.unique(np.column_stack([aw, at]), axis=0, return_counts=True)
    covered = np.bincount(aw, minlength=truth_names.size)
    best = np.zeros(truth_names.size, dtype=np.int64)
    np.maximum.at(best, pairs[:, 0], pair_count)
    purity = {str(truth_names[i]): float(best[i] / covered[i]) for i in np.flatnonzero(covered)}
    return IdentityScore(id_switches, fragmentations, false_tracks, purity)


def identity_from_score(truth: StateTable, tracks: StateTable, score: TrackScore) -> IdentityScore:
    """:func:`identity_metrics` for the assignments of a :class:`TrackScore`."""
    assigned = [None if k < 0 else tracks.ids[k] for k in score.truth_track_row.tolist()]
    scored = [tracks.ids[k] for k in np.flatnonzero(score.alignment.track_step >= 0).tolist()]
    return identity_metrics(truth.ids, score.alignment.truth_step, assigned, scored)


# --------------------------------------------------------------------------------------------
# Border crossings


@dataclass(frozen=True, slots=True)
class TruthCrossing:
    """A truth path crossing the border: time (s), direction, and crossing point (m)."""

    truth_id: str
    t: float
    direction: str
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class CrossingRules:
    """When a ``new`` alert may match a truth crossing.

    Attributes:
        before_s: an alert may come up to this many seconds before the crossing.
        after_s: an alert may come up to this many seconds after the crossing.
        radius_m: an alert within this distance of the crossing point matches even when its
            track was not assigned to the crossing truth, metres.
    """

    before_s: float = 10.0
    after_s: float = 30.0
    radius_m: float = 50.0


@dataclass(frozen=True, slots=True)
class CrossingScore:
    """Truth crossings matched one-to-one to ``new`` alerts.

    Attributes:
        truth: number of truth crossings.
        new_alerts: number of ``new`` alerts considered.
        matches: ``(crossing index, alert index)`` pairs; alert indices refer to the full
            alert list passed to :func:`match_crossings`, ordered by crossing.
        delay_s: alert time minus crossing time for each match, seconds (same order).
    """

    truth: int
    new_alerts: int
    matches: list[tuple[int, int]]
    delay_s: FloatArray

    @property
    def detected(self) -> int:
        """Truth crossings with a matching alert."""
        return len(self.matches)

    @property
    def missed(self) -> int:
        """Truth crossings without a matching alert."""
        return self.truth - self.detected

    @property
    def false_alerts(self) -> int:
        """``new`` alerts matched to no crossing (including repeats for one crossing)."""
        return self.new_alerts - self.detected


def truth_crossings(truth: StateTable, border: Border) -> list[TruthCrossing]:
    """Crossings of each truth id's path (its rows in time order), sorted by time then id."""
    out: list[TruthCrossing] = []
    if truth.t.size == 0:
        return out
    names, code = np.unique(np.asarray(truth.ids, dtype=str), return_inverse=True)
    order = np.lexsort((truth.t, code))
    bounds = np.searchsorted(code[order], np.arange(names.size + 1))
    for i, name in enumerate(names.tolist()):
        rows = order[bounds[i] : bounds[i + 1]]
        for cr in border.path_crossings(truth.t[rows], truth.xy[rows]):
            out.append(TruthCrossing(str(name), cr.t, cr.direction, cr.x, cr.y))
    out.sort(key=lambda c: (c.t, c.truth_id))
    return out


def alert_truths(
    alerts: Sequence[AlertRow], truth: StateTable, tracks: StateTable, score: TrackScore
) -> list[str | None]:
    """The truth id each alert's track was assigned to at the alert time.

    The assignment is read at the scored row of the alert's track nearest in time to the alert
    (the earlier one on a tie). ``None`` when that row was assigned to no truth or the track has
    no scored row.
    """
    truth_of_track_row = {
        k: truth.ids[i] for i, k in enumerate(score.truth_track_row.tolist()) if k >= 0
    }
    scored = np.flatnonzero(score.alignment.track_step >= 0)
    rows_of: dict[str, list[int]] = {}
    for k in scored[np.argsort(tracks.t[scored], kind="stable")].tolist():
        rows_of.setdefault(tracks.ids[k], []).append(k)
    out: list[str | None] = []
    for a in alerts:
        rows = rows_of.get(a.track_id)
        if not rows:
            out.append(None)
            continue
        nearest = rows[int(np.argmin(np.abs(tracks.t[rows] - a.t)))]
        out.append(truth_of_track_row.get(nearest))
    return out


def match_crossings(
    crossings: Sequence[TruthCrossing],
    alerts: Sequence[AlertRow],
    alert_truth: Sequence[str | None],
    rules: CrossingRules = CrossingRules(),
) -> CrossingScore:
    """Match truth crossings one-to-one to ``new`` alerts.

    An alert may match a crossing when the directions agree, the alert time lies in
    ``[t_cross − before_s, t_cross + after_s]``, and either ``alert_truth`` (the truth the
    alert's track followed, same order as ``alerts``) is the crossing's truth or the alert is
    within ``radius_m`` of the crossing point. Among all one-to-one matchings the one with the
    most matches is chosen; among those, the one with the least sum of squared
    ``(delay + before_s)``, which takes the earliest valid alert for a crossing and keeps
    alerts in crossing order when two crossings compete for them.
    """
    if len(alert_truth) != len(alerts):
        raise ValueError("alert_truth must give one entry per alert")
    new_index = [i for i, a in enumerate(alerts) if a.event == "new"]
    new = [alerts[i] for i in new_index]
    n, m = len(crossings), len(new)
    rows, cols = _crossing_candidates(crossings, new, rules)
    if rows.size:
        code = {name: i for i, name in enumerate(sorted({c.truth_id for c in crossings}))}
        c_truth = np.array([code[c.truth_id] for c in crossings], dtype=np.int64)
        followed = (alert_truth[i] for i in new_index)
        a_truth = np.array([-1 if t is None else code.get(t, -1) for t in followed], np.int64)
        c_dir = np.array([c.direction for c in crossings])
        a_dir = np.array([a.direction for a in new])
        c_xy = np.array([(c.x, c.y) for c in crossings], dtype=np.float64)
        a_xy = np.array([(a.x, a.y) for a in new], dtype=np.float64)
        near = np.hypot(*(a_xy[cols] - c_xy[rows]).T) <= rules.radius_m
        ok = (c_dir[rows] == a_dir[cols]) & ((c_truth[rows] == a_truth[cols]) | near)
        rows, cols = rows[ok], cols[ok]
    c_t = np.array([c.t for c in crossings], dtype=np.float64)
    a_t = np.array([a.t for a in new], dtype=np.float64)
    delay = a_t[cols] - c_t[rows]
    span = max(rules.before_s + rules.after_s, _EPS_S)
    shifted = np.clip((delay + rules.before_s) / span, 0.0, 1.0)
    # Weights below −min(n, m) make every extra match worth more than any delay preference.
    chosen = _min_weight_matching(n, m, rows, cols, shifted**2 - (min(n, m) + 1))
    chosen = chosen[np.argsort(rows[chosen], kind="stable")]
    matches = [
        (int(r), new_index[k]) for r, k in zip(rows[chosen], cols[chosen].tolist(), strict=True)
    ]
    return CrossingScore(truth=n, new_alerts=m, matches=matches, delay_s=delay[chosen])


def _crossing_candidates(
    crossings: Sequence[TruthCrossing], alerts: Sequence[AlertRow], rules: CrossingRules
) -> tuple[IntArray, IntArray]:
    """All (crossing, alert) index pairs whose times fit the window of ``rules``."""
    if not crossings or not alerts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    c_t = np.array([c.t for c in crossings], dtype=np.float64)
    a_t = np.array([a.t for a in alerts], dtype=np.float64)
    order = np.argsort(a_t, kind="stable")
    lo = np.searchsorted(a_t[order], c_t - rules.before_s - _EPS_S, side="left")
    hi = np.searchsorted(a_t[order], c_t + rules.after_s + _EPS_S, side="right")
    count = np.maximum(hi - lo, 0)
    rows = np.repeat(np.arange(c_t.size, dtype=np.int64), count)
    offset = np.arange(rows.size) - np.repeat(np.cumsum(count) - count, count)
    cols = order[np.repeat(lo, count) + offset]
    return rows, cols.astype(np.int64)


# --------------------------------------------------------------------------------------------
# The JSON summary


def score_run(
    truth: StateTable,
    tracks: StateTable,
    alerts: Sequence[AlertRow] | None = None,
    border: Border | None = None,
    c: float = DEFAULT_C_M,
    p: float = DEFAULT_P,
    rules: CrossingRules = CrossingRules(),
    tol_s: float = TIME_TOLERANCE_S,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Score a run held in memory; returns the JSON-ready summary described in docs/metrics.md.

    ``crossings`` is ``None`` when no border is given; ``notes`` says what was not scored and
    why (the ``notes`` passed in come first).
    """
    check_gospa_parameters(c, p)
    score = score_tracks(truth, tracks, c, p, tol_s)
    identity = identity_from_score(truth, tracks, score)
    notes = list(notes)
    if score.steps == 0:
        notes.append("truth has no rows: nothing to score")
    crossings: dict[str, Any] | None = None
    if border is None:
        notes.append("border crossings not scored: no border")
    else:
        crossings = _crossing_summary(truth, tracks, alerts, border, score, rules, notes)
    assigned = score.pair_distance_m[np.isfinite(score.pair_distance_m)]
    has_truth = score.n_truth > 0
    per_target = ((score.gospa_m[has_truth] ** score.p) / score.n_truth[has_truth]) ** (
        1.0 / score.p
    )
    purity = np.array(list(identity.purity.values()))
    scored_ids = {tracks.ids[k] for k in np.flatnonzero(score.alignment.track_step >= 0)}
    return {
        "schema_version": SCORE_SCHEMA_VERSION,
        "gospa": {
            "c": score.c,
            "p": score.p,
            "alpha": GOSPA_ALPHA,
            "mean": _num(_mean(score.gospa_m)),
            "mean_per_target_normalised": _num(_mean(per_target)),
            "mean_power": _num(_mean(score.gospa_m**score.p)),
            "localisation": _num(_mean(score.localisation)),
            "missed": _num(_mean(score.missed)),
            "false": _num(_mean(score.false)),
            "mean_missed_count": _num(_mean(score.n_missed)),
            "mean_false_count": _num(_mean(score.n_false)),
        },
        "rmse_m": _num(math.sqrt(_mean(assigned**2))),
        "id_switches": identity.id_switches,
        "fragmentations": identity.fragmentations,
        "false_tracks": identity.false_tracks,
        "track_purity": {
            "mean": _num(_mean(purity), 4),
            "min": _num(float(purity.min()) if purity.size else math.nan, 4),
            "per_truth": {k: _num(v, 4) for k, v in sorted(identity.purity.items())},
        },
        "truths": {"ids": len(set(truth.ids)), "mean_per_step": _num(_mean(score.n_truth))},
        "tracks": {
            "ids": len(set(tracks.ids)),
            "scored_ids": len(scored_ids),
            "mean_per_step": _num(_mean(score.n_track)),
        },
        "steps": score.steps,
        "unscored_track_rows": score.alignment.unscored_track_rows,
        "crossings": crossings,
        "notes": notes,
    }


def _crossing_summary(
    truth: StateTable,
    tracks: StateTable,
    alerts: Sequence[AlertRow] | None,
    border: Border,
    score: TrackScore,
    rules: CrossingRules,
    notes: list[str],
) -> dict[str, Any]:
    crossings = truth_crossings(truth, border)
    summary: dict[str, Any] = {
        "truth": len(crossings),
        "new_alerts": None,
        "detected": None,
        "missed": None,
        "false_alerts": None,
        "false_alert_rate": None,
        "delay_s": {"median": None, "p90": None, "mean": None, "max": None},
        "rules": {
            "before_s": rules.before_s,
            "after_s": rules.after_s,
            "radius_m": rules.radius_m,
        },
    }
    if alerts is None:
        notes.append("alerts not scored: no alerts given (truth crossings counted only)")
        return summary
    result = match_crossings(crossings, alerts, alert_truths(alerts, truth, tracks, score), rules)
    summary.update(
        new_alerts=result.new_alerts,
        detected=result.detected,
        missed=result.missed,
        false_alerts=result.false_alerts,
        false_alert_rate=_num(result.false_alerts / result.truth, 4) if result.truth else None,
    )
    if result.truth == 0:
        notes.append("no truth crossings: false_alert_rate undefined")
    d = result.delay_s
    if d.size:
        summary["delay_s"] = {
            "median": _num(float(np.median(d))),
            "p90": _num(float(np.percentile(d, 90))),
            "mean": _num(float(np.mean(d))),
            "max": _num(float(np.max(d))),
        }
    return summary


def _mean(values: FloatArray | IntArray) -> float:
    """Mean, NaN for no values (without numpy's empty-slice warning)."""
    return float(np.mean(values)) if np.size(values) else math.nan


def _num(value: float, digits: int = 3) -> float | None:
    """Rounded for JSON; ``None`` for NaN or infinity."""
    return round(float(value), digits) if math.isfinite(value) else None


def score_files(
    truth: str | Path,
    tracks: str | Path,
    alerts: str | Path | None = None,
    border: str | Path | None = None,
    c: float = DEFAULT_C_M,
    p: float = DEFAULT_P,
) -> dict[str, Any]:
    """Score tracks.csv (and alerts.csv) against truth.csv; returns the JSON-ready summary.

    Without ``border``, ``border.geojson`` beside the truth file is used if it exists;
    otherwise crossings are not scored (``"crossings": null`` and a note). Unreadable or
    malformed files raise :class:`~borderwatch.errors.InputError`.
    """
    check_gospa_parameters(c, p)
    truth_path = Path(truth)
    truth_table = read_truth(truth_path)
    track_table = read_tracks(tracks)
    alert_rows = None if alerts is None else read_alerts(alerts)
    notes: list[str] = []
    border_path = truth_path.parent / BORDER_FILENAME if border is None else Path(border)
    border_obj: Border | None = None
    if border is None and not border_path.is_file():
        notes.append(f"no border given and no {BORDER_FILENAME} beside {truth_path}")
    else:
        border_obj = load_border(border_path)
    log.debug(
        "scoring %d truth rows, %d track rows, %s alert rows",
        truth_table.t.size,
        track_table.t.size,
        "no" if alert_rows is None else len(alert_rows),
    )
    return score_run(truth_table, track_table, alert_rows, border_obj, c=c, p=p, notes=notes)
