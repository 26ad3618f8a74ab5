"""Scoring: GOSPA, time alignment, identity figures, crossing matching and the JSON summary."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from borderwatch.cli import main
from borderwatch.csvfiles import AlertRow, StateTable
from borderwatch.errors import InputError
from borderwatch.fusion.borders import Border, BorderKind
from borderwatch.simulator.scoring import (
    CrossingRules,
    TruthCrossing,
    alert_truths,
    align_steps,
    gospa,
    identity_from_score,
    identity_metrics,
    match_crossings,
    score_files,
    score_run,
    score_tracks,
    truth_crossings,
)

C, P = 50.0, 2.0
HALF = C**P / 2  # cost of one missed truth or one false track, m^p


def pts(*xy: tuple[float, float]) -> np.ndarray:
    return np.array(xy, dtype=np.float64).reshape(-1, 2)


def states(rows: Sequence[tuple[float, str, float, float]]) -> StateTable:
    """A truth or track table from (t, id, x, y) rows, sorted by time."""
    rows = sorted(rows, key=lambda r: r[0])
    return StateTable(
        t=np.array([r[0] for r in rows], dtype=np.float64),
        ids=[r[1] for r in rows],
        xy=np.array([(r[2], r[3]) for r in rows], dtype=np.float64).reshape(-1, 2),
        v=np.zeros((len(rows), 2)),
    )


def alert(
    t: float, track: str, direction: str = "left_to_right", x: float = 0.0, y: float = 0.0
) -> AlertRow:
    return AlertRow(t, track, "new", direction, x, y, 0.9)


# --------------------------------------------------------------------------------------------
# GOSPA: hand-computed cases


def test_gospa_of_two_empty_sets_is_zero() -> None:
    g = gospa(pts(), pts(), C, P)
    assert (g.distance_m, g.localisation, g.missed, g.false) == (0.0, 0.0, 0.0, 0.0)
    assert g.truth_index.size == 0


def test_gospa_all_missed() -> None:
    g = gospa(pts((0, 0), (100, 0), (0, 100)), pts(), C, P)
    assert g.n_missed == 3
    assert g.n_false == 0
    assert g.missed == pytest.approx(3 * HALF)
    assert g.distance_m == pytest.approx(math.sqrt(3 * 1250.0))


def test_gospa_all_false() -> None:
    g = gospa(pts(), pts((5, 5), (7, 7)), C, P)
    assert (g.n_missed, g.n_false) == (0, 2)
    assert g.false == pytest.approx(2 * HALF)
    assert g.distance_m == pytest.approx(50.0)


@pytest.mark.parametrize("dx", [50.0, 60.0, 1000.0])
def test_gospa_pair_at_or_beyond_cutoff_is_one_missed_and_one_false(dx: float) -> None:
    g = gospa(pts((0, 0)), pts((dx, 0)), C, P)
    assert (g.n_missed, g.n_false) == (1, 1)
    assert g.localisation == 0.0
    assert g.truth_index.size == 0
    assert g.distance_m == pytest.approx(C)


def test_gospa_single_pair_within_cutoff() -> None:
    g = gospa(pts((0, 0)), pts((3, 4)), C, P)
    assert g.distance_m == pytest.approx(5.0)
    assert g.localisation == pytest.approx(25.0)
    assert g.pair_distance_m.tolist() == pytest.approx([5.0])
    assert gospa(pts((0, 0)), pts((3, 4)), C, 1.0).distance_m == pytest.approx(5.0)


def test_gospa_mixed_case_by_hand() -> None:
    truth = pts((0, 0), (100, 0), (200, 0))
    tracks = pts((500, 500), (100, 30), (3, 4))
    g = gospa(truth, tracks, C, P)
    assert g.truth_index.tolist() == [0, 1]
    assert g.track_index.tolist() == [2, 1]
    assert g.localisation == pytest.approx(25.0 + 900.0)
    assert (g.n_missed, g.n_false) == (1, 1)
    assert g.distance_m == pytest.approx(math.sqrt(925.0 + 2 * 1250.0))


def test_gospa_assignment_is_optimal_not_greedy() -> None:
    # Greedy nearest pairing takes (10 → 9) at 1 m and leaves 0 → 19 (19 m): 1 + 361 = 362.
    g = gospa(pts((0, 0), (10, 0)), pts((9, 0), (19, 0)), C, P)
    assert g.truth_index.tolist() == [0, 1]
    assert g.track_index.tolist() == [0, 1]
    assert g.localisation == pytest.approx(81.0 + 81.0)


def test_gospa_prefers_a_pair_under_cutoff_to_missed_plus_false() -> None:
    g = gospa(pts((0, 0)), pts((49, 0)), C, P)
    assert g.localisation == pytest.approx(49.0**2)
    assert g.distance_m == pytest.approx(49.0)


@pytest.mark.parametrize(("c", "p"), [(0.0, 2.0), (-5.0, 2.0), (math.inf, 2.0), (50.0, 0.5)])
def test_gospa_rejects_bad_parameters(c: float, p: float) -> None:
    with pytest.raises(InputError):
        gospa(pts((0, 0)), pts((1, 1)), c, p)


# --------------------------------------------------------------------------------------------
# GOSPA: properties

coord = st.integers(min_value=0, max_value=150).map(float)
point_sets = st.lists(st.tuples(coord, coord), min_size=0, max_size=5).map(lambda xs: pts(*xs))
orders = st.sampled_from([1.0, 2.0, 3.0])


def brute_force_gospa(X: np.ndarray, Y: np.ndarray, c: float, p: float) -> float:
    """Minimum over every partial one-to-one assignment, by enumeration."""
    n, m = len(X), len(Y)
    best = math.inf
    choices: list[int | None] = [*range(m), *([None] * n)]
    for perm in set(itertools.permutations(choices, n)):
        cost = 0.0
        used = 0
        for i, j in enumerate(perm):
            if j is None:
                continue
            d = float(np.hypot(*(X[i] - Y[j])))
            cost += min(d, c) ** p - c**p  # a pair replaces one missed and one false
            used += 1
        best = min(best, cost)
    if n == 0:
        best = 0.0
    return float((best + c**p / 2 * (n + m)) ** (1 / p))


@settings(max_examples=200, deadline=None)
@given(point_sets, point_sets, orders)
def test_gospa_equals_brute_force_and_decomposes_exactly(
    X: np.ndarray, Y: np.ndarray, p: float
) -> None:
    g = gospa(X, Y, C, p)
    assert g.distance_m == pytest.approx(brute_force_gospa(X, Y, C, p), rel=1e-9, abs=1e-9)
    assert g.distance_m >= 0.0
    assert g.distance_m**p == pytest.approx(g.localisation + g.missed + g.false, rel=1e-12)
    k = g.truth_index.size
    assert (g.n_missed, g.n_false) == (len(X) - k, len(Y) - k)
    assert g.missed == C**p / 2 * g.n_missed
    assert g.false == C**p / 2 * g.n_false
    d = np.hypot(*(X[g.truth_index] - Y[g.track_index]).T)
    assert np.all(d < C)
    assert g.pair_distance_m == pytest.approx(d)
    assert g.localisation == pytest.approx(float(np.sum(d**p)))
    assert len(set(g.track_index.tolist())) == k


@settings(max_examples=200, deadline=None)
@given(point_sets, point_sets, point_sets, orders)
def test_gospa_is_a_metric(X: np.ndarray, Y: np.ndarray, Z: np.ndarray, p: float) -> None:
    def d(a: np.ndarray, b: np.ndarray) -> float:
        return gospa(a, b, C, p).distance_m

    assert d(X, X) == 0.0
    assert d(X, Y) == pytest.approx(d(Y, X), rel=1e-12, abs=1e-12)
    assert d(X, Z) <= d(X, Y) + d(Y, Z) + 1e-9
    if d(X, Y) == 0.0:
        assert sorted(map(tuple, X.tolist())) == sorted(map(tuple, Y.tolist()))


@settings(max_examples=100, deadline=None)
@given(point_sets, point_sets, st.randoms(use_true_random=False))
def test_gospa_is_permutation_invariant(X: np.ndarray, Y: np.ndarray, rnd: random.Random) -> None:
    px = list(range(len(X)))
    py = list(range(len(Y)))
    rnd.shuffle(px)
    rnd.shuffle(py)
    a = gospa(X, Y, C, P)
    b = gospa(X[px], Y[py], C, P)
    assert b.distance_m == pytest.approx(a.distance_m, rel=1e-12, abs=1e-12)
    assert b.localisation == pytest.approx(a.localisation, rel=1e-12, abs=1e-12)
    assert (b.n_missed, b.n_false) == (a.n_missed, a.n_false)


def test_gospa_splits_large_scenes_without_changing_the_answer() -> None:
    # Clusters far apart: solved per component; compare with the same sets shifted together.
    rng = np.random.default_rng(5)
    X = rng.uniform(0, 40, (30, 2)) + np.repeat(np.arange(10) * 1000.0, 3)[:, None]
    Y = X + rng.normal(0, 10, X.shape)
    total = sum(gospa(X[i : i + 3], Y[i : i + 3], C, P).distance_m ** 2 for i in range(0, 30, 3))
    assert gospa(X, Y, C, P).distance_m ** 2 == pytest.approx(total, rel=1e-12)


# --------------------------------------------------------------------------------------------
# Time alignment


def test_align_steps_matches_track_times_within_one_millisecond() -> None:
    al = align_steps(np.array([0.0, 0.0, 1.0, 2.0]), np.array([0.0, 0.999, 1.001, 1.5, 2.002]))
    assert al.t.tolist() == [0.0, 1.0, 2.0]
    assert al.truth_step.tolist() == [0, 0, 1, 2]
    assert al.track_step.tolist() == [0, 1, 1, -1, -1]
    assert al.unscored_track_rows == 2


def test_align_steps_with_no_truth_scores_no_track_row() -> None:
    al = align_steps(np.zeros(0), np.array([0.0, 1.0]))
    assert al.t.size == 0
    assert al.track_step.tolist() == [-1, -1]


def test_truth_time_without_tracks_is_all_missed() -> None:
    truth = states([(0, "a", 0, 0), (0, "b", 100, 0), (1, "a", 0, 0), (1, "b", 100, 0)])
    tracks = states([(0, "k", 3, 4), (0, "j", 100, 0), (7, "k", 0, 0)])
    score = score_tracks(truth, tracks, C, P)
    assert score.gospa_m.tolist() == pytest.approx([5.0, math.sqrt(2 * HALF)])
    assert score.n_missed.tolist() == [0, 2]
    assert score.n_track.tolist() == [2, 0]
    assert score.alignment.unscored_track_rows == 1


# --------------------------------------------------------------------------------------------
# Identity: ID switches, fragmentations, purity, false tracks


def test_identity_metrics_on_constructed_sequences() -> None:
    ids = ["a"] * 6 + ["b"] * 4 + ["c"] * 2
    steps = np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 0, 1])
    assigned = ["1", "1", None, "2", "2", "1", None, "3", "3", None, None, None]
    got = identity_metrics(ids, steps, assigned, ["1", "2", "3", "9", "9"])
    assert got.id_switches == 2  # a: 1 → 2 → 1
    assert got.fragmentations == 1  # a: covered, gap at step 2, covered again
    assert got.false_tracks == 1  # 9
    assert got.purity == pytest.approx({"a": 3 / 5, "b": 1.0})


def test_identity_metrics_ignore_row_order() -> None:
    ids = ["a", "a", "a", "a", "b", "b"]
    steps = np.array([0, 1, 2, 3, 0, 1])
    assigned = ["1", None, "1", "2", "2", "2"]
    order = [5, 2, 0, 4, 3, 1]
    got = identity_metrics([ids[i] for i in order], steps[order], [assigned[i] for i in order], [])
    assert (got.id_switches, got.fragmentations) == (1, 1)
    assert got.purity == pytest.approx({"a": 2 / 3, "b": 1.0})


def test_id_switch_when_a_new_track_takes_over_a_truth() -> None:
    truth = states([(t, "a", 10.0 * t, 0) for t in range(6)])
    tracks = states(
        [(t, "k1", 10.0 * t + 1, 0) for t in range(3)]
        + [(t, "k2", 10.0 * t - 1, 0) for t in range(3, 6)]
        + [(t, "ghost", 900.0, 900.0) for t in range(2)]
    )
    score = score_tracks(truth, tracks, C, P)
    got = identity_from_score(truth, tracks, score)
    assert got.id_switches == 1
    assert got.fragmentations == 0
    assert got.false_tracks == 1
    assert got.purity == {"a": 0.5}


# --------------------------------------------------------------------------------------------
# Crossings

NORTH_LINE = Border([np.array([[0.0, -1000.0], [0.0, 1000.0]])], [BorderKind.GREEN], ["b"])


def test_truth_crossings_follow_each_path_in_time_order() -> None:
    # West of a north-pointing line is its left side: west → east is left_to_right.
    truth = states(
        [(t, "a", -50.0 + 10 * t, 0.0) for t in range(11)]
        + [(t, "b", 30.0 - 10 * t, 500.0) for t in range(11)]
    )
    got = truth_crossings(truth, NORTH_LINE)
    assert [(c.truth_id, c.direction) for c in got] == [
        ("b", "right_to_left"),
        ("a", "left_to_right"),
    ]
    assert got[0].t == pytest.approx(3.0)
    assert (got[1].t, got[1].x, got[1].y) == pytest.approx((5.0, 0.0, 0.0))


CROSSING = TruthCrossing("a", 100.0, "left_to_right", 0.0, 0.0)


@pytest.mark.parametrize(
    ("t", "detected"),
    [(103.0, True), (90.0, True), (130.0, True), (89.9, False), (131.0, False)],
)
def test_alert_must_fall_in_the_time_window(t: float, detected: bool) -> None:
    got = match_crossings([CROSSING], [alert(t, "k")], ["a"])
    assert got.detected == int(detected)
    assert got.missed == int(not detected)
    assert got.false_alerts == int(not detected)
    if detected:
        assert got.delay_s.tolist() == pytest.approx([t - 100.0])


def test_alert_in_the_wrong_direction_does_not_match() -> None:
    got = match_crossings([CROSSING], [alert(101.0, "k", "right_to_left")], ["a"])
    assert (got.detected, got.missed, got.false_alerts) == (0, 1, 1)


def test_repeated_new_alerts_are_chatter_and_the_earliest_counts() -> None:
    alerts = [
        alert(105.0, "k"),
        AlertRow(106.0, "k", "update", "left_to_right", 0, 0, 0.9),
        alert(101.0, "k"),
        AlertRow(120.0, "k", "end", "left_to_right", 0, 0, 0.9),
    ]
    got = match_crossings([CROSSING], alerts, ["a"] * 4)
    assert got.matches == [(0, 2)]
    assert got.delay_s.tolist() == pytest.approx([1.0])
    assert got.new_alerts == 2
    assert got.false_alerts == 1


def test_alert_for_a_track_following_another_truth_needs_to_be_near() -> None:
    far = alert(101.0, "k", x=400.0, y=0.0)
    assert match_crossings([CROSSING], [far], ["b"]).detected == 0
    assert match_crossings([CROSSING], [far], ["a"]).detected == 1
    assert match_crossings([CROSSING], [far], [None]).detected == 0
    near = alert(101.0, "k", x=30.0, y=40.0)
    assert match_crossings([CROSSING], [near], ["b"]).detected == 1
    beyond = alert(101.0, "k", x=30.0, y=40.1)
    assert match_crossings([CROSSING], [beyond], ["b"]).detected == 0
    wider = CrossingRules(radius_m=60.0)
    assert match_crossings([CROSSING], [beyond], ["b"], wider).detected == 1


def test_matching_maximises_detections_before_preferring_early_alerts() -> None:
    x = TruthCrossing("a", 10.0, "left_to_right", 0.0, 0.0)
    y = TruthCrossing("b", -29.9, "left_to_right", 1000.0, 0.0)
    # a1 is the earliest possible alert for x (10 s early, near its point) and the latest
    # possible one for y (its track follows b); a2 fits x only, 29 s late.
    alerts = [alert(0.0, "k1"), alert(39.0, "k2")]
    got = match_crossings([x, y], alerts, ["b", "a"])
    assert got.matches == [(0, 1), (1, 0)]
    assert got.delay_s.tolist() == pytest.approx([29.0, 29.9])
    assert got.missed == 0


def test_competing_crossings_keep_alert_order() -> None:
    x = TruthCrossing("a", 0.0, "left_to_right", 0.0, 0.0)
    y = TruthCrossing("b", 5.0, "left_to_right", 0.0, 10.0)
    got = match_crossings([x, y], [alert(6.0, "k"), alert(7.0, "j")], ["a", "b"])
    # Both pairings are allowed (proximity); the earlier alert goes to the earlier crossing.
    assert got.matches == [(0, 0), (1, 1)]
    assert got.delay_s.tolist() == pytest.approx([6.0, 2.0])


def test_alert_truths_reads_the_nearest_scored_step() -> None:
    truth = states(
        [(t, "a", 10.0 * t, 0.0) for t in range(5)] + [(t, "b", 0, 800) for t in range(5)]
    )
    tracks = states([(t, "k", 10.0 * t, 2.0) for t in range(1, 5)] + [(0.5, "k", 0, 0)])
    score = score_tracks(truth, tracks, C, P)
    alerts = [alert(2.4, "k"), alert(60.0, "k"), alert(0.4, "k"), alert(2.0, "nobody")]
    # At 0.4 s the nearest row of k is at 0.5 s, which is not scored: the next is 1 s.
    assert alert_truths(alerts, truth, tracks, score) == ["a", "a", "a", None]


def test_alert_truths_is_none_when_the_track_was_not_assigned() -> None:
    truth = states([(0, "a", 0, 0), (1, "a", 0, 0)])
    tracks = states([(0, "k", 0, 0), (1, "k", 500, 0)])
    score = score_tracks(truth, tracks, C, P)
    assert alert_truths([alert(0.9, "k"), alert(0.1, "k")], truth, tracks, score) == [None, "a"]


# --------------------------------------------------------------------------------------------
# The JSON summary, from memory and from files


def test_summary_per_target_figure_is_normalised_by_truth_count() -> None:
    truth = states([(0, "a", 0, 0), (0, "b", 500, 0), (1, "a", 0, 0)])
    result = score_run(truth, states([]), c=C, p=P)
    # Every truth missed: (n · c²/2 / n)^(1/2) = c/√2 at both steps.
    assert result["gospa"]["mean_per_target_normalised"] == pytest.approx(
        C / math.sqrt(2), abs=1e-3
    )
    assert result["gospa"]["mean"] == pytest.approx((50.0 + C / math.sqrt(2)) / 2, abs=1e-3)
    assert result["rmse_m"] is None
    assert result["crossings"] is None
    assert any("border" in note for note in result["notes"])


def test_summary_of_empty_truth_has_no_nan() -> None:
    result = score_run(states([]), states([(0, "k", 0, 0)]), c=C, p=P)
    assert result["steps"] == 0
    assert result["gospa"]["mean"] is None
    assert result["unscored_track_rows"] == 1
    json.dumps(result, allow_nan=False)


def write_csv(path: Path, header: str, rows: Sequence[Sequence[object]]) -> Path:
    lines = [header, *(",".join(str(v) for v in row) for row in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """Truth a crosses x = 0 west→east at t = 5 s; truth b walks north, away from the border."""
    truth: list[tuple[float, str, float, float, float, float]] = []
    tracks: list[tuple[float, str, float, float, float, float]] = []
    for t in range(11):
        truth.append((t, "a", -50 + 10 * t, 0, 10, 0))
        truth.append((t, "b", -300, 10 * t, 0, 10))
        tracks.append((t, "k1", -47 + 10 * t, 4, 10, 0))  # 5 m from a
        if t != 5:
            tracks.append((t, "k2", -300, 10 * t, 0, 10))
        if t <= 2:
            tracks.append((t, "ghost", 500, 500, 0, 0))
    tracks.append((10.5, "k1", 58, 4, 10, 0))  # no truth at 10.5 s
    tracks.sort(key=lambda r: r[0])
    write_csv(tmp_path / "truth.csv", "t,truth_id,x,y,vx,vy", truth)
    write_csv(tmp_path / "tracks.csv", "t,track_id,x,y,vx,vy", tracks)
    write_csv(
        tmp_path / "alerts.csv",
        "t,track_id,event,direction,x,y,p_cross",
        [
            (1.0, "ghost", "new", "right_to_left", 500, 500, 0.6),
            (6.0, "k1", "new", "left_to_right", 13, 4, 0.95),
            (7.0, "k1", "new", "left_to_right", 23, 4, 0.97),
            (8.0, "k1", "update", "left_to_right", 33, 4, 0.99),
        ],
    )
    border = {"type": "LineString", "coordinates": [[0, -1000], [0, 1000]]}
    (tmp_path / "border.geojson").write_text(json.dumps(border), encoding="utf-8")
    return tmp_path


def test_score_files_end_to_end(run_dir: Path) -> None:
    result = score_files(
        run_dir / "truth.csv", run_dir / "tracks.csv", run_dir / "alerts.csv", None, C, P
    )
    json.dumps(result, allow_nan=False)
    heavy = math.sqrt(25.0 + HALF)  # steps 0-2 (ghost is false) and 5 (b is missed)
    g = result["gospa"]
    assert (g["c"], g["p"], g["alpha"]) == (50.0, 2.0, 2.0)
    assert g["mean"] == pytest.approx((4 * heavy + 7 * 5.0) / 11, abs=1e-3)
    assert g["localisation"] == pytest.approx(25.0, abs=1e-3)
    assert g["missed"] == pytest.approx(HALF / 11, abs=1e-3)
    assert g["false"] == pytest.approx(3 * HALF / 11, abs=1e-3)
    assert g["mean_power"] == pytest.approx(g["localisation"] + g["missed"] + g["false"], abs=2e-3)
    assert g["mean_missed_count"] == pytest.approx(1 / 11, abs=1e-3)
    assert g["mean_false_count"] == pytest.approx(3 / 11, abs=1e-3)
    assert result["rmse_m"] == pytest.approx(math.sqrt(11 * 25.0 / 21), abs=1e-3)
    assert (result["id_switches"], result["fragmentations"], result["false_tracks"]) == (0, 1, 1)
    assert result["track_purity"] == {"mean": 1.0, "min": 1.0, "per_truth": {"a": 1.0, "b": 1.0}}
    assert result["truths"] == {"ids": 2, "mean_per_step": 2.0}
    assert result["tracks"]["ids"] == 3
    assert result["steps"] == 11
    assert result["unscored_track_rows"] == 1
    crossings = result["crossings"]
    assert crossings["truth"] == 1
    assert crossings["new_alerts"] == 3
    assert (crossings["detected"], crossings["missed"], crossings["false_alerts"]) == (1, 0, 2)
    assert crossings["false_alert_rate"] == 2.0
    assert crossings["delay_s"] == {"median": 1.0, "p90": 1.0, "mean": 1.0, "max": 1.0}
    assert result["notes"] == []


def test_score_files_without_border_or_alerts(run_dir: Path) -> None:
    (run_dir / "border.geojson").unlink()
    result = score_files(run_dir / "truth.csv", run_dir / "tracks.csv", None, None, C, P)
    assert result["crossings"] is None
    assert any("border.geojson" in note for note in result["notes"])
    assert result["steps"] == 11


def test_score_files_with_explicit_border_and_no_alerts(run_dir: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    (run_dir / "border.geojson").rename(elsewhere / "line.geojson")
    result = score_files(
        run_dir / "truth.csv", run_dir / "tracks.csv", None, elsewhere / "line.geojson", C, P
    )
    assert result["crossings"]["truth"] == 1
    assert result["crossings"]["detected"] is None
    assert any("alerts" in note for note in result["notes"])


def test_score_files_raises_input_error_on_a_bad_file(run_dir: Path) -> None:
    (run_dir / "tracks.csv").write_text("t,track,x,y\n0,k,1,2\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"tracks\.csv"):
        score_files(run_dir / "truth.csv", run_dir / "tracks.csv", None, None, C, P)


def test_cli_score_prints_the_summary(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["score", "--truth", str(run_dir / "truth.csv"), "--tracks", str(run_dir / "tracks.csv")]
    argv += ["--alerts", str(run_dir / "alerts.csv"), "--c", "20", "--p", "1"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = score_files(
        run_dir / "truth.csv", run_dir / "tracks.csv", run_dir / "alerts.csv", None, 20.0, 1.0
    )
    assert printed == expected
    assert (printed["gospa"]["c"], printed["gospa"]["p"]) == (20.0, 1.0)
    assert printed["crossings"]["detected"] == 1


def test_cli_score_reports_bad_input_with_exit_code_2(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "score",
        "--truth",
        str(run_dir / "missing.csv"),
        "--tracks",
        str(run_dir / "tracks.csv"),
    ]
    assert main(argv) == 2
    assert "missing.csv" in capsys.readouterr().err
    assert main([*argv[:2], str(run_dir / "truth.csv"), *argv[3:], "--c", "-1"]) == 2
