"""Run a scenario: ground truth, sensor scans, and the files of the command-line contract.

:func:`simulate` turns a validated :class:`~borderwatch.config.scenario.Scenario` into a
:class:`Simulation` in memory (arrays and :class:`~borderwatch.fusion.detections.DetectionBatch`
scans, exactly what the fusion core consumes). :func:`simulate_to_dir` does the same from a
YAML file and writes ``truth.csv``, ``detections.csv`` and ``border.geojson`` (formats in
:mod:`borderwatch.csvfiles` and ``docs/scenarios.md``).

The same scenario and seed give bit-for-bit identical results: every random draw comes from a
seeded stream, and nothing reads the clock.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from borderwatch.config.scenario import RadarSensorConfig, Scenario, load_scenario
from borderwatch.csvfiles import DETECTION_COLUMNS, TRUTH_COLUMNS, CsvWriter
from borderwatch.fusion.borders import Border, BorderKind, PathCrossing
from borderwatch.fusion.detections import DetectionBatch, FloatArray, MeasurementKind
from borderwatch.fusion.frames import LocalFrame
from borderwatch.fusion.models import to_cartesian
from borderwatch.simulator.sensors import (
    Scan,
    platform_trajectory,
    scan_times,
    sensor_pose,
    simulate_sensor,
)
from borderwatch.simulator.truth import (
    SENSOR_STREAM,
    SimTarget,
    TruthTable,
    build_targets,
    stream,
    truth_table,
)

log = logging.getLogger(__name__)

TRUTH_FILE = "truth.csv"
DETECTIONS_FILE = "detections.csv"
BORDER_FILE = "border.geojson"


@dataclass(frozen=True, slots=True)
class Simulation:
    """The result of a scenario run.

    Attributes:
        scenario: the validated scenario.
        seed: the seed used (the scenario's unless overridden).
        frame: the local ENU frame at the scenario's origin.
        border: the border geometry in local metres.
        targets: every target with its life and trajectory; ``truth.truth_id`` indexes it.
        truth: one row per live target at every scan time of any sensor, sorted by time.
        scans: every sensor update in time order (ties by sensor index).
        sensor_ids: ids of the sensors, in scenario order (``Scan.sensor`` indexes it).
    """

    scenario: Scenario
    seed: int
    frame: LocalFrame
    border: Border
    targets: list[SimTarget]
    truth: TruthTable
    scans: list[Scan]
    sensor_ids: list[str]

    @property
    def target_ids(self) -> list[str]:
        """Truth ids of the targets, indexed by ``truth.truth_id``."""
        return [t.id for t in self.targets]

    def detections(self) -> DetectionBatch:
        """All detections of all scans, in scan order."""
        return DetectionBatch.concat([s.detections for s in self.scans])


def border_of(scenario: Scenario) -> Border:
    """The scenario's border lines as a :class:`Border`."""
    return Border(
        [np.array(line.points, dtype=np.float64) for line in scenario.border],
        [BorderKind[line.kind.upper()] for line in scenario.border],
        [line.name for line in scenario.border],
    )


def simulate(scenario: Scenario, seed: int | None = None) -> Simulation:
    """Simulate targets and sensors; ``seed`` overrides the scenario's seed."""
    seed = scenario.seed if seed is None else seed
    border = border_of(scenario)
    origin = scenario.origin
    frame = LocalFrame(origin.lat_deg, origin.lon_deg, origin.alt_m)
    targets = build_targets(scenario, border, seed)
    times = [scan_times(s, scenario.duration_s) for s in scenario.sensors]
    all_times = np.unique(np.concatenate(times)) if times else np.zeros(0)
    truth = truth_table(targets, all_times)
    platforms = {p.name: platform_trajectory(p, scenario.duration_s) for p in scenario.platforms}
    scans: list[Scan] = []
    for j, (cfg, t) in enumerate(zip(scenario.sensors, times, strict=True)):
        pose = sensor_pose(cfg, platforms, t)
        scans.extend(simulate_sensor(j, cfg, t, pose, truth, stream(seed, SENSOR_STREAM, j)))
    scans.sort(key=lambda s: (s.t, s.sensor))
    log.debug(
        "simulated %s: %d targets, %d truth rows, %d scans",
        scenario.name,
        len(targets),
        len(truth),
        len(scans),
    )
    return Simulation(
        scenario=scenario,
        seed=seed,
        frame=frame,
        border=border,
        targets=targets,
        truth=truth,
        scans=scans,
        sensor_ids=[s.id for s in scenario.sensors],
    )


def truth_crossings(sim: Simulation) -> dict[str, list[PathCrossing]]:
    """Border crossings of each target's sampled truth path (``Border.path_crossings``)."""
    out: dict[str, list[PathCrossing]] = {}
    order = np.argsort(sim.truth.truth_id, kind="stable")
    ids = sim.truth.truth_id[order]
    bounds = np.searchsorted(ids, np.arange(len(sim.targets) + 1))
    for i, target in enumerate(sim.targets):
        rows = order[bounds[i] : bounds[i + 1]]
        out[target.id] = sim.border.path_crossings(sim.truth.t[rows], sim.truth.xy[rows])
    return out


@dataclass(frozen=True, slots=True)
class CartesianDetections:
    """Detections as rows of detections.csv: time (s), position (m) and isotropic 1-σ (m)."""

    t: FloatArray
    xy: FloatArray
    sigma: FloatArray
    omitted_bearing_only: int


def cartesian_detections(batch: DetectionBatch) -> CartesianDetections:
    """Position and range-bearing detections in Cartesian form, with an isotropic sigma.

    Range-bearing detections are converted at their measured range and bearing; their sigma is
    the square root of the largest eigenvalue of the converted covariance, so the circle it
    describes contains the true error ellipse (honest, if pessimistic across the beam).
    Bearing-only detections have no position and are left out (counted).
    """
    keep = batch.kind != MeasurementKind.BEARING_ONLY
    kept = batch.take(keep)
    xy, cov = to_cartesian(kept.z, kept.R, kept.kind, kept.sensor_xy)
    sigma = np.sqrt(np.linalg.eigvalsh(cov)[:, -1]) if len(kept) else np.zeros(0)
    return CartesianDetections(kept.t, xy, sigma, int(np.count_nonzero(~keep)))


def write_truth(path: Path, sim: Simulation, times: FloatArray | None = None) -> None:
    """truth.csv: ``t,truth_id,x,y,vx,vy`` per live target per scan time, sorted by ``t``.

    With ``times``, only rows at those times are written: truth.csv then pairs with a
    detections.csv whose scans happen at exactly those times, so a tracker's output (one table
    per scan) can be scored at every truth time.
    """
    truth = sim.truth
    if times is not None:
        truth = truth.at_times(times)
    ids = sim.target_ids
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = CsvWriter(handle, TRUTH_COLUMNS)
        writer.rows(
            (t, ids[i], x, y, vx, vy)
            for t, i, (x, y), (vx, vy) in zip(
                truth.t.tolist(),
                truth.truth_id.tolist(),
                truth.xy.tolist(),
                truth.v.tolist(),
                strict=True,
            )
        )


def write_detections(path: Path, rows: CartesianDetections) -> None:
    """detections.csv: ``t,x,y,sigma`` sorted by ``t`` (stable, so scan order is kept)."""
    order = np.argsort(rows.t, kind="stable")
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = CsvWriter(handle, DETECTION_COLUMNS)
        writer.rows(
            (t, x, y, s)
            for t, (x, y), s in zip(
                rows.t[order].tolist(),
                rows.xy[order].tolist(),
                rows.sigma[order].tolist(),
                strict=True,
            )
        )


def write_border(path: Path, sim: Simulation) -> None:
    """border.geojson: the border in local metres with the frame origin."""
    text = json.dumps(sim.border.to_geojson(sim.frame), indent=1, sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")


def summary(sim: Simulation, rows: CartesianDetections) -> dict[str, Any]:
    """Counts describing a run, for the command line (JSON-serialisable)."""
    crossings = truth_crossings(sim)
    by_target = {k: len(v) for k, v in crossings.items() if v}
    scan_sensor = np.array([s.sensor for s in sim.scans], dtype=np.int64)
    scan_size = np.array([len(s.detections) for s in sim.scans], dtype=np.float64)
    n_sensors = len(sim.sensor_ids)
    per_sensor = np.bincount(scan_sensor, weights=scan_size, minlength=n_sensors).astype(np.int64)
    scans_per_sensor = np.bincount(scan_sensor, minlength=n_sensors)
    clutter = sum(int(np.count_nonzero(s.truth_index < 0)) for s in sim.scans)
    out: dict[str, Any] = {
        "scenario": sim.scenario.name,
        "seed": sim.seed,
        "duration_s": sim.scenario.duration_s,
        "targets": len(sim.targets),
        "truth_rows": len(sim.truth),
        "scans": len(sim.scans),
        "detections": int(per_sensor.sum()),
        "clutter_detections": clutter,
        "detections_written": int(rows.t.shape[0]),
        "detections_omitted": {"bearing_only": rows.omitted_bearing_only},
        "truth_crossings": int(sum(by_target.values())),
        "targets_crossing": len(by_target),
        "crossings_by_target": by_target,
        "sensors": {
            sid: {
                "type": cfg.type,
                "scans": int(scans_per_sensor[j]),
                "detections": int(per_sensor[j]),
            }
            for j, (sid, cfg) in enumerate(zip(sim.sensor_ids, sim.scenario.sensors, strict=True))
        },
        "files": [TRUTH_FILE, DETECTIONS_FILE, BORDER_FILE],
    }
    if rows.omitted_bearing_only:
        out["notes"] = [
            "bearing-only detections cannot be written as t,x,y,sigma and were left out of "
            f"{DETECTIONS_FILE}; they are available through simulate()"
        ]
    if any(isinstance(cfg, RadarSensorConfig) for cfg in sim.scenario.sensors):
        out.setdefault("notes", []).append(
            "range-bearing detections were converted to x,y with sigma = sqrt of the largest "
            "eigenvalue of the converted covariance"
        )
    return out


def simulate_to_dir(scenario_path: Path, out_dir: Path, seed: int | None) -> dict[str, Any]:
    """Simulate a scenario file and write truth.csv, detections.csv and border.geojson.

    Returns the :func:`summary` of the run. Raises :class:`~borderwatch.errors.ConfigError`
    (with file and line) for a scenario that does not validate.
    """
    sim = simulate(load_scenario(scenario_path), seed=seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = cartesian_detections(sim.detections())
    write_truth(out_dir / TRUTH_FILE, sim, times=np.unique(rows.t))
    write_detections(out_dir / DETECTIONS_FILE, rows)
    write_border(out_dir / BORDER_FILE, sim)
    result = summary(sim, rows)
    log.info(
        "%s: %d targets, %d truth rows, %d detections written to %s",
        sim.scenario.name,
        result["targets"],
        result["truth_rows"],
        result["detections_written"],
        out_dir,
    )
    return result
