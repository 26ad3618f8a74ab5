"""The CSV files of the command-line contract, read strictly and written exactly.

=================  ==========================================  =======================
file               header                                      written by
=================  ==========================================  =======================
truth.csv          ``t,truth_id,x,y,vx,vy``                    ``borderwatch simulate``
detections.csv     ``t,x,y,sigma``                             ``borderwatch simulate``
tracks.csv         ``t,track_id,x,y,vx,vy``                    ``borderwatch track``
alerts.csv         ``t,track_id,event,direction,x,y,p_cross``  ``borderwatch track``
=================  ==========================================  =======================

``t`` is seconds, ``x, y`` metres east/north in the local frame, velocities m/s, ``sigma`` the
1-σ position noise in metres. A bad file raises :class:`~borderwatch.errors.InputError` naming the
file and the line (1-based, the header is line 1), never a bare traceback.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from borderwatch.errors import InputError
from borderwatch.fusion.detections import FloatArray, IntArray

TRUTH_COLUMNS = ("t", "truth_id", "x", "y", "vx", "vy")
DETECTION_COLUMNS = ("t", "x", "y", "sigma")
TRACK_COLUMNS = ("t", "track_id", "x", "y", "vx", "vy")
ALERT_COLUMNS = ("t", "track_id", "event", "direction", "x", "y", "p_cross")

ALERT_EVENTS = ("new", "update", "end")
ALERT_DIRECTIONS = ("left_to_right", "right_to_left")


def _finite(value: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _identifier(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("empty identifier")
    return value


def _choice(options: Sequence[str]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.strip()
        if value not in options:
            raise ValueError(f"{value!r} is not one of {', '.join(options)}")
        return value

    return parse


def _read_rows(
    path: Path, columns: Sequence[str], parsers: Sequence[Callable[[str], object]]
) -> tuple[list[list[object]], list[int]]:
    """Rows parsed column by column, with their line numbers; raises InputError on any fault."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror}", path=path) from exc
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark, as spreadsheets write, is fine
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(f"not UTF-8 text: {exc.reason}", path=path, line=line) from None
    return _parse_rows(io.StringIO(text, newline=""), path, columns, parsers)


def _parse_rows(
    handle: TextIO,
    path: Path,
    columns: Sequence[str],
    parsers: Sequence[Callable[[str], object]],
) -> tuple[list[list[object]], list[int]]:
    reader = csv.reader(handle)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InputError(f"unreadable header: {exc}", path=path, line=1) from exc
    if header is None:
        raise InputError(f"file is empty (expected header {','.join(columns)})", path=path, line=1)
    header = [h.strip() for h in header]
    if header[: len(columns)] != list(columns):
        raise InputError(
            f"header is {','.join(header)!r}, expected {','.join(columns)!r}", path=path, line=1
        )
    rows: list[list[object]] = []
    lines: list[int] = []
    try:
        for record in reader:
            line = reader.line_num
            if not record or all(not field.strip() for field in record):
                continue  # blank lines are harmless
            if len(record) < len(columns):
                raise InputError(
                    f"expected {len(columns)} fields, got {len(record)}", path=path, line=line
                )
            row: list[object] = []
            for name, parse, raw in zip(columns, parsers, record, strict=False):
                try:
                    row.append(parse(raw))
                except ValueError as exc:
                    raise InputError(f"column {name}: {exc}", path=path, line=line) from None
            rows.append(row)
            lines.append(line)
    except csv.Error as exc:
        raise InputError(f"unreadable CSV: {exc}", path=path, line=reader.line_num) from exc
    return rows, lines


def _check_sorted(t: FloatArray, lines: list[int], path: Path) -> None:
    back = np.nonzero(np.diff(t) < 0)[0]
    if back.size:
        i = int(back[0]) + 1
        raise InputError(
            f"time {t[i]:g} is earlier than the previous row's {t[i - 1]:g} "
            "(rows must be sorted by t)",
            path=path,
            line=lines[i],
        )


@dataclass(frozen=True, slots=True)
class DetectionTable:
    """Rows of detections.csv as arrays, plus the file line of each row."""

    t: FloatArray
    xy: FloatArray
    sigma: FloatArray
    line: IntArray


def read_detections(path: str | Path) -> DetectionTable:
    """Read detections.csv: finite values, ``sigma > 0``, rows sorted by ``t``."""
    path = Path(path)
    rows, lines = _read_rows(path, DETECTION_COLUMNS, [_finite] * 4)
    data = np.array(rows, dtype=np.float64).reshape(-1, 4)
    bad_sigma = np.nonzero(data[:, 3] <= 0)[0]
    if bad_sigma.size:
        i = int(bad_sigma[0])
        raise InputError(f"sigma must be > 0, got {data[i, 3]:g}", path=path, line=lines[i])
    _check_sorted(data[:, 0], lines, path)
    return DetectionTable(
        t=data[:, 0].copy(),
        xy=data[:, 1:3].copy(),
        sigma=data[:, 3].copy(),
        line=np.asarray(lines, dtype=np.int64),
    )


@dataclass(frozen=True, slots=True)
class StateTable:
    """Rows of truth.csv or tracks.csv: time, object id, position and velocity."""

    t: FloatArray
    ids: list[str]
    xy: FloatArray
    v: FloatArray


def _read_states(path: str | Path, columns: Sequence[str]) -> StateTable:
    path = Path(path)
    parsers: list[Callable[[str], object]] = [_finite, _identifier, _finite, _finite]
    parsers += [_finite, _finite]
    rows, lines = _read_rows(path, columns, parsers)
    num = np.array([[r[0], r[2], r[3], r[4], r[5]] for r in rows], dtype=np.float64)
    num = num.reshape(-1, 5)
    _check_sorted(num[:, 0], lines, path)
    return StateTable(
        t=num[:, 0].copy(),
        ids=[str(r[1]) for r in rows],
        xy=num[:, 1:3].copy(),
        v=num[:, 3:5].copy(),
    )


def read_truth(path: str | Path) -> StateTable:
    """Read truth.csv (``t,truth_id,x,y,vx,vy``), rows sorted by ``t``."""
    return _read_states(path, TRUTH_COLUMNS)


def read_tracks(path: str | Path) -> StateTable:
    """Read tracks.csv (``t,track_id,x,y,vx,vy``), rows sorted by ``t``."""
    return _read_states(path, TRACK_COLUMNS)


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One row of alerts.csv."""

    t: float
    track_id: str
    event: str
    direction: str
    x: float
    y: float
    p_cross: float


def read_alerts(path: str | Path) -> list[AlertRow]:
    """Read alerts.csv; ``event`` and ``direction`` must be known words, ``p_cross`` in [0, 1]."""
    path = Path(path)
    parsers: list[Callable[[str], object]] = [
        _finite,
        _identifier,
        _choice(ALERT_EVENTS),
        _choice(ALERT_DIRECTIONS),
        _finite,
        _finite,
        _finite,
    ]
    rows, lines = _read_rows(path, ALERT_COLUMNS, parsers)
    out = []
    for row, line in zip(rows, lines, strict=True):
        t, track_id, event, direction, x, y, p = row
        assert isinstance(p, float)
        if not 0.0 <= p <= 1.0:
            raise InputError(f"p_cross must be in [0, 1], got {p:g}", path=path, line=line)
        out.append(AlertRow(float(t), str(track_id), str(event), str(direction), x, y, p))  # type: ignore[arg-type]
    _check_sorted(np.array([a.t for a in out]), lines, path)
    return out


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    return str(value)


class CsvWriter:
    """Writes rows of a contract file with its exact header; numbers rounded to the millimetre."""

    def __init__(self, handle: TextIO, columns: Sequence[str]):
        self._writer = csv.writer(handle, lineterminator="\n")
        self._writer.writerow(columns)

    def row(self, values: Iterable[object]) -> None:
        self._writer.writerow([_fmt(v) for v in values])

    def rows(self, rows: Iterable[Iterable[object]]) -> None:
        for values in rows:
            self.row(values)
