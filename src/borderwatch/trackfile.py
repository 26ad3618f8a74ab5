"""``borderwatch track``: run the fusion core over a detections CSV file.

Rows with the same ``t`` form one scan. For every scan time the confirmed tracks are written to
``tracks.csv``; crossing alert events go to ``alerts.csv`` when a border is given. "About to
cross" alerts are not part of the ``alerts.csv`` contract; ``--approach-alerts`` writes them to a
file of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

import numpy as np

from borderwatch.config.tracker import TrackerConfig
from borderwatch.csvfiles import ALERT_COLUMNS, TRACK_COLUMNS, CsvWriter, read_detections
from borderwatch.errors import InputError
from borderwatch.fusion.borders import load_border
from borderwatch.fusion.detections import DetectionBatch
from borderwatch.fusion.outputs import AlertKind, BorderAlert, TrackTable
from borderwatch.fusion.tracker import StepResult, Tracker

APPROACH_COLUMNS = (*ALERT_COLUMNS, "time_to_cross_s")

log = logging.getLogger(__name__)


def track_files(
    detections: Path,
    tracks_out: Path,
    border: Path | None = None,
    alerts_out: Path | None = None,
    config: TrackerConfig | None = None,
    approach_out: Path | None = None,
) -> dict[str, object]:
    """Track ``detections`` and write the contract files; returns a summary for the log.

    Raises :class:`InputError` (naming file and line) for a bad detections or border file.
    Without a border there are no crossings: alert files are written with their header only.
    """
    table = read_detections(detections)
    geometry = load_border(border) if border is not None else None
    if geometry is None and (alerts_out is not None or approach_out is not None):
        log.warning("no --border given: alert files will hold only their header")
    tracker = Tracker(config, geometry)
    rows = alerts = 0
    with ExitStack() as stack:
        tracks_csv = CsvWriter(_open(stack, tracks_out), TRACK_COLUMNS)
        alerts_csv = CsvWriter(_open(stack, alerts_out), ALERT_COLUMNS) if alerts_out else None
        approach_csv = (
            CsvWriter(_open(stack, approach_out), APPROACH_COLUMNS) if approach_out else None
        )
        for result in _results(tracker, table.t, table.xy, table.sigma):
            for tracks in result.tables:
                rows += _write_tracks(tracks_csv, tracks)
            for alert in result.alerts:
                alerts += 1
                if alert.kind is AlertKind.CROSSING and alerts_csv is not None:
                    alerts_csv.row(_alert_row(alert))
                elif alert.kind is AlertKind.APPROACH and approach_csv is not None:
                    approach_csv.row([*_alert_row(alert), alert.time_to_cross_s])
    return {"track_rows": rows, "alert_events": alerts, **tracker.stats.as_dict()}


def _results(
    tracker: Tracker, t: np.ndarray, xy: np.ndarray, sigma: np.ndarray
) -> Iterator[StepResult]:
    """Step results scan by scan, then what the reorder window still held."""
    for scan_t, batch in _scans(t, xy, sigma):
        yield tracker.step(batch, scan_t)
    yield tracker.flush()


def _open(stack: ExitStack, path: Path) -> TextIO:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return stack.enter_context(path.open("w", newline="", encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror}", path=path) from exc


def _scans(t: np.ndarray, xy: np.ndarray, sigma: np.ndarray) -> list[tuple[float, DetectionBatch]]:
    """One position batch per distinct time (rows are already sorted by time)."""
    if t.size == 0:
        return []
    starts = np.concatenate([[0], np.flatnonzero(np.diff(t)) + 1])
    ends = np.concatenate([starts[1:], [t.size]])
    return [
        (float(t[s]), DetectionBatch.positions(t[s:e], xy[s:e], sigma[s:e]))
        for s, e in zip(starts, ends, strict=True)
    ]


def _write_tracks(writer: CsvWriter, tracks: TrackTable) -> int:
    t = tracks.t
    for track_id, x in zip(tracks.track_id.tolist(), tracks.x.tolist(), strict=True):
        writer.row([t, track_id, x[0], x[1], x[2], x[3]])
    return len(tracks)


def _alert_row(alert: BorderAlert) -> list[object]:
    return [
        alert.t,
        alert.track_id,
        alert.event.value,
        alert.direction,
        alert.x,
        alert.y,
        round(alert.p_cross, 3),
    ]
