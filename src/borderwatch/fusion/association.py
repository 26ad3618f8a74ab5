"""Data association: which detection updates which track.

Three stages, each cheap enough for a thousand tracks per scan:

1. **KD-tree pre-gating** (:func:`candidate_pairs`): a ``scipy.spatial.cKDTree`` over the
   detections' Cartesian positions is queried with each track's own gate radius, derived from
   its covariance. Bearing-only detections have no position; they are paired with every track
   and left to the Mahalanobis gate.
2. **Mahalanobis gating**: pairs whose innovation distance² exceeds the chi-square quantile of
   the gate probability (for the detection's degrees of freedom) are dropped.
3. **Global nearest neighbour** (:func:`gnn_assign`): the gated pairs form a sparse bipartite
   graph; pairs that are alone in their connected component are assigned directly (the common
   case), and each remaining cluster is solved optimally by
   ``scipy.optimize.linear_sum_assignment`` with a "missed" option per track.

The pair cost is the negative log-likelihood up to a constant, ``d² + ln det S``, so a
tentative track with a huge covariance does not win a detection from a well-tracked one. The
tracker gives every track the same (large) miss cost, so within a cluster as many tracks as
possible are served first, and the total cost decides between assignments of equal size.

Identities (AIS MMSIs) add two rules, applied by the tracker to the candidate pairs: a pair
whose detection and track hold different identities is dropped, and a pair holding the same
identity is found whatever the distance (:func:`identity_pairs`) and carries a ``bonus``
subtracted from its cost, so it wins against anonymous alternatives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from borderwatch.fusion.detections import FloatArray, IntArray


@dataclass(frozen=True, slots=True)
class Pairs:
    """Candidate (track, detection) pairs with their gate statistics.

    ``bonus`` is subtracted from a pair's cost ``d² + ln det S`` (zeros unless given): the
    tracker uses it for a detection and a track holding the same identity.
    """

    track: IntArray
    det: IntArray
    d2: FloatArray
    logdet: FloatArray
    bonus: FloatArray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        if self.bonus.shape[0] != self.track.shape[0]:
            object.__setattr__(self, "bonus", np.zeros(self.track.shape[0]))

    def __len__(self) -> int:
        return int(self.track.shape[0])

    @property
    def cost(self) -> FloatArray:
        """Assignment cost of each pair: ``d² + ln det S - bonus``."""
        return np.asarray(self.d2 + self.logdet - self.bonus, dtype=np.float64)

    def select(self, mask: np.ndarray) -> Pairs:
        return Pairs(
            self.track[mask], self.det[mask], self.d2[mask], self.logdet[mask], self.bonus[mask]
        )


def candidate_pairs(
    track_xy: FloatArray,
    track_radius: FloatArray,
    det_xy: FloatArray,
    det_has_xy: np.ndarray,
    neighbours: int = 8,
) -> tuple[IntArray, IntArray]:
    """Pairs within each track's gate radius, plus every track with each position-less detection.

    Each located detection is paired with at most its ``neighbours`` nearest tracks (a
    ``cKDTree`` k-nearest query, fully vectorised), kept where the distance is inside that
    track's gate radius. More than ``neighbours`` tracks within one detection's gate happens
    only in a dense crowd, where the nearest tracks are the ones that matter.

    Args:
        track_xy: predicted track positions ``(N, 2)``.
        track_radius: gate radius per track, metres ``(N,)``.
        det_xy: detection positions ``(D, 2)`` (NaN where ``det_has_xy`` is false).
        det_has_xy: which detections have a Cartesian position ``(D,)``.
        neighbours: nearest tracks considered per detection.

    Returns:
        ``(track_index, det_index)`` arrays, sorted by track then detection.
    """
    n_trk, n_det = track_xy.shape[0], det_xy.shape[0]
    empty = np.zeros(0, dtype=np.int64)
    if n_trk == 0 or n_det == 0:
        return empty, empty
    tracks_parts, dets_parts = [], []
    located = np.flatnonzero(det_has_xy)
    if located.size:
        k = min(neighbours, n_trk)
        dist, idx = cKDTree(track_xy).query(
            det_xy[located], k=k, distance_upper_bound=float(track_radius.max())
        )
        dist, idx = dist.reshape(located.size, k), idx.reshape(located.size, k)
        valid = idx < n_trk
        valid[valid] &= dist[valid] <= track_radius[idx[valid]]
        rows, cols = np.nonzero(valid)
        tracks_parts.append(idx[rows, cols].astype(np.int64))
        dets_parts.append(located[rows])
    unlocated = np.flatnonzero(~det_has_xy)
    if unlocated.size:
        tracks_parts.append(np.repeat(np.arange(n_trk, dtype=np.int64), unlocated.size))
        dets_parts.append(np.tile(unlocated, n_trk))
    trk = np.concatenate(tracks_parts)
    det = np.concatenate(dets_parts)
    order = np.lexsort((det, trk))
    return trk[order], det[order]


def identity_pairs(track_identity: IntArray, det_identity: IntArray) -> tuple[IntArray, IntArray]:
    """Every (track, detection) pair holding the same non-zero identity, whatever the distance.

    An identity normally names one track, but two vessels may send one MMSI (a misconfigured
    transponder), so every track holding it is paired. Vectorised: tracks are sorted by
    identity and each identified detection finds its run with ``searchsorted``.

    Returns:
        ``(track_index, det_index)`` arrays, sorted by track then detection.
    """
    empty = np.zeros(0, dtype=np.int64)
    tracks = np.flatnonzero(track_identity)
    dets = np.flatnonzero(det_identity)
    if tracks.size == 0 or dets.size == 0:
        return empty, empty
    order = tracks[np.argsort(track_identity[tracks], kind="stable")]
    keys = track_identity[order]
    lo = np.searchsorted(keys, det_identity[dets], side="left")
    hi = np.searchsorted(keys, det_identity[dets], side="right")
    count = hi - lo
    det = np.repeat(dets, count)
    # Position of each pair within its detection's run of tracks: 0, 1, ... count-1.
    within = np.arange(det.size) - np.repeat(np.cumsum(count) - count, count)
    trk = order[np.repeat(lo, count) + within]
    sort = np.lexsort((det, trk))
    return trk[sort].astype(np.int64), det[sort].astype(np.int64)


def gnn_assign(pairs: Pairs, n_tracks: int, n_dets: int, miss_cost: FloatArray) -> Pairs:
    """Global-nearest-neighbour assignment over gated pairs, solved per connected cluster.

    Args:
        pairs: gated candidate pairs.
        n_tracks, n_dets: sizes of the two sides.
        miss_cost: cost of leaving each track without a detection ``(n_tracks,)``; a pair is
            only assigned when it is cheaper than missing.

    Returns:
        The assigned pairs: each track and each detection at most once.
    """
    if len(pairs) == 0:
        return pairs
    cost = pairs.cost
    track_deg = np.bincount(pairs.track, minlength=n_tracks)
    det_deg = np.bincount(pairs.det, minlength=n_dets)
    alone = (track_deg[pairs.track] == 1) & (det_deg[pairs.det] == 1)
    direct = alone & (cost < miss_cost[pairs.track])
    chosen = [np.nonzero(direct)[0]]
    rest = np.nonzero(~alone)[0]
    if rest.size:
        chosen.append(_solve_clusters(pairs, cost, rest, n_tracks, n_dets, miss_cost))
    keep = np.sort(np.concatenate(chosen))
    return pairs.select(keep)


def _solve_clusters(
    pairs: Pairs,
    cost: FloatArray,
    rest: IntArray,
    n_tracks: int,
    n_dets: int,
    miss_cost: FloatArray,
) -> IntArray:
    trk, det = pairs.track[rest], pairs.det[rest]
    graph = coo_matrix((np.ones(rest.size), (trk, n_tracks + det)), shape=(n_tracks + n_dets,) * 2)
    _n, label = connected_components(graph, directed=False)
    cluster = label[trk]
    order = np.argsort(cluster, kind="stable")
    bounds = np.flatnonzero(np.diff(cluster[order])) + 1
    chosen: list[int] = []
    big = 1e12
    for group in np.split(order, bounds):
        g_trk, g_det = trk[group], det[group]
        u_trk, r_idx = np.unique(g_trk, return_inverse=True)
        u_det, c_idx = np.unique(g_det, return_inverse=True)
        nt, nd = u_trk.size, u_det.size
        # Columns: the cluster's detections, then one private "missed" column per track.
        matrix = np.full((nt, nd + nt), big)
        matrix[r_idx, c_idx] = cost[rest[group]]
        matrix[np.arange(nt), nd + np.arange(nt)] = miss_cost[u_trk]
        rows, cols = linear_sum_assignment(matrix)
        lookup = {
            (int(r), int(c)): int(p) for r, c, p in zip(r_idx, c_idx, rest[group], strict=True)
        }
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            if c < nd and matrix[r, c] < big:
                chosen.append(lookup[(r, c)])
    return np.asarray(chosen, dtype=np.int64)
