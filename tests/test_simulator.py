"""The scenario simulator: determinism, sensor statistics, fields of view, lives, output files."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from borderwatch.cli import main
from borderwatch.config.scenario import Scenario, load_scenario
from borderwatch.csvfiles import DETECTION_COLUMNS, TRUTH_COLUMNS, read_detections, read_truth
from borderwatch.fusion.detections import DetectionBatch, MeasurementKind, TargetClass
from borderwatch.simulator.run import (
    Simulation,
    cartesian_detections,
    simulate,
    simulate_to_dir,
    truth_crossings,
)
from borderwatch.simulator.sensors import in_view, range_bearing
from borderwatch.simulator.truth import TrajectoryBuilder, advance, follow_path

SCENARIOS = Path(__file__).resolve().parents[1] / "config" / "scenarios"

# 4-σ bounds: a correct simulator fails one of these checks far less than once in 10⁴ runs
# (and the seeds are fixed, so the tests are deterministic anyway).
Z = 4.0


def position_sensor(**overrides: Any) -> dict[str, Any]:
    sensor: dict[str, Any] = {
        "id": "tower",
        "type": "position",
        "mount": {"xy": [0.0, 0.0]},
        "fov": {"max_range_m": 5000.0},
        "sigma_m": 5.0,
        "pd": 0.9,
        "clutter_rate": 2.0,
        "update_interval_s": 1.0,
    }
    sensor.update(overrides)
    return sensor


def scenario_dict(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "test",
        "seed": 11,
        "duration_s": 60.0,
        "origin": {"lat_deg": 44.0, "lon_deg": 19.3, "alt_m": 200.0},
        "border": [{"name": "line", "kind": "green", "points": [[-3000, 0], [3000, 0]]}],
        "targets": [
            {
                "id": "walker",
                "class": "person",
                "motion": {
                    "type": "waypoints",
                    "points": [[-100, -60], [-100, 200]],
                    "speed_mps": 1.5,
                },
            }
        ],
        "generate": [
            {
                "name": "w",
                "heading": "random",
                "count": 40,
                "class": "person",
                "speed_mps": [1.0, 2.0],
                "region": [-2000, -2000, 2000, 2000],
            }
        ],
        "sensors": [position_sensor()],
    }
    doc.update(overrides)
    return doc


def write_yaml(tmp_path: Path, doc: dict[str, Any], name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def run(doc: dict[str, Any], seed: int | None = None) -> Simulation:
    return simulate(Scenario.model_validate(doc), seed=seed)


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def target_detections(sim: Simulation, sensor: int = 0) -> tuple[DetectionBatch, np.ndarray]:
    """One sensor's target detections (no clutter) and the true positions they came from."""
    batches, truth = [], []
    for scan in sim.scans:
        if scan.sensor != sensor:
            continue
        rows = sim.truth.rows_at(scan.t)
        hit = scan.truth_index >= 0
        batches.append(scan.detections.take(hit))
        # Truth rows of a time are sorted by target index.
        index = np.searchsorted(sim.truth.truth_id[rows], scan.truth_index[hit])
        truth.append(sim.truth.xy[rows][index])
    return DetectionBatch.concat(batches), np.vstack(truth)


# ------------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, scenario_dict())
    first = simulate_to_dir(path, tmp_path / "a", seed=None)
    second = simulate_to_dir(path, tmp_path / "b", seed=None)
    assert first == second
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    simulate_to_dir(path, tmp_path / "c", seed=12)
    a, c = digest(tmp_path / "a"), digest(tmp_path / "c")
    assert a["detections.csv"] != c["detections.csv"]
    assert a["border.geojson"] == c["border.geojson"]


def test_adding_a_sensor_changes_no_trajectory_and_no_other_sensor() -> None:
    doc = scenario_dict(sensors=[position_sensor(phase_s=0.5)])
    more = scenario_dict(
        sensors=[
            position_sensor(phase_s=0.5),
            position_sensor(id="second", update_interval_s=0.7, sigma_m=2.0),
        ]
    )
    one, two = run(doc), run(more)
    times = np.linspace(0.0, 60.0, 31)
    for a, b in zip(one.targets, two.targets, strict=True):
        assert np.array_equal(a.trajectory.evaluate(times)[0], b.trajectory.evaluate(times)[0])
    first_one = [s for s in one.scans if s.sensor == 0]
    first_two = [s for s in two.scans if s.sensor == 0]
    assert len(first_one) == len(first_two)
    for s1, s2 in zip(first_one, first_two, strict=True):
        assert s1.t == s2.t
        assert np.array_equal(s1.detections.z, s2.detections.z)


def test_adding_a_target_changes_no_other_trajectory() -> None:
    doc = scenario_dict()
    more = scenario_dict()
    more["generate"] = [dict(doc["generate"][0], count=45)]
    one, two = run(doc), run(more)
    times = np.linspace(0.0, 60.0, 13)
    for a, b in zip(one.targets, two.targets[: len(one.targets)], strict=True):
        assert a.id == b.id
        assert np.array_equal(a.trajectory.evaluate(times)[0], b.trajectory.evaluate(times)[0])


# -------------------------------------------------------------------------------- statistics
@pytest.fixture(scope="module")
def busy() -> Simulation:
    """200 walkers, all in view of one 360° position sensor and one radar, for 100 scans."""
    doc = scenario_dict(
        duration_s=99.0,
        targets=[],
        generate=[
            {
                "name": "w",
                "heading": "random",
                "count": 200,
                "class": "person",
                "speed_mps": [1.0, 2.0],
                "region": [-1500, -1500, 1500, 1500],
            }
        ],
        sensors=[
            position_sensor(pd=0.7, clutter_rate=3.0, sigma_m=5.0),
            {
                "id": "radar",
                "type": "radar",
                "mount": {"xy": [0.0, 0.0]},
                "fov": {"max_range_m": 5000.0},
                "sigma_range_m": 10.0,
                "sigma_bearing_deg": 0.5,
                "pd": 0.8,
                "clutter_rate": 1.0,
                "update_interval_s": 1.0,
                "phase_s": 0.5,
            },
        ],
    )
    return run(doc)


def test_detection_rate_matches_pd(busy: Simulation) -> None:
    for sensor, pd in ((0, 0.7), (1, 0.8)):
        scans = [s for s in busy.scans if s.sensor == sensor]
        chances = sum(
            s_rows.stop - s_rows.start for s_rows in (busy.truth.rows_at(s.t) for s in scans)
        )
        hits = sum(int(np.count_nonzero(s.truth_index >= 0)) for s in scans)
        bound = Z * math.sqrt(pd * (1 - pd) / chances)
        assert abs(hits / chances - pd) < bound, (sensor, hits / chances)


def test_position_noise_matches_sigma(busy: Simulation) -> None:
    batch, truth = target_detections(busy, 0)
    e = (batch.z - truth) / 5.0
    dof = e.size
    chi2 = float(np.sum(e * e))
    assert stats.chi2.ppf(1e-4, dof) < chi2 < stats.chi2.ppf(1 - 1e-4, dof)
    assert abs(float(e.mean())) < Z / math.sqrt(dof)


def test_radar_noise_matches_sigmas(busy: Simulation) -> None:
    batch, truth = target_detections(busy, 1)
    z = batch.z
    r, b = range_bearing(np.zeros(2), truth)
    e_r = (z[:, 0] - r) / 10.0
    e_b = ((z[:, 1] - b + math.pi) % (2 * math.pi) - math.pi) / math.radians(0.5)
    for e in (e_r, e_b):
        chi2 = float(np.sum(e * e))
        assert stats.chi2.ppf(1e-4, e.size) < chi2 < stats.chi2.ppf(1 - 1e-4, e.size)
    assert np.all((z[:, 1] >= 0) & (z[:, 1] < 2 * math.pi))


def test_clutter_count_matches_rate(busy: Simulation) -> None:
    for sensor, rate in ((0, 3.0), (1, 1.0)):
        counts = [
            int(np.count_nonzero(s.truth_index < 0)) for s in busy.scans if s.sensor == sensor
        ]
        expected = rate * len(counts)
        assert abs(sum(counts) - expected) < Z * math.sqrt(expected)


def test_scans_carry_class_hints_and_are_shuffled(busy: Simulation) -> None:
    scan = busy.scans[10]
    d = scan.detections
    target = scan.truth_index >= 0
    assert np.all(d.cls[target] == TargetClass.PERSON)
    assert np.all(d.cls[~target] == TargetClass.UNKNOWN)
    assert np.all(d.cls_conf[target] == 0.8)
    assert np.all(d.cls_conf[~target] == 0.0)
    assert np.all(d.sensor == scan.sensor)
    # Target detections are not listed in truth order: the scan was shuffled.
    shuffled = [not np.all(np.diff(s.truth_index[s.truth_index >= 0]) > 0) for s in busy.scans]
    assert sum(shuffled) > 0.9 * len(busy.scans)


# ---------------------------------------------------------------------------- field of view
def test_sensors_detect_only_inside_their_field_of_view() -> None:
    fov = {"max_range_m": 1200.0, "centre_azimuth_deg": 45.0, "width_deg": 60.0}
    doc = scenario_dict(
        generate=[
            {
                "name": "w",
                "heading": "random",
                "count": 150,
                "class": "person",
                "speed_mps": [1.0, 2.0],
                "region": [-2000, -2000, 2000, 2000],
            }
        ],
        sensors=[position_sensor(fov=fov, pd=1.0, clutter_rate=5.0)],
    )
    sim = run(doc)
    cfg = sim.scenario.sensors[0]
    origin = np.zeros(2)
    outside = detected = 0
    for scan in sim.scans:
        rows = sim.truth.rows_at(scan.t)
        xy, ids = sim.truth.xy[rows], sim.truth.truth_id[rows]
        seen = in_view(cfg.fov, origin, 0.0, xy)
        assert set(scan.truth_index[scan.truth_index >= 0].tolist()) == set(ids[seen].tolist())
        clutter = scan.detections.z[scan.truth_index < 0]
        assert np.all(in_view(cfg.fov, origin, 0.0, clutter))
        outside += int(np.count_nonzero(~seen))
        detected += int(np.count_nonzero(seen))
    assert outside > 0
    assert detected > 0


def test_platform_sensor_moves_and_looks_ahead() -> None:
    doc = scenario_dict(
        platforms=[
            {"name": "boat", "points": [[-500, -50], [500, -50]], "speed_mps": 5.0},
        ],
        sensors=[
            {
                "id": "cam",
                "type": "camera",
                "mount": {"platform": "boat"},
                "fov": {"max_range_m": 3000.0, "width_deg": 90.0, "heading_relative": True},
                "sigma_bearing_deg": 0.5,
                "pd": 1.0,
                "clutter_rate": 2.0,
                "update_interval_s": 1.0,
            },
            {
                "id": "radar",
                "type": "radar",
                "mount": {"platform": "boat"},
                "fov": {"max_range_m": 3000.0},
                "sigma_range_m": 5.0,
                "sigma_bearing_deg": 1.0,
                "pd": 1.0,
                "update_interval_s": 1.0,
            },
        ],
    )
    sim = run(doc)
    for scan in sim.scans:
        d = scan.detections
        expected = np.array([-500.0 + 5.0 * scan.t, -50.0])
        assert np.allclose(d.sensor_xy, expected)
        if scan.sensor == 0:
            assert np.all(d.kind == MeasurementKind.BEARING_ONLY)
            assert np.all(np.isnan(d.z[:, 1]))
            # The boat heads east (90°): the camera sees bearings within 45° of east.
            off = np.abs((d.z[:, 0] - math.pi / 2 + math.pi) % (2 * math.pi) - math.pi)
            assert np.all(off <= math.radians(45.0) + 5 * math.radians(0.5))
        else:
            assert np.all(d.kind == MeasurementKind.RANGE_BEARING)


# ----------------------------------------------------------------------- lives and sampling
def test_births_and_deaths_are_respected() -> None:
    doc = scenario_dict(
        targets=[
            {
                "id": "late",
                "class": "vehicle",
                "start_s": 10.5,
                "end_s": 40.0,
                "motion": {"type": "waypoints", "points": [[0, -500], [0, 500]], "speed_mps": 8},
            },
            {
                "id": "arrives",
                "class": "person",
                "start_s": 5.0,
                "motion": {"type": "waypoints", "points": [[100, -50], [100, -20]], "speed_mps": 1},
            },
        ],
        generate=[
            {
                "name": "g",
                "heading": "toward_border",
                "count": 20,
                "class": "person",
                "speed_mps": [1.0, 1.5],
                "region": [-1000, 200, 1000, 800],
                "start_s": [5, 30],
                "lifetime_s": [5, 20],
            }
        ],
        sensors=[position_sensor(pd=1.0, clutter_rate=0.0, phase_s=0.25)],
    )
    sim = run(doc)
    lives = {t.id: (t.start_s, t.end_s) for t in sim.targets}
    assert lives["late"] == (10.5, 40.0)
    assert lives["arrives"] == (5.0, 35.0)  # 30 m at 1 m/s: gone on arrival
    for i, target in enumerate(sim.targets):
        t = sim.truth.t[sim.truth.truth_id == i]
        assert np.all((t >= target.start_s) & (t <= target.end_s))
        if i >= 2:
            assert 5.0 <= target.start_s <= 30.0
            assert 5.0 - 1e-9 <= target.end_s - target.start_s <= 20.0 + 1e-9
    for scan in sim.scans:
        for i in scan.truth_index[scan.truth_index >= 0].tolist():
            assert sim.targets[i].start_s <= scan.t <= sim.targets[i].end_s


def test_truth_is_sampled_at_every_scan_time() -> None:
    doc = scenario_dict(
        sensors=[
            position_sensor(update_interval_s=1.0, phase_s=0.0),
            position_sensor(id="other", update_interval_s=0.75, phase_s=0.3),
        ]
    )
    sim = run(doc)
    scan_times = {s.t for s in sim.scans}
    assert set(np.unique(sim.truth.t).tolist()) == scan_times
    assert [s.t for s in sim.scans] == sorted(s.t for s in sim.scans)
    n = len(sim.targets)
    for t in scan_times:
        rows = sim.truth.rows_at(t)
        assert rows.stop - rows.start == n  # everyone lives for the whole run here
        assert np.all(np.diff(sim.truth.truth_id[rows]) > 0)


def test_waypoint_targets_pass_their_waypoints_on_time() -> None:
    points = np.array([[0.0, 0.0], [30.0, 40.0], [30.0, 100.0]])
    traj, arrival = follow_path(points, [5.0, 2.0], 10.0, 100.0, "end")
    xy, v, _ = traj.evaluate(np.array([10.0, 20.0, 50.0]))
    assert arrival == pytest.approx(50.0)
    assert np.allclose(xy, points, atol=1e-9)
    assert np.allclose(v[0], [3.0, 4.0])
    looped, end = follow_path(points, [5.0, 2.0], 0.0, 200.0, "reverse")
    assert end == math.inf
    back = looped.evaluate(np.array([70.0, 80.0]))[0]  # 40 s out, 30 s + 10 s back
    assert np.allclose(back, [[30.0, 40.0], [0.0, 0.0]])


@settings(max_examples=80, deadline=None)
@given(
    heading=st.floats(-7, 7),
    speed=st.floats(0.1, 20),
    rate=st.floats(-0.5, 0.5),
    accel=st.floats(-0.5, 0.5),
    dt1=st.floats(0, 30),
    dt2=st.floats(0, 30),
    turning=st.booleans(),
)
def test_leg_motion_composes(
    heading: float,
    speed: float,
    rate: float,
    accel: float,
    dt1: float,
    dt2: float,
    turning: bool,
) -> None:
    """Advancing dt1 then dt2 equals advancing dt1 + dt2 (turn legs and straight legs)."""
    w, a = (rate, 0.0) if turning else (0.0, accel)
    one = lambda p, h, s, dt: advance(  # noqa: E731
        np.array([p]), np.array([h]), np.array([s]), np.array([w]), np.array([a]), np.array([dt])
    )
    p1, h1, s1 = one([0.0, 0.0], heading, speed, dt1)
    p2, h2, s2 = one(p1[0], h1[0], s1[0], dt2)
    q, hq, sq = one([0.0, 0.0], heading, speed, dt1 + dt2)
    assert np.allclose(p2, q, atol=1e-6)
    assert np.allclose([h2[0], s2[0]], [hq[0], sq[0]])


def test_manoeuvring_speeds_stay_in_range() -> None:
    doc = scenario_dict(
        targets=[
            {
                "class": "boat",
                "motion": {
                    "type": "manoeuvring",
                    "start_xy": [0, -500],
                    "heading_deg": 90,
                    "speed_mps": 3,
                    "speed_range_mps": [2, 9],
                    "manoeuvre": {
                        "cruise_s": [2, 5],
                        "speed_change_probability": 0.6,
                        "accel_mps2": 1.5,
                    },
                },
            }
        ],
        generate=[],
        duration_s=300.0,
    )
    sim = run(doc)
    traj = sim.targets[0].trajectory
    speed = np.hypot(*sim.truth.v.T)
    assert speed.min() >= 2.0 - 1e-9
    assert speed.max() <= 9.0 + 1e-9
    assert np.ptp(speed) > 3.0  # it did change speed
    assert np.any(traj.turn_rate_rps != 0.0)
    # The path is continuous where legs join.
    ends = traj.evaluate(traj.t0[1:] - 1e-9)[0]
    starts = traj.evaluate(traj.t0[1:])[0]
    assert np.max(np.hypot(*(ends - starts).T)) < 1e-3


def test_builder_goto_reaches_the_point() -> None:
    b = TrajectoryBuilder(0.0, np.zeros(2), 0.0, 0.0)
    b.goto(np.array([300.0, 400.0]), 10.0)
    assert b.t == pytest.approx(50.0)
    assert b.heading_rad == pytest.approx(math.atan2(300.0, 400.0))


# ------------------------------------------------------------------------------ output files
def test_files_have_exact_headers_and_read_back(tmp_path: Path) -> None:
    doc = scenario_dict(
        platforms=[{"name": "boat", "points": [[-500, -50], [500, -50]], "speed_mps": 5.0}],
        sensors=[
            position_sensor(),
            {
                "id": "radar",
                "type": "radar",
                "mount": {"platform": "boat"},
                "fov": {"max_range_m": 3000.0},
                "sigma_range_m": 5.0,
                "sigma_bearing_deg": 1.0,
                "pd": 0.9,
                "clutter_rate": 1.0,
                "update_interval_s": 2.0,
                "phase_s": 0.5,
            },
            {
                "id": "cam",
                "type": "camera",
                "mount": {"xy": [0, -100]},
                "fov": {"max_range_m": 3000.0},
                "sigma_bearing_deg": 0.5,
                "pd": 0.9,
                "update_interval_s": 1.0,
            },
        ],
    )
    out = tmp_path / "out"
    summary = simulate_to_dir(write_yaml(tmp_path, doc), out, seed=None)
    truth_lines = (out / "truth.csv").read_text().splitlines()
    det_lines = (out / "detections.csv").read_text().splitlines()
    assert truth_lines[0] == ",".join(TRUTH_COLUMNS) == "t,truth_id,x,y,vx,vy"
    assert det_lines[0] == ",".join(DETECTION_COLUMNS) == "t,x,y,sigma"
    truth = read_truth(out / "truth.csv")
    detections = read_detections(out / "detections.csv")
    assert len(truth.t) == summary["truth_rows"]
    assert len(detections.t) == summary["detections_written"]
    assert set(truth.ids) == {"walker", *(f"w-{k}" for k in range(40))}
    cam = summary["sensors"]["cam"]["detections"]
    assert cam > 0
    assert summary["detections_omitted"] == {"bearing_only": cam}
    assert summary["detections_written"] == summary["detections"] - cam
    assert "bearing-only" in summary["notes"][0]
    assert summary["targets"] == 41
    assert summary["duration_s"] == 60.0
    assert summary["crossings_by_target"]["walker"] == 1
    border = json.loads((out / "border.geojson").read_text())
    assert border["features"][0]["properties"] == {"kind": "green", "name": "line"}
    assert border["borderwatch:frame"]["origin"]["lat_deg"] == 44.0
    # Every scan time of any sensor has truth rows.
    scan_times = set(np.round(detections.t, 3).tolist())
    assert scan_times <= set(np.round(truth.t, 3).tolist())


def test_radar_conversion_sigma_is_the_larger_axis() -> None:
    r = np.array([100.0, 1000.0, 5000.0])
    b = np.radians([0.0, 90.0, 200.0])
    s_r, s_b = 5.0, math.radians(1.0)
    R = np.zeros((3, 2, 2))
    R[:, 0, 0], R[:, 1, 1] = s_r**2, s_b**2
    batch = DetectionBatch(
        t=np.zeros(3),
        kind=np.full(3, MeasurementKind.RANGE_BEARING, dtype=np.int64),
        z=np.column_stack([r, b]),
        R=R,
        sensor_xy=np.tile([10.0, 20.0], (3, 1)),
        sensor=np.zeros(3, dtype=np.int64),
    )
    rows = cartesian_detections(batch)
    assert np.allclose(rows.sigma, np.maximum(s_r, r * s_b))
    assert np.allclose(rows.xy[1], [1010.0, 20.0])
    assert np.allclose(rows.xy[0], [10.0, 120.0])
    assert rows.omitted_bearing_only == 0


def test_converted_radar_errors_are_within_their_sigma(busy: Simulation) -> None:
    batch, truth = target_detections(busy, 1)
    rows = cartesian_detections(batch)
    err = np.hypot(*(rows.xy - truth).T) / rows.sigma
    # The isotropic sigma bounds the larger axis, so errors are no wider than a 2-D Gaussian.
    assert np.mean(err**2) < 2.0
    assert np.quantile(err, 0.99) < math.sqrt(stats.chi2.ppf(0.999, 2))


def test_cli_simulate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_yaml(tmp_path, scenario_dict())
    code = main(["simulate", str(path), "--out", str(tmp_path / "cli"), "--seed", "5"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["seed"] == 5
    assert summary["targets"] == 41
    assert (tmp_path / "cli" / "truth.csv").exists()


def test_cli_reports_a_bad_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = scenario_dict()
    doc["sensors"][0]["pd"] = 3
    path = write_yaml(tmp_path, doc)
    assert main(["simulate", str(path), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    line = next(n for n, s in enumerate(path.read_text().splitlines(), 1) if "pd: 3" in s)
    assert f"{path}:{line}: sensors[0].pd" in err


# --------------------------------------------------------------------------- example scenarios
def first_detection_times(sim: Simulation) -> dict[int, float]:
    first: dict[int, float] = {}
    for scan in sim.scans:
        for i in scan.truth_index[scan.truth_index >= 0].tolist():
            first.setdefault(i, scan.t)
    return first


@pytest.fixture(scope="module")
def examples() -> dict[str, Simulation]:
    return {p.stem: simulate(load_scenario(p)) for p in sorted(SCENARIOS.glob("*.yaml"))}


def test_examples_see_every_crosser_20_s_before_it_crosses(examples: dict[str, Simulation]) -> None:
    assert set(examples) >= {"green-night-patrol", "river-crossing", "stress-1000", "crossings-100"}
    for name, sim in examples.items():
        first = first_detection_times(sim)
        for i, crossings in enumerate(truth_crossings(sim).values()):
            if crossings:
                assert crossings[0].t - first.get(i, math.inf) >= 20.0, (name, sim.targets[i].id)


def test_crossings_100_has_exactly_100_single_crossings(examples: dict[str, Simulation]) -> None:
    sim = examples["crossings-100"]
    crossings = truth_crossings(sim)
    assert len(sim.targets) == 100
    assert sum(len(c) for c in crossings.values()) == 100
    assert all(len(c) == 1 for c in crossings.values())
    assert {sim.border.kind[c[0].segment] for c in crossings.values()} == {0, 1}
    times = sorted(c[0].t for c in crossings.values())
    assert times[0] < 100.0
    assert times[-1] > 500.0
    # Well separated: any two targets alive at the same time are at least 200 m apart.
    for t in np.unique(sim.truth.t):
        xy = sim.truth.xy[sim.truth.rows_at(t)]
        d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
        np.fill_diagonal(d, np.inf)
        assert d.min(initial=np.inf) >= 200.0, t


def test_green_night_patrol_has_crossers_and_chatter(examples: dict[str, Simulation]) -> None:
    sim = examples["green-night-patrol"]
    crossings = truth_crossings(sim)
    assert 20 <= len(sim.targets) <= 30
    assert sum(1 for c in crossings.values() if c) >= 10
    patrol = [i for i, t in enumerate(sim.targets) if re.fullmatch(r"patrol-\d+", t.id)]
    assert patrol
    for i in patrol:
        assert not crossings[sim.targets[i].id]
        d = np.abs(sim.border.proximity(sim.truth.xy[sim.truth.truth_id == i]).signed_distance_m)
        assert d.min() >= 4.0
        assert d.max() <= 16.0


def test_stress_1000_keeps_everyone_alive(examples: dict[str, Simulation]) -> None:
    sim = examples["stress-1000"]
    assert len(sim.targets) == 1000
    assert len(sim.truth) == 1000 * 121
    assert all(t.start_s == 0.0 and t.end_s == 120.0 for t in sim.targets)
