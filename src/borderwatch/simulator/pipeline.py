"""A simulated run end to end in memory: scenario → detections → tracker → score.

The tracker receives every scan with its full measurement model (range-bearing from a boat's
radar, bearings from a camera), unlike ``detections.csv``, which can only carry positions.
The demo and the benchmarks both run through here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from borderwatch.config.tracker import TrackerConfig
from borderwatch.csvfiles import AlertRow, StateTable
from borderwatch.fusion.detections import FloatArray
from borderwatch.fusion.outputs import AlertKind, BorderAlert, TrackTable
from borderwatch.fusion.tracker import StepResult, Tracker
from borderwatch.simulator.run import Simulation
from borderwatch.simulator.scoring import score_run
from borderwatch.simulator.sensors import Scan

#: Called after every scan with the scan and what the tracker made of it (progress, printing).
OnStep = Callable[[Scan, StepResult], None]


@dataclass(frozen=True, slots=True)
class TrackingRun:
    """What the tracker produced over a simulation.

    Attributes:
        tracks: confirmed tracks, one row per track per distinct scan time.
        alerts: every border alert event, in time order.
        stats: the tracker's counters at the end.
        latency_s: time each ``Tracker.step`` call took, s (one per scan).
        detections: number of detections fed to the tracker.
    """

    tracks: StateTable
    alerts: list[BorderAlert]
    stats: dict[str, object]
    latency_s: FloatArray
    detections: int


def run_tracker(
    sim: Simulation,
    config: TrackerConfig | None = None,
    on_step: OnStep | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> TrackingRun:
    """Feed every scan of ``sim`` to a new tracker (with the scenario's border), in time order."""
    tracker = Tracker(config, sim.border)
    tables: list[TrackTable] = []
    alerts: list[BorderAlert] = []
    latency = np.zeros(len(sim.scans))
    for k, scan in enumerate(sim.scans):
        start = clock()
        result = tracker.step(scan.detections, scan.t)
        latency[k] = clock() - start
        _keep_last_per_time(tables, result.tables)
        alerts.extend(result.alerts)
        if on_step is not None:
            on_step(scan, result)
    final = tracker.flush()
    _keep_last_per_time(tables, final.tables)
    alerts.extend(final.alerts)
    return TrackingRun(
        tracks=_state_table(tables),
        alerts=alerts,
        stats=tracker.stats.as_dict(),
        latency_s=latency,
        detections=sum(len(s.detections) for s in sim.scans),
    )


def _keep_last_per_time(tables: list[TrackTable], new: list[TrackTable]) -> None:
    """Append ``new`` tables; of several at one time (sensors scanning together) keep the last."""
    for table in new:
        if tables and tables[-1].t == table.t:
            tables[-1] = table
        else:
            tables.append(table)


def _state_table(tables: list[TrackTable]) -> StateTable:
    if not tables:
        return StateTable(np.zeros(0), [], np.zeros((0, 2)), np.zeros((0, 2)))
    x = np.concatenate([t.x for t in tables])
    return StateTable(
        t=np.concatenate([np.full(len(t), t.t) for t in tables]),
        ids=[str(i) for t in tables for i in t.track_id.tolist()],
        xy=x[:, :2].copy(),
        v=x[:, 2:4].copy(),
    )


def truth_states(sim: Simulation) -> StateTable:
    """The simulation's truth as a state table with the targets' string ids."""
    ids = sim.target_ids
    return StateTable(
        t=sim.truth.t.copy(),
        ids=[ids[i] for i in sim.truth.truth_id.tolist()],
        xy=sim.truth.xy.copy(),
        v=sim.truth.v.copy(),
    )


def crossing_rows(alerts: list[BorderAlert]) -> list[AlertRow]:
    """Crossing alert events as alerts.csv rows (approach alerts are not part of that file)."""
    return [
        AlertRow(
            t=a.t,
            track_id=str(a.track_id),
            event=a.event.value,
            direction=a.direction,
            x=a.x,
            y=a.y,
            p_cross=a.p_cross,
        )
        for a in alerts
        if a.kind is AlertKind.CROSSING
    ]


def score_simulation(
    sim: Simulation, run: TrackingRun, c: float = 50.0, p: float = 2.0
) -> dict[str, Any]:
    """Score a tracking run against the simulation's truth (see ``docs/metrics.md``)."""
    return score_run(truth_states(sim), run.tracks, crossing_rows(run.alerts), sim.border, c=c, p=p)
