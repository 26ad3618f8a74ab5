"""``borderwatch track`` through ``borderwatch.cli.main``: the CSV contract end to end."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from borderwatch.cli import main
from borderwatch.csvfiles import read_alerts, read_tracks

FloatArray = NDArray[np.float64]

TRACKS_HEADER = "t,track_id,x,y,vx,vy"
ALERTS_HEADER = "t,track_id,event,direction,x,y,p_cross"
APPROACH_HEADER = ALERTS_HEADER + ",time_to_cross_s"

# A straight border along the x axis, oriented east: north (y > 0) is its left side.
BORDER = {"type": "LineString", "coordinates": [[-2000.0, 0.0], [2000.0, 0.0]]}


def write_detections(
    path: Path, rows: Sequence[Sequence[float]] | FloatArray, header: str = "t,x,y,sigma"
) -> Path:
    lines = [header] + [",".join(_number(float(v)) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _number(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".")


def write_border(path: Path, doc: object = BORDER) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def run_track(
    detections: Path,
    out_dir: Path,
    border: Path | None = None,
    alerts: bool = False,
    approach: bool = False,
    extra: Sequence[str] = (),
) -> int:
    argv = ["track", "--detections", str(detections), "--out", str(out_dir / "tracks.csv")]
    if border is not None:
        argv += ["--border", str(border)]
    if alerts:
        argv += ["--alerts", str(out_dir / "alerts.csv")]
    if approach:
        argv += ["--approach-alerts", str(out_dir / "approach.csv")]
    return main([*argv, *extra])


def walk(t: FloatArray, start: tuple[float, float], velocity: tuple[float, float]) -> FloatArray:
    return np.asarray(start, dtype=np.float64) + t[:, None] * np.asarray(velocity, dtype=np.float64)


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


# --------------------------------------------------------------------------------- bad input
DET = "t,x,y,sigma\n"
BAD_INPUT: dict[str, tuple[str, int, str]] = {
    # name: (detections.csv text, line reported, words of the reason)
    "malformed-row": (DET + "0,1,2,3\n1,2,3\n", 3, "expected 4 fields"),
    "non-numeric": (DET + "0,1,2,3\n1,2,north,3\n", 3, "column y"),
    "nan": (DET + "0,1,2,3\n\n1,nan,3,3\n", 4, "column x"),
    "inf-sigma": (DET + "0,1,2,inf\n", 2, "column sigma"),
    "negative-sigma": (DET + "0,1,2,3\n1,2,3,-3\n", 3, "sigma must be > 0"),
    "zero-sigma": (DET + "0,1,2,0\n", 2, "sigma must be > 0"),
    "unsorted": (DET + "0,1,2,3\n1,1,2,3\n1,2,2,3\n0.5,1,2,3\n", 5, "earlier"),
    "wrong-header": ("t,x,y\n0,1,2\n", 1, "header"),
}


def assert_error(capsys: pytest.CaptureFixture[str], rc: int, where: str, words: str) -> str:
    err = capsys.readouterr().err
    assert rc == 2
    message = [ln for ln in err.splitlines() if ln.startswith("borderwatch track: error: ")]
    assert len(message) == 1, err
    assert re.match(rf"borderwatch track: error: {re.escape(where)}(:\d+)?: ", message[0]), message[
        0
    ]
    assert words in message[0]
    assert "Traceback" not in err
    return message[0]


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_detections_exit_2_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    text, line, words = BAD_INPUT[case]
    det = tmp_path / "detections.csv"
    det.write_text(text, encoding="utf-8")
    rc = run_track(det, tmp_path)
    assert_error(capsys, rc, f"{det}:{line}", words)


def test_bad_detections_are_reported_before_the_border_is_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    det = tmp_path / "detections.csv"
    det.write_text(DET + "0,1,2,-1\n", encoding="utf-8")
    rc = run_track(det, tmp_path, border=write_border(tmp_path / "b.geojson"), alerts=True)
    assert_error(capsys, rc, f"{det}:2", "sigma")


MakeFiles = Callable[[Path], tuple[Path, Path | None, str]]


def _empty_detections(tmp_path: Path) -> tuple[Path, Path | None, str]:
    det = tmp_path / "detections.csv"
    det.write_bytes(b"")
    return det, None, "file is empty"


def _polygon_border(tmp_path: Path) -> tuple[Path, Path | None, str]:
    det = write_detections(tmp_path / "detections.csv", [(0, 1, 2, 3)])
    polygon = {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 0]]]}
    return det, write_border(tmp_path / "border.geojson", polygon), "must be a LineString"


@pytest.mark.parametrize("make", [_empty_detections, _polygon_border], ids=["empty", "polygon"])
def test_unusable_files_exit_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: MakeFiles
) -> None:
    det, border, words = make(tmp_path)
    rc = run_track(det, tmp_path, border=border, alerts=border is not None)
    bad = border if border is not None else det
    assert_error(capsys, rc, str(bad), words)


@pytest.mark.parametrize("make", [_empty_detections, _polygon_border], ids=["empty", "polygon"])
def test_unusable_files_report_a_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: MakeFiles
) -> None:
    det, border, _ = make(tmp_path)
    rc = run_track(det, tmp_path, border=border, alerts=border is not None)
    assert rc == 2
    bad = border if border is not None else det
    assert f"borderwatch track: error: {bad}:1: " in capsys.readouterr().err


def test_one_point_border_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    det = write_detections(tmp_path / "detections.csv", [(0, 1, 2, 3)])
    border = write_border(
        tmp_path / "border.geojson", {"type": "LineString", "coordinates": [[0, 0]]}
    )
    rc = run_track(det, tmp_path, border=border, alerts=True)
    assert_error(capsys, rc, str(border), "")


def test_invalid_border_json_reports_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    det = write_detections(tmp_path / "detections.csv", [(0, 1, 2, 3)])
    border = tmp_path / "border.geojson"
    border.write_text(
        '{"type": "LineString",\n "coordinates": [[0, 0] [1, 1]]}\n', encoding="utf-8"
    )
    rc = run_track(det, tmp_path, border=border, alerts=True)
    assert_error(capsys, rc, f"{border}:2", "not valid JSON")


@pytest.mark.parametrize("flag", ["--alerts", "--approach-alerts"])
def test_alert_files_without_a_border_hold_only_their_header(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, flag: str
) -> None:
    rows = [(t, 10.0 * t, 5.0, 3.0) for t in range(8)]
    det = write_detections(tmp_path / "detections.csv", rows)
    argv = ["track", "--detections", str(det), "--out", str(tmp_path / "tracks.csv")]
    with caplog.at_level(logging.WARNING):
        rc = main([*argv, flag, str(tmp_path / "alerts.csv")])
    assert rc == 0
    header = (tmp_path / "alerts.csv").read_text().splitlines()
    assert len(header) == 1
    assert header[0].startswith("t,track_id,event,direction,x,y,p_cross")
    assert "no --border" in caplog.text
    assert len(read_tracks(tmp_path / "tracks.csv").t) > 0


# ------------------------------------------------------------------------------ good input
def test_header_only_detections_give_header_only_outputs(tmp_path: Path) -> None:
    det = write_detections(tmp_path / "detections.csv", [])
    border = write_border(tmp_path / "border.geojson")
    assert run_track(det, tmp_path, border=border, alerts=True, approach=True) == 0
    assert (tmp_path / "tracks.csv").read_text(encoding="utf-8") == TRACKS_HEADER + "\n"
    assert (tmp_path / "alerts.csv").read_text(encoding="utf-8") == ALERTS_HEADER + "\n"
    assert (tmp_path / "approach.csv").read_text(encoding="utf-8") == APPROACH_HEADER + "\n"


def test_without_a_border_only_tracks_are_written(tmp_path: Path) -> None:
    t = np.arange(0.0, 10.0)
    xy = walk(t, (0.0, 0.0), (1.0, 0.5))
    det = write_detections(
        tmp_path / "detections.csv", np.column_stack([t, xy, np.full_like(t, 2.0)])
    )
    out = tmp_path / "out"
    assert run_track(det, out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["tracks.csv"]
    lines = lines_of(out / "tracks.csv")
    assert lines[0] == TRACKS_HEADER
    tracks = read_tracks(out / "tracks.csv")
    assert set(tracks.ids) == {"1"}
    assert len(tracks.t) >= 6  # confirmed after a few scans, then one row per scan
    truth = walk(tracks.t, (0.0, 0.0), (1.0, 0.5))
    assert np.all(np.hypot(*(tracks.xy - truth).T) < 5.0)


def test_several_detections_per_scan(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    t = np.arange(0.0, 30.0)
    starts = [(-1000.0, 300.0), (0.0, -400.0), (900.0, 800.0)]
    velocities = [(1.5, 0.0), (0.0, 1.0), (-4.0, -2.0)]
    rows = []
    for k, tk in enumerate(t):
        order = rng.permutation(3)  # the order of rows within a scan carries no meaning
        for i in order:
            p = walk(t[k : k + 1], starts[i], velocities[i])[0] + rng.normal(0, 2.0, 2)
            rows.append((tk, p[0], p[1], 2.0))
    det = write_detections(tmp_path / "detections.csv", rows)
    assert run_track(det, tmp_path) == 0
    assert lines_of(tmp_path / "tracks.csv")[0] == TRACKS_HEADER
    tracks = read_tracks(tmp_path / "tracks.csv")
    assert len(set(tracks.ids)) == 3
    times = np.unique(tracks.t)
    assert set(times.tolist()) <= set(t.tolist())
    for tk in times[times >= 5]:
        sel = tracks.t == tk
        assert sorted(tracks.ids[i] for i in np.flatnonzero(sel)) == sorted(set(tracks.ids))
        truth = np.array(
            [walk(np.array([tk]), s, v)[0] for s, v in zip(starts, velocities, strict=True)]
        )
        dist = np.hypot(*(tracks.xy[sel][:, None, :] - truth[None, :, :]).transpose(2, 0, 1))
        assert np.all(dist.min(axis=1) < 10.0)
        assert len(set(dist.argmin(axis=1).tolist())) == 3  # one track per target


def test_irregular_scan_times(tmp_path: Path) -> None:
    t = np.array([0.0, 0.7, 2.1, 2.2, 5.0, 5.3, 6.9, 7.0, 9.5, 10.0, 13.25])
    xy = walk(t, (100.0, -50.0), (-1.2, 0.8))
    det = write_detections(
        tmp_path / "detections.csv", np.column_stack([t, xy, np.full_like(t, 1.0)])
    )
    assert run_track(det, tmp_path) == 0
    lines = lines_of(tmp_path / "tracks.csv")
    assert lines[0] == TRACKS_HEADER
    tracks = read_tracks(tmp_path / "tracks.csv")
    assert set(tracks.ids) == {"1"}
    # One row per scan time once confirmed, at exactly the scan times.
    assert tracks.t.tolist() == t[t >= tracks.t[0]].tolist()
    assert tracks.t[0] <= 2.2
    truth = walk(tracks.t, (100.0, -50.0), (-1.2, 0.8))
    assert np.all(np.hypot(*(tracks.xy - truth).T) < 3.0)
    np.testing.assert_allclose(tracks.v[-1], [-1.2, 0.8], atol=0.5)


def test_reorder_lag_does_not_drop_scans(tmp_path: Path) -> None:
    t = np.array([0.0, 1.0, 2.0, 3.0, 3.5, 4.0, 5.0, 6.0])
    xy = walk(t, (0.0, 0.0), (1.0, 0.0))
    det = write_detections(
        tmp_path / "detections.csv", np.column_stack([t, xy, np.full_like(t, 3.0)])
    )
    config = tmp_path / "tracker.yaml"
    config.write_text("reorder_lag_s: 2.0\n", encoding="utf-8")
    assert run_track(det, tmp_path / "plain") == 0
    assert run_track(det, tmp_path / "lagged", extra=["--config", str(config)]) == 0
    plain = read_tracks(tmp_path / "plain" / "tracks.csv")
    lagged = read_tracks(tmp_path / "lagged" / "tracks.csv")
    assert lagged.t.tolist() == plain.t.tolist()


# ------------------------------------------------------------------------- end to end run
CROSS_START, CROSS_V = (-50.0, 150.7), (0.15, -1.5)  # walks south over y = 0 ...
T_CROSS = 150.7 / 1.5  # ... at t ≈ 100.47 s, from the left (north) side to the right
PARALLEL_START, PARALLEL_V = (-300.0, 20.0), (1.2, 0.0)  # walks east 20 m north of the line


@dataclass(frozen=True)
class Run:
    out: Path
    t: FloatArray
    truth: tuple[FloatArray, FloatArray]


def _two_walkers(dir_: Path) -> tuple[Path, FloatArray, tuple[FloatArray, FloatArray]]:
    rng = np.random.default_rng(2024)
    t = np.arange(0.0, 201.0)
    crossing = walk(t, CROSS_START, CROSS_V)
    parallel = walk(t, PARALLEL_START, PARALLEL_V)
    rows = []
    for k, tk in enumerate(t):
        for p in (crossing[k], parallel[k]):
            z = p + rng.normal(0.0, 3.0, 2)
            rows.append((tk, z[0], z[1], 3.0))
    det = write_detections(dir_ / "detections.csv", rows)
    return det, t, (crossing, parallel)


@pytest.fixture(scope="module")
def two_walkers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Run]:
    base = tmp_path_factory.mktemp("two-walkers")
    det, t, truth = _two_walkers(base)
    border = write_border(base / "border.geojson")
    runs = []
    for name in ("first", "second"):
        assert run_track(det, base / name, border=border, alerts=True, approach=True) == 0
        runs.append(Run(base / name, t, truth))
    return runs[0], runs[1]


def _track_owner(run: Run) -> dict[str, int]:
    """Which walker (0 crossing, 1 parallel) each track follows: the nearest on average."""
    tracks = read_tracks(run.out / "tracks.csv")
    owner = {}
    for track_id in sorted(set(tracks.ids)):
        sel = np.array([i == track_id for i in tracks.ids])
        k = np.searchsorted(run.t, tracks.t[sel])
        mean = [np.hypot(*(tracks.xy[sel] - w[k]).T).mean() for w in run.truth]
        owner[track_id] = int(np.argmin(mean))
    return owner


def test_end_to_end_headers(two_walkers: tuple[Run, Run]) -> None:
    run = two_walkers[0]
    assert lines_of(run.out / "tracks.csv")[0] == TRACKS_HEADER
    assert lines_of(run.out / "alerts.csv")[0] == ALERTS_HEADER
    assert lines_of(run.out / "approach.csv")[0] == APPROACH_HEADER


def _rows_of(run: Run, track_id: str) -> tuple[FloatArray, FloatArray]:
    """Scan indices and positions of one track's rows."""
    tracks = read_tracks(run.out / "tracks.csv")
    sel = np.array([i == track_id for i in tracks.ids])
    k = np.searchsorted(run.t, tracks.t[sel])
    assert np.all(run.t[k] == tracks.t[sel])
    return k, tracks.xy[sel]


def test_end_to_end_each_walker_is_tracked_from_the_start(two_walkers: tuple[Run, Run]) -> None:
    run = two_walkers[0]
    owner = _track_owner(run)
    for walker in (0, 1):
        ids = [i for i, w in owner.items() if w == walker]
        main_id = max(ids, key=lambda i: len(_rows_of(run, i)[0]))
        k, xy = _rows_of(run, main_id)
        assert run.t[k[0]] <= 5.0  # confirmed within a few scans ...
        assert len(k) >= len(run.t) - 5  # ... and then kept to the end
        err = np.hypot(*(xy - run.truth[walker][k]).T)
        assert err.max() < 10.0, (main_id, err.max())


def test_end_to_end_every_confirmed_track_stays_on_a_walker(two_walkers: tuple[Run, Run]) -> None:
    run = two_walkers[0]
    owner = _track_owner(run)
    for track_id, walker in owner.items():
        k, xy = _rows_of(run, track_id)
        err = np.hypot(*(xy - run.truth[walker][k]).T)
        assert err.max() < 10.0, (track_id, err.max())
    assert sorted(owner.values()) == [0, 1]  # one track per walker, no spurious ones


def test_end_to_end_exactly_one_crossing_alert(two_walkers: tuple[Run, Run]) -> None:
    run = two_walkers[0]
    alerts = read_alerts(run.out / "alerts.csv")
    owner = _track_owner(run)
    new = [a for a in alerts if a.event == "new"]
    assert len(new) == 1, new
    (alert,) = new
    assert owner[alert.track_id] == 0
    assert alert.direction == "left_to_right"
    assert T_CROSS <= alert.t <= T_CROSS + 3.0
    assert alert.p_cross > 0.5
    # Every event of the file belongs to that one alert of the crossing walker.
    assert {(a.track_id, a.direction) for a in alerts} == {(alert.track_id, "left_to_right")}
    assert [a.t for a in alerts] == sorted(a.t for a in alerts)


def test_end_to_end_approach_alert_precedes_the_crossing(two_walkers: tuple[Run, Run]) -> None:
    run = two_walkers[0]
    (crossing,) = [a for a in read_alerts(run.out / "alerts.csv") if a.event == "new"]
    rows = [r.split(",") for r in lines_of(run.out / "approach.csv")[1:]]
    mine = [r for r in rows if r[1] == crossing.track_id]
    assert mine, "no approach alert for the crossing walker"
    assert mine[0][2] == "new"
    assert mine[0][3] == "left_to_right"
    assert float(mine[0][0]) < T_CROSS - 30  # well ahead of the crossing
    assert mine[-1][2] == "end"
    assert float(mine[-1][0]) == crossing.t  # ended by the crossing


def test_approach_time_to_cross_is_a_number_or_empty(two_walkers: tuple[Run, Run]) -> None:
    run = two_walkers[0]
    for row in lines_of(run.out / "approach.csv")[1:]:
        field = row.split(",")[-1]
        assert field == "" or np.isfinite(float(field)), row


def test_end_to_end_is_deterministic(two_walkers: tuple[Run, Run]) -> None:
    first, second = two_walkers
    for name in ("tracks.csv", "alerts.csv", "approach.csv"):
        assert (first.out / name).read_bytes() == (second.out / name).read_bytes(), name
