"""Track-to-track fusion: covariance intersection, association across nodes, stable ids."""

from __future__ import annotations

import numpy as np
import pytest
from filterpy.common import Q_continuous_white_noise
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2

from borderwatch.fusion.detections import FloatArray
from borderwatch.fusion.t2t import (
    FusedTable,
    TrackToTrackFuser,
    covariance_intersection,
    predict_cv,
)

N_TARGETS = 20


def rotated_cov(theta: float, along: float, across: float, vel_scale: float = 0.01) -> FloatArray:
    """A 4×4 state covariance whose position ellipse has variances along/across ``theta``."""
    c, s = np.cos(theta), np.sin(theta)
    R = np.array([[c, -s], [s, c]])
    block = R @ np.diag([along, across]) @ R.T
    P = np.zeros((4, 4))
    P[:2, :2] = block
    P[2:, 2:] = vel_scale * block
    return P


def node_tracks(
    rng: np.random.Generator, truth: FloatArray, P: FloatArray, common: FloatArray | None = None
) -> FloatArray:
    """Estimates of ``truth`` with errors drawn from ``P`` (plus an error shared between nodes)."""
    L = np.linalg.cholesky(P)
    noise = np.einsum("nij,nj->ni", L, rng.standard_normal(truth.shape))
    return np.asarray(truth + noise + (0.0 if common is None else common), dtype=np.float64)


def targets(rng: np.random.Generator, n: int = N_TARGETS) -> FloatArray:
    return np.column_stack(
        [
            rng.uniform(-3000.0, 3000.0, n),
            rng.uniform(-3000.0, 3000.0, n),
            rng.normal(0.0, 2.0, n),
            rng.normal(0.0, 2.0, n),
        ]
    )


def ids(node: str, numbers) -> list[str]:
    return [f"{node}:{k}" for k in numbers]


def member_numbers(table: FusedTable, node: str) -> list[int]:
    """Per fused track, the number of the given node's member (each track must have one)."""
    out: list[int] = []
    for members in table.members:
        (mine,) = [int(track.split(":")[1]) for n, track in members if n == node]
        out.append(mine)
    return out


def nees(table: FusedTable, truth: FloatArray) -> FloatArray:
    e = table.x - truth
    return np.asarray(np.einsum("ni,nij,nj->n", e, np.linalg.inv(table.P), e), dtype=np.float64)


# ---------------------------------------------------------------- covariance intersection


def _spd(draw, scale: float) -> FloatArray:
    a = np.array(draw(st.lists(st.floats(-1.0, 1.0), min_size=16, max_size=16))).reshape(4, 4)
    return np.asarray(scale * (a @ a.T + 0.05 * np.eye(4)), dtype=np.float64)


@st.composite
def pd_pairs(draw):
    return _spd(draw, draw(st.floats(0.1, 100.0))), _spd(draw, draw(st.floats(0.1, 100.0)))


@settings(max_examples=150, deadline=None)
@given(pair=pd_pairs(), criterion=st.sampled_from(["det", "trace"]))
def test_covariance_intersection_is_optimal_bounded_and_never_overconfident(pair, criterion):
    Pa, Pb = pair
    xa, xb = np.arange(4.0)[None], -np.arange(4.0)[None]
    result = covariance_intersection(xa, Pa[None], xb, Pb[None], criterion)
    omega, P = float(result.omega[0]), result.P[0]
    assert 0.0 <= omega <= 1.0

    def cost(M: FloatArray) -> float:
        return float(np.linalg.slogdet(M)[1]) if criterion == "det" else float(np.trace(M))

    # No ω on a fine grid does better, and neither input alone does better.
    grid = np.linspace(0.0, 1.0, 201)
    Ya, Yb = np.linalg.inv(Pa), np.linalg.inv(Pb)
    best = min(cost(np.linalg.inv(w * Ya + (1 - w) * Yb)) for w in grid)
    assert cost(P) <= best + 1e-7 * max(1.0, abs(best))
    assert cost(P) <= min(cost(Pa), cost(Pb)) + 1e-7 * max(1.0, abs(best))
    # Never more confident than fusing as if the errors were independent.
    independent = np.linalg.inv(Ya + Yb)
    assert np.linalg.eigvalsh(P - independent).min() >= -1e-8 * np.abs(P).max()
    # Swapping the inputs swaps the weights.
    swapped = covariance_intersection(xb, Pb[None], xa, Pa[None], criterion)
    if abs(omega - 0.5) < 0.49:  # away from the flat ends, the optimum is unique
        assert swapped.omega[0] == pytest.approx(1.0 - omega, abs=1e-6)
        np.testing.assert_allclose(swapped.x[0], result.x[0], rtol=1e-6, atol=1e-6)


def test_two_identical_estimates_are_not_counted_twice():
    P = rotated_cov(0.4, 30.0, 5.0)[None]
    x = np.array([[100.0, 50.0, 1.0, 0.0]])
    fused = covariance_intersection(x, P, x, P)
    np.testing.assert_allclose(fused.P, P, rtol=1e-9)
    np.testing.assert_allclose(fused.x, x, rtol=1e-9, atol=1e-9)
    naive = np.linalg.inv(2 * np.linalg.inv(P[0]))  # the Kalman fusion that double counts
    assert np.trace(fused.P[0]) == pytest.approx(2 * np.trace(naive))


def test_prediction_uses_filterpys_white_noise_model():
    x = np.array([[0.0, 0.0, 2.0, -1.0], [5.0, 5.0, 0.0, 0.0]])
    P = np.stack([np.eye(4), 2 * np.eye(4)])
    dt = np.array([3.0, -2.0])
    xp, Pp = predict_cv(x, P, dt, q_m2ps3=0.7)
    np.testing.assert_allclose(xp[0], [6.0, -3.0, 2.0, -1.0])
    Q = Q_continuous_white_noise(
        dim=2, dt=3.0, spectral_density=0.7, block_size=2, order_by_dim=False
    )
    F = np.eye(4)
    F[0, 2] = F[1, 3] = 3.0
    np.testing.assert_allclose(Pp[0], F @ P[0] @ F.T + Q, rtol=1e-12)
    assert np.all(np.diag(Pp[1]) > np.diag(P[1]))  # backwards in time still adds noise


# ---------------------------------------------------------------------- whole picture


def test_two_nodes_seeing_the_same_20_targets_give_20_consistent_fused_tracks():
    rng = np.random.default_rng(20)
    # Node 1 sees the targets well east-west, node 2 north-south (radar range vs bearing).
    PA = np.tile(rotated_cov(0.2, 100.0, 4.0), (N_TARGETS, 1, 1))
    PB = np.tile(rotated_cov(1.7, 100.0, 4.0), (N_TARGETS, 1, 1))
    err: dict[str, list[FloatArray]] = {"a": [], "b": [], "fused": []}
    scores = []
    for _trial in range(30):
        truth = targets(rng)
        xa, xb = node_tracks(rng, truth, PA), node_tracks(rng, truth, PB)
        # Targets are kilometres apart: a wide gate (miss rate 10⁻⁶) loses no true pair.
        fuser = TrackToTrackFuser(gate_chi2=chi2.ppf(1 - 1e-6, 4))
        order = rng.permutation(N_TARGETS)  # node 2 numbers its tracks differently
        fuser.update(0.0, "boat-1", ids("boat-1", range(N_TARGETS)), xa, PA)
        fuser.update(0.0, "boat-2", ids("boat-2", 100 + order), xb[order], PB[order])
        table = fuser.picture(0.0)

        assert len(table) == N_TARGETS
        assert all(len(m) == 2 for m in table.members)
        a = member_numbers(table, "boat-1")
        b = member_numbers(table, "boat-2")
        assert [k - 100 for k in b] == a  # each pair is one target

        truth_rows = truth[a]
        err["a"].append(np.sum((xa[a] - truth_rows)[:, :2] ** 2, axis=1))
        err["b"].append(np.sum((xb[a] - truth_rows)[:, :2] ** 2, axis=1))
        err["fused"].append(np.sum((table.x - truth_rows)[:, :2] ** 2, axis=1))
        scores.append(nees(table, truth_rows))
    rmse = {k: float(np.sqrt(np.mean(v))) for k, v in err.items()}
    assert rmse["fused"] <= min(rmse["a"], rmse["b"])
    # Consistency: the average NEES is at most the state dimension (up to its 99 % bound).
    samples = np.concatenate(scores)
    assert samples.mean() <= chi2.ppf(0.99, 4 * samples.size) / samples.size


def test_an_error_shared_by_both_nodes_is_not_counted_twice():
    rng = np.random.default_rng(7)
    P = np.tile(rotated_cov(0.9, 25.0, 25.0, vel_scale=0.04), (N_TARGETS, 1, 1))
    ci, naive = [], []
    for _trial in range(30):
        truth = targets(rng)
        # Most of each node's error is common (same upstream sensor): P = shared + own.
        shared = node_tracks(rng, np.zeros_like(truth), 0.8 * P)
        xa = node_tracks(rng, truth, 0.2 * P, common=shared)
        xb = node_tracks(rng, truth, 0.2 * P, common=shared)
        fuser = TrackToTrackFuser()
        fuser.update(0.0, "boat-1", ids("boat-1", range(N_TARGETS)), xa, P)
        fuser.update(0.0, "boat-2", ids("boat-2", range(N_TARGETS)), xb, P)
        table = fuser.picture(0.0)
        rows = member_numbers(table, "boat-1")
        ci.append(nees(table, truth[rows]))
        kf = np.linalg.inv(2 * np.linalg.inv(P))  # independent-error fusion
        e = 0.5 * (xa + xb) - truth
        naive.append(np.einsum("ni,nij,nj->n", e, np.linalg.inv(kf), e))
    n = N_TARGETS * 30
    bound = chi2.ppf(0.99, 4 * n) / n
    assert np.mean(ci) <= bound
    assert np.mean(naive) > bound  # what double counting would have claimed


def test_two_targets_30_m_apart_stay_separate():
    # 3 m position error per node: the two estimates of one target differ by about 4 m.
    P = np.tile(rotated_cov(0.0, 9.0, 9.0), (2, 1, 1))
    rng = np.random.default_rng(3)
    trials, paired = 200, 0
    for _trial in range(trials):
        start = rng.uniform(-1000.0, 1000.0, 2)
        heading = rng.uniform(0.0, 2 * np.pi)
        offset = 30.0 * np.array([np.cos(heading), np.sin(heading)])
        truth = np.array([[*start, 1.0, 0.5], [*(start + offset), 1.0, 0.5]])
        fuser = TrackToTrackFuser()
        fuser.update(0.0, "boat-1", ["boat-1:1", "boat-1:2"], node_tracks(rng, truth, P), P)
        fuser.update(0.0, "boat-2", ["boat-2:1", "boat-2:2"], node_tracks(rng, truth, P), P)
        table = fuser.picture(0.0)
        for members in table.members:  # never one track from two targets
            assert len({track.split(":")[1] for _, track in members}) == 1
        paired += len(table) == 2
    # The gate lets 0.1 % of true pairs go; both pairs of a trial are found almost always.
    assert paired >= 0.98 * trials


def test_tracks_of_the_same_node_never_merge():
    P = np.tile(np.diag([25.0, 25.0, 1.0, 1.0]), (2, 1, 1))
    x = np.array([[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
    fuser = TrackToTrackFuser()
    fuser.update(0.0, "boat-1", ["boat-1:1", "boat-1:2"], x, P)
    fuser.update(0.0, "boat-2", ["boat-2:1"], x[:1], P[:1])
    table = fuser.picture(0.0)
    assert len(table) == 2
    assert sorted(len(m) for m in table.members) == [1, 2]


def test_three_nodes_fuse_into_one_track_that_is_better_than_each():
    rng = np.random.default_rng(11)
    truth = targets(rng, 1)
    covs = [rotated_cov(a, 100.0, 4.0)[None] for a in (0.0, 1.0, 2.0)]
    fuser = TrackToTrackFuser()
    for k, P in enumerate(covs):
        fuser.update(0.0, f"boat-{k}", [f"boat-{k}:5"], node_tracks(rng, truth, P), P)
    table = fuser.picture(0.0)
    assert len(table) == 1
    assert len(table.members[0]) == 3
    assert np.linalg.det(table.P[0]) < min(np.linalg.det(P[0]) for P in covs)


def test_ids_are_stable_while_members_report_and_never_reused():
    rng = np.random.default_rng(5)
    truth = targets(rng, 3)
    P = np.tile(np.diag([16.0, 16.0, 0.5, 0.5]), (3, 1, 1))
    fuser = TrackToTrackFuser(stale_s=5.0)
    seen: list[list[int]] = []
    for step in range(12):
        t = float(step)
        now = truth.copy()
        now[:, :2] += t * truth[:, 2:]
        fuser.update(t, "boat-1", ids("boat-1", range(3)), node_tracks(rng, now, P), P)
        if step < 4:  # boat-2 stops reporting after t = 3
            fuser.update(t, "boat-2", ids("boat-2", range(3)), node_tracks(rng, now, P), P)
        table = fuser.picture(t)
        seen.append(table.ids.tolist())
        if step <= 8:
            assert [len(m) for m in table.members] == [2, 2, 2]
        else:  # boat-2's tracks went stale at t = 3 + 5
            assert [len(m) for m in table.members] == [1, 1, 1]
    assert all(s == seen[0] for s in seen)
    assert fuser.stats["stale"] == 3

    # boat-1 ends its tracks; a new target gets a new id.
    fuser.drop("boat-1", ids("boat-1", range(3)))
    assert len(fuser.picture(12.0)) == 0
    fuser.update(13.0, "boat-1", ["boat-1:3"], truth[:1], P[:1])
    assert fuser.picture(13.0).ids.tolist() == [max(seen[0]) + 1]


def test_a_member_that_diverges_from_its_group_leaves_it_and_the_anchor_keeps_the_id():
    P = np.diag([4.0, 4.0, 0.25, 0.25])[None]
    fuser = TrackToTrackFuser()
    fuser.update(0.0, "boat-1", ["boat-1:1"], np.array([[0.0, 0.0, 1.0, 0.0]]), P)
    fuser.update(0.0, "boat-2", ["boat-2:1"], np.array([[1.0, 0.0, 1.0, 0.0]]), P)
    first = fuser.picture(0.0)
    assert len(first) == 1
    # boat-2 has swapped its track onto another target 200 m away.
    fuser.update(1.0, "boat-1", ["boat-1:1"], np.array([[1.0, 0.0, 1.0, 0.0]]), P)
    fuser.update(1.0, "boat-2", ["boat-2:1"], np.array([[200.0, 0.0, -1.0, 0.0]]), P)
    second = fuser.picture(1.0)
    assert len(second) == 2
    assert second.ids[0] == first.ids[0]
    assert second.members[0] == (("boat-1", "boat-1:1"),)
    assert fuser.stats["split"] == 1


def test_tracks_reported_at_different_times_are_predicted_to_the_picture_time():
    P = np.diag([4.0, 4.0, 0.04, 0.04])[None]
    fuser = TrackToTrackFuser()
    # One target moving east at 10 m/s, seen at t=0 by boat-1 and at t=4 by boat-2.
    fuser.update(0.0, "boat-1", ["boat-1:1"], np.array([[0.0, 0.0, 10.0, 0.0]]), P)
    fuser.update(4.0, "boat-2", ["boat-2:1"], np.array([[40.0, 0.0, 10.0, 0.0]]), P)
    table = fuser.picture(4.0)
    assert len(table) == 1
    assert table.x[0, 0] == pytest.approx(40.0, abs=0.5)
    assert table.last_report_t.tolist() == [4.0]


def test_bad_rows_are_refused_and_counted_and_late_reports_ignored():
    fuser = TrackToTrackFuser()
    x = np.array([[0.0, 0.0, 0.0, 0.0], [np.nan, 0.0, 0.0, 0.0], [5.0, 5.0, 0.0, 0.0]])
    P = np.stack([np.eye(4), np.eye(4), -np.eye(4)])
    fuser.update(2.0, "boat-1", ["boat-1:1", "boat-1:2", "boat-1:3"], x, P)
    assert fuser.stats["rejected"] == 2
    fuser.update(1.0, "boat-1", ["boat-1:1"], np.full((1, 4), 99.0), np.eye(4)[None])
    assert fuser.stats["out_of_order"] == 1
    table = fuser.picture(2.0)
    assert table.x.tolist() == [[0.0, 0.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="need x"):
        fuser.update(3.0, "boat-1", ["boat-1:1"], np.zeros((2, 4)), np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="repeat"):
        fuser.update(3.0, "boat-1", ["a:1", "a:1"], np.zeros((2, 4)), np.tile(np.eye(4), (2, 1, 1)))


def test_the_same_reports_give_the_same_picture():
    def run() -> FusedTable:
        rng = np.random.default_rng(99)
        truth = targets(rng)
        P = np.tile(rotated_cov(0.5, 50.0, 9.0), (N_TARGETS, 1, 1))
        fuser = TrackToTrackFuser(criterion="trace")
        for node in ("boat-3", "boat-1", "boat-2"):
            fuser.update(0.0, node, ids(node, range(N_TARGETS)), node_tracks(rng, truth, P), P)
        return fuser.picture(0.5)

    a, b = run(), run()
    assert a.members == b.members
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.P, b.P)


def test_two_established_tracks_found_to_be_one_target_keep_the_older_id():
    P = np.diag([4.0, 4.0, 0.25, 0.25])[None]
    fuser = TrackToTrackFuser()
    fuser.update(0.0, "boat-1", ["boat-1:1"], np.array([[0.0, 0.0, 0.0, 0.0]]), P)
    fuser.update(0.0, "boat-2", ["boat-2:1"], np.array([[100.0, 0.0, 0.0, 0.0]]), P)
    assert fuser.picture(0.0).ids.tolist() == [1, 2]
    # boat-2's track converges onto boat-1's (a wrong initial position, corrected).
    fuser.update(1.0, "boat-2", ["boat-2:1"], np.array([[1.0, 0.0, 0.0, 0.0]]), P)
    table = fuser.picture(1.0)
    assert table.ids.tolist() == [1]
    assert table.members == ((("boat-1", "boat-1:1"), ("boat-2", "boat-2:1")),)
    assert fuser.stats["merged"] == 1
