"""``borderwatch demo``: a simulated night on the border, end to end, with no hardware.

Simulates a scenario, writes its truth, detections and border, runs the tracker scan by scan
(printing border alerts as they are raised), writes tracks and alerts, and scores everything
against truth.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from borderwatch.config.scenario import load_scenario
from borderwatch.csvfiles import ALERT_COLUMNS, TRACK_COLUMNS, CsvWriter
from borderwatch.fusion.borders import BorderKind
from borderwatch.fusion.detections import TargetClass
from borderwatch.fusion.outputs import AlertEvent, AlertKind, BorderAlert
from borderwatch.fusion.tracker import StepResult
from borderwatch.scenarios import resolve_scenario
from borderwatch.simulator.pipeline import (
    TrackingRun,
    crossing_rows,
    run_tracker,
    score_simulation,
)
from borderwatch.simulator.run import (
    Simulation,
    cartesian_detections,
    simulate,
    write_border,
    write_detections,
    write_truth,
)
from borderwatch.simulator.sensors import Scan

PROGRESS_EVERY_S = 60.0


def run_demo(
    scenario: str | Path, out: Path, seed: int | None = None, stream: TextIO | None = None
) -> int:
    """Run the demo; returns the process exit code."""
    say = _printer(stream or sys.stdout)
    path = resolve_scenario(scenario)
    sim = simulate(load_scenario(path), seed=seed)
    _introduce(say, sim, path)
    out.mkdir(parents=True, exist_ok=True)
    rows = cartesian_detections(sim.detections())
    write_truth(out / "truth.csv", sim)
    write_detections(out / "detections.csv", rows)
    write_border(out / "border.geojson", sim)
    say(f"Scenario files written to {out}/ (truth.csv, detections.csv, border.geojson)")
    say("")
    started = time.perf_counter()
    run = run_tracker(sim, on_step=_Narrator(say, sim))
    elapsed = time.perf_counter() - started
    _write_results(out, run)
    score = score_simulation(sim, run)
    (out / "score.json").write_text(json.dumps(score, indent=2, sort_keys=True) + "\n")
    _summarise(say, sim, run, score, elapsed, out)
    return 0


def _printer(stream: TextIO) -> Any:
    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    return say


def _introduce(say: Any, sim: Simulation, path: Path) -> None:
    sc = sim.scenario
    kinds = sorted({BorderKind(int(k)).name.lower() for k in sim.border.kind.tolist()})
    length_km = float(sim.border.length.sum()) / 1000.0
    sensors = ", ".join(f"{s.id} ({s.type})" for s in sc.sensors)
    say(f"borderwatch demo: {sc.name}  [{path}]")
    if sc.description:
        say(f"  {sc.description}")
    say(
        f"  {len(sim.targets)} targets, {length_km:.1f} km of {'/'.join(kinds)} border, "
        f"{sc.duration_s:.0f} s simulated, seed {sim.seed}"
    )
    say(f"  sensors: {sensors}")


class _Narrator:
    """Prints alerts as the tracker raises them, and a progress line now and then."""

    def __init__(self, say: Any, sim: Simulation):
        self.say = say
        self.next_progress = PROGRESS_EVERY_S
        self.alerts = 0
        self.duration = sim.scenario.duration_s

    def __call__(self, scan: Scan, result: StepResult) -> None:
        for alert in result.alerts:
            line = _describe(alert)
            if line:
                self.alerts += 1
                self.say(line)
        if scan.t >= self.next_progress:
            self.next_progress += PROGRESS_EVERY_S
            self.say(
                f"  ... t = {scan.t:5.0f} s of {self.duration:.0f}: "
                f"{len(result.tracks)} confirmed tracks, {self.alerts} alert events so far"
            )


def _describe(alert: BorderAlert) -> str | None:
    """One line per alert event worth an operator's attention: new alerts, confirmations and
    ends of crossings (not the periodic position updates, nor approach updates)."""
    if alert.kind is AlertKind.APPROACH and alert.event is not AlertEvent.NEW:
        return None
    if alert.event is AlertEvent.UPDATE and alert.reason != "confirmed":
        return None
    what = TargetClass(alert.cls).name.lower() if alert.cls_conf > 0 else "unknown"
    border = alert.border_kind.name.lower()
    head = f"[t = {alert.t:6.1f} s] {alert.kind.value.upper():<8} {alert.event.value:<6}"
    body = f"track {alert.track_id:<5} {alert.direction:<13} {border:<5} {what:<7}"
    if alert.kind is AlertKind.APPROACH:
        tail = f"crosses in ~{alert.time_to_cross_s:.0f} s"
    elif alert.event is AlertEvent.END:
        tail = f"ended: {alert.reason}"
    else:
        tail = f"P(crossed) = {alert.p_cross:.2f}" + (
            " (confirmed)" if alert.reason == "confirmed" else ""
        )
    return f"{head} {body} at ({alert.x:8.1f}, {alert.y:8.1f}) m  {tail}"


def _write_results(out: Path, run: TrackingRun) -> None:
    with (out / "tracks.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = CsvWriter(handle, TRACK_COLUMNS)
        tracks = run.tracks
        for t, tid, xy, v in zip(
            tracks.t.tolist(), tracks.ids, tracks.xy.tolist(), tracks.v.tolist(), strict=True
        ):
            writer.row([t, tid, xy[0], xy[1], v[0], v[1]])
    with (out / "alerts.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = CsvWriter(handle, ALERT_COLUMNS)
        for a in crossing_rows(run.alerts):
            writer.row([a.t, a.track_id, a.event, a.direction, a.x, a.y, round(a.p_cross, 3)])


def _summarise(
    say: Any, sim: Simulation, run: TrackingRun, score: dict[str, Any], elapsed: float, out: Path
) -> None:
    g = score["gospa"]
    say("")
    say("Summary, scored against the simulation's truth")
    say(
        f"  tracking : GOSPA {g['mean']:.1f} m per scan (c = {g['c']:g} m, p = {g['p']:g}), "
        f"{g['mean_per_target_normalised']:.1f} m per target; position RMSE "
        f"{score['rmse_m']:.2f} m; {g['mean_missed_count']:.2f} missed and "
        f"{g['mean_false_count']:.2f} false tracks per scan; {score['id_switches']} ID switches"
    )
    crossings = score["crossings"]
    if crossings and crossings.get("detected") is not None:
        delay = crossings["delay_s"]
        say(
            f"  crossings: {crossings['truth']} real, {crossings['detected']} alerted, "
            f"{crossings['missed']} missed, {crossings['false_alerts']} false alerts; "
            f"delay median {_s(delay['median'])}, p90 {_s(delay['p90'])}"
        )
    stats = run.stats
    say(
        f"  tracker  : {run.detections} detections in {len(sim.scans)} scans, "
        f"{stats['tracks_confirmed']} tracks confirmed; {elapsed:.1f} s wall time "
        f"({run.detections / max(float(run.latency_s.sum()), 1e-9):,.0f} detections/s)"
    )
    say(f"  files    : {out}/tracks.csv, alerts.csv, score.json (full figures)")
    say("")
    say("Next: `borderwatch bench` for throughput and quality figures; docs/ for the details.")


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"
