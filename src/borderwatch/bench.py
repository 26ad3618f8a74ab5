"""``borderwatch bench``: throughput, per-scan latency and tracking quality, measured.

Speed: for 10, 100 and 1000 simultaneous targets (1 Hz scans, σ = 5 m, Pd 0.9, 2 false
detections per scan, walkers and vehicles that manoeuvre, a border through the area), every
``Tracker.step`` call is timed on one core; detections/s is detections over the summed step time.

Quality: the shipped scenarios are simulated and tracked with their full measurement models,
then scored against truth (GOSPA, RMSE, crossing alerts). The IMM filter is compared with a
constant-velocity/GNN tracker whose process noise is tuned for the scenario (the best of a grid),
so "no worse than a well-tuned CV tracker" is a measurement, not a claim.

Figures go to stdout; nothing here is asserted. The test-suite never times anything.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from borderwatch.config.scenario import Scenario, load_scenario
from borderwatch.config.tracker import MotionMode, TrackerConfig
from borderwatch.scenarios import resolve_scenario
from borderwatch.simulator.pipeline import run_tracker, score_simulation
from borderwatch.simulator.run import Simulation, simulate

SPEED_SCENARIO_SPAN_M = 20000.0
CV_GRID_Q = (0.02, 0.05, 0.1, 0.3, 1.0)
QUALITY_SCENARIOS = ("crossings-100", "green-night-patrol", "river-crossing")
IMM_COMPARISON = ("manoeuvring-walkers", "green-night-patrol")


@contextmanager
def one_core() -> Iterator[int | None]:
    """Run the block on one CPU so figures are per core (yields the CPU, or None when the
    platform cannot pin); the previous affinity is restored afterwards."""
    try:
        before = os.sched_getaffinity(0)
        cpu = min(before)
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        yield None
        return
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


def speed_scenario(targets: int, scans: int, seed: int) -> Scenario:
    """``targets`` simultaneous walkers (70 %) and vehicles (30 %) over an area that keeps the
    density of the 1000-target case, one 360° sensor (σ 5 m, Pd 0.9, 2 clutter/scan, 1 Hz)."""
    half = SPEED_SCENARIO_SPAN_M / 2 * float(np.sqrt(targets / 1000.0))
    region = [-half, -half, half, half]
    walkers = round(targets * 0.7)
    return Scenario.model_validate(
        {
            "name": f"bench-{targets}",
            "seed": seed,
            "duration_s": float(scans - 1),
            "origin": {"lat_deg": 44.0, "lon_deg": 19.3},
            "border": [
                {"name": "line", "kind": "green", "points": [[-2 * half, 0.0], [2 * half, 0.0]]}
            ],
            "generate": [
                {
                    "name": "walker",
                    "heading": "random",
                    "count": walkers,
                    "class": "person",
                    "speed_mps": [0.8, 1.8],
                    "region": region,
                    "manoeuvre": {"cruise_s": [15, 45], "turn_rate_dps": [3, 12]},
                },
                {
                    "name": "vehicle",
                    "heading": "random",
                    "count": targets - walkers,
                    "class": "vehicle",
                    "speed_mps": [5, 15],
                    "region": region,
                    "manoeuvre": {"cruise_s": [10, 30], "turn_rate_dps": [2, 10]},
                },
            ],
            "sensors": [
                {
                    "id": "wide-area",
                    "type": "position",
                    "mount": {"xy": [0.0, 0.0]},
                    "fov": {"max_range_m": 4 * half},
                    "sigma_m": 5.0,
                    "pd": 0.9,
                    "clutter_rate": 2.0,
                    "update_interval_s": 1.0,
                }
            ],
        }
    )


@dataclass(frozen=True, slots=True)
class SpeedFigures:
    targets: int
    scans: int
    detections: int
    detections_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    tracks: int
    rmse_m: float


def measure_speed(targets: int, scans: int, seed: int) -> SpeedFigures:
    sim = simulate(speed_scenario(targets, scans, seed))
    # As a long-running node does after start-up: move everything built so far out of the
    # cyclic collector's reach, so a full collection does not scan the simulation's objects
    # in the middle of a scan (a 30-40 ms pause otherwise).
    gc.collect()
    gc.freeze()
    try:
        run = run_tracker(sim)
    finally:
        gc.unfreeze()
    # The first scans build the track set (nothing to associate yet): latency is measured in
    # the steady state, throughput over the whole run.
    steady = run.latency_s[min(5, len(run.latency_s) - 1) :] * 1000.0
    score = score_simulation(sim, run)
    last_t = run.tracks.t[-1] if len(run.tracks.t) else 0.0
    return SpeedFigures(
        targets=targets,
        scans=len(sim.scans),
        detections=run.detections,
        detections_per_s=run.detections / float(run.latency_s.sum()),
        p50_ms=float(np.percentile(steady, 50)),
        p99_ms=float(np.percentile(steady, 99)),
        max_ms=float(steady.max()),
        tracks=int(np.count_nonzero(run.tracks.t == last_t)),
        rmse_m=float(score["rmse_m"]),
    )


def _load(name: str) -> Simulation:
    return simulate(load_scenario(resolve_scenario(name)))


def _quality(sim: Simulation, config: TrackerConfig | None) -> dict[str, Any]:
    score = score_simulation(sim, run_tracker(sim, config))
    crossings = score["crossings"] or {}
    return {
        "gospa_mean_m": score["gospa"]["mean"],
        "gospa_per_target_m": score["gospa"]["mean_per_target_normalised"],
        "rmse_m": score["rmse_m"],
        "missed_per_step": score["gospa"]["mean_missed_count"],
        "false_per_step": score["gospa"]["mean_false_count"],
        "id_switches": score["id_switches"],
        "crossings": crossings.get("truth"),
        "crossings_detected": crossings.get("detected"),
        "crossings_missed": crossings.get("missed"),
        "false_crossing_alerts": crossings.get("false_alerts"),
        "false_alert_rate": crossings.get("false_alert_rate"),
        "delay_median_s": (crossings.get("delay_s") or {}).get("median"),
        "delay_p90_s": (crossings.get("delay_s") or {}).get("p90"),
    }


def cv_config(q: float) -> TrackerConfig:
    """A single constant-velocity mode with process noise ``q`` (m²/s³): a CV/GNN tracker."""
    return TrackerConfig(modes=[MotionMode(name="cv", q_m2ps3=q, sojourn_s=1e6)])


def compare_imm_with_cv(sim: Simulation) -> dict[str, Any]:
    """IMM (defaults) against the best constant-velocity tracker over :data:`CV_GRID_Q`."""
    cv = {q: _quality(sim, cv_config(q)) for q in CV_GRID_Q}
    best_q = min(cv, key=lambda q: cv[q]["gospa_per_target_m"])
    return {"imm": _quality(sim, None), "cv_best_q": best_q, "cv_best": cv[best_q], "cv_grid": cv}


def run_bench(
    targets: list[int],
    scans: int,
    seed: int,
    quality: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure everything; returns figures and a printable ``text``."""
    say = progress or (lambda _msg: None)
    speed = []
    with one_core() as cpu:
        for n in targets:
            say(f"speed: {n} targets")
            speed.append(measure_speed(n, scans, seed))
    result: dict[str, Any] = {
        "cpu": cpu,
        "speed": [_fields(f) for f in speed],
    }
    lines = _speed_text(speed, cpu)
    if quality:
        scenarios = {}
        for name in QUALITY_SCENARIOS:
            say(f"quality: {name}")
            started = time.perf_counter()
            scenarios[name] = _quality(_load(name), None)
            scenarios[name]["seconds"] = round(time.perf_counter() - started, 2)
        comparison = {}
        for name in IMM_COMPARISON:
            say(f"IMM vs CV: {name}")
            comparison[name] = compare_imm_with_cv(_load(name))
        result["quality"] = scenarios
        result["imm_vs_cv"] = comparison
        lines += _quality_text(scenarios) + _comparison_text(comparison)
    result["text"] = "\n".join(lines)
    return result


def _fields(f: SpeedFigures) -> dict[str, Any]:
    return {name: getattr(f, name) for name in f.__slots__}


def _speed_text(speed: list[SpeedFigures], cpu: int | None) -> list[str]:
    where = f"pinned to CPU {cpu}" if cpu is not None else "not pinned"
    lines = [
        f"Tracker throughput and per-scan latency ({where}; 1 Hz scans, σ 5 m, Pd 0.9, "
        "2 clutter/scan, IMM 4 modes, border on)",
        f"{'targets':>8} {'scans':>6} {'detections':>11} {'det/s':>9} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8} {'tracks':>7} {'RMSE m':>7}",
    ]
    for f in speed:
        lines.append(
            f"{f.targets:>8} {f.scans:>6} {f.detections:>11} {f.detections_per_s:>9.0f} "
            f"{f.p50_ms:>8.2f} {f.p99_ms:>8.2f} {f.max_ms:>8.2f} {f.tracks:>7} {f.rmse_m:>7.2f}"
        )
    return lines


def _num(value: object, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _quality_text(scenarios: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "Tracking and crossing alerts on the shipped scenarios (full measurement models)",
        f"{'scenario':<20} {'GOSPA/tgt':>9} {'RMSE':>6} {'miss/step':>9} {'false/step':>10} "
        f"{'crossings':>9} {'missed':>6} {'false':>5} {'delay p50':>9} {'p90':>6}",
    ]
    for name, q in scenarios.items():
        lines.append(
            f"{name:<20} {_num(q['gospa_per_target_m'], '.2f'):>9} {_num(q['rmse_m'], '.2f'):>6} "
            f"{_num(q['missed_per_step'], '.2f'):>9} {_num(q['false_per_step'], '.2f'):>10} "
            f"{_num(q['crossings'], 'd'):>9} {_num(q['crossings_missed'], 'd'):>6} "
            f"{_num(q['false_crossing_alerts'], 'd'):>5} {_num(q['delay_median_s'], '.2f'):>9} "
            f"{_num(q['delay_p90_s'], '.2f'):>6}"
        )
    return lines


def _comparison_text(comparison: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "IMM against the best constant-velocity/GNN tracker (q tuned over "
        f"{', '.join(str(q) for q in CV_GRID_Q)} m²/s³)",
        f"{'scenario':<20} {'tracker':<14} {'GOSPA/tgt':>9} {'RMSE':>6} {'miss/step':>9} "
        f"{'ID sw':>6}",
    ]
    for name, c in comparison.items():
        for label, q in (("IMM", c["imm"]), (f"CV q={c['cv_best_q']}", c["cv_best"])):
            lines.append(
                f"{name:<20} {label:<14} {_num(q['gospa_per_target_m'], '.2f'):>9} "
                f"{_num(q['rmse_m'], '.2f'):>6} {_num(q['missed_per_step'], '.2f'):>9} "
                f"{_num(q['id_switches'], 'd'):>6}"
            )
    return lines
