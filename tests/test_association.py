"""Gating and global-nearest-neighbour assignment against brute force."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from borderwatch.fusion.association import Pairs, candidate_pairs, gnn_assign


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 40))
def test_candidate_pairs_equal_brute_force_within_neighbour_limit(seed, n_trk, n_det):
    rng = np.random.default_rng(seed)
    tracks = rng.uniform(0, 500, (n_trk, 2))
    dets = rng.uniform(0, 500, (n_det, 2))
    radius = rng.uniform(5, 60, n_trk)
    has_xy = rng.random(n_det) < 0.9
    dets[~has_xy] = np.nan
    trk, det = candidate_pairs(tracks, radius, dets, has_xy, neighbours=n_trk)
    got = set(zip(trk.tolist(), det.tolist(), strict=True))
    want = set()
    for i, j in itertools.product(range(n_trk), range(n_det)):
        if not has_xy[j] or np.hypot(*(tracks[i] - dets[j])) <= radius[i]:
            want.add((i, j))
    assert got == want
    # Sorted by track, then detection: the assignment relies on a deterministic order.
    assert list(zip(trk.tolist(), det.tolist(), strict=True)) == sorted(got)


def _brute_force(cost: np.ndarray, miss: np.ndarray) -> float:
    """Minimum total cost, each track taking one gated detection or its miss cost."""
    n_trk, n_det = cost.shape
    best = np.inf
    for choice in itertools.product(range(-1, n_det), repeat=n_trk):
        used = [c for c in choice if c >= 0]
        if len(used) != len(set(used)):
            continue
        total = 0.0
        for i, c in enumerate(choice):
            total += miss[i] if c < 0 else cost[i, c]
        best = min(best, total)
    return float(best)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(1, 4))
def test_gnn_assignment_is_optimal_and_one_to_one(seed, n_trk, n_det):
    rng = np.random.default_rng(seed)
    gated = rng.random((n_trk, n_det)) < 0.6
    d2 = rng.uniform(0, 9, (n_trk, n_det))
    logdet = rng.uniform(0, 3, (n_trk, n_det))
    trk, det = np.nonzero(gated)
    pairs = Pairs(trk.astype(np.int64), det.astype(np.int64), d2[gated], logdet[gated])
    miss = rng.uniform(5, 15, n_trk)
    chosen = gnn_assign(pairs, n_trk, n_det, miss)
    assert len(set(chosen.track.tolist())) == len(chosen)
    assert len(set(chosen.det.tolist())) == len(chosen)
    cost = np.where(gated, d2 + logdet, np.inf)
    total = sum(cost[i, j] for i, j in zip(chosen.track, chosen.det, strict=True))
    total += sum(miss[i] for i in range(n_trk) if i not in set(chosen.track.tolist()))
    assert np.isclose(total, _brute_force(cost, miss))


def test_isolated_pairs_bypass_the_solver_but_respect_the_miss_cost():
    pairs = Pairs(
        np.array([0, 1], dtype=np.int64),
        np.array([0, 1], dtype=np.int64),
        np.array([1.0, 20.0]),
        np.array([0.0, 0.0]),
    )
    chosen = gnn_assign(pairs, 2, 2, np.array([10.0, 10.0]))
    assert chosen.track.tolist() == [0]


def test_contested_detection_goes_to_the_closer_track_and_the_other_takes_its_second_choice():
    # Track 0 is close to detection 0 only; track 1 is close to 0 and fairly close to 1.
    pairs = Pairs(
        np.array([0, 1, 1], dtype=np.int64),
        np.array([0, 0, 1], dtype=np.int64),
        np.array([0.5, 0.4, 3.0]),
        np.zeros(3),
    )
    chosen = gnn_assign(pairs, 2, 2, np.full(2, 13.8))
    assert sorted(zip(chosen.track.tolist(), chosen.det.tolist(), strict=True)) == [
        (0, 0),
        (1, 1),
    ]
    # linear_sum_assignment on the full matrix agrees.
    full = np.array([[0.5, 1e9], [0.4, 3.0]])
    rows, cols = linear_sum_assignment(full)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 0), (1, 1)]
