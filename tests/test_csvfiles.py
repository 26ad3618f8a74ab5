"""Strict CSV readers and the writer of the command-line contract files."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from borderwatch.csvfiles import (
    ALERT_COLUMNS,
    DETECTION_COLUMNS,
    TRACK_COLUMNS,
    TRUTH_COLUMNS,
    AlertRow,
    CsvWriter,
    StateTable,
    read_alerts,
    read_detections,
    read_tracks,
    read_truth,
)
from borderwatch.errors import InputError

Reader = Callable[[Path], object]

READERS: dict[str, tuple[Reader, Sequence[str]]] = {
    "detections": (read_detections, DETECTION_COLUMNS),
    "truth": (read_truth, TRUTH_COLUMNS),
    "tracks": (read_tracks, TRACK_COLUMNS),
    "alerts": (read_alerts, ALERT_COLUMNS),
}

DET_HEADER = "t,x,y,sigma\n"
TRACK_HEADER = "t,track_id,x,y,vx,vy\n"
ALERT_HEADER = "t,track_id,event,direction,x,y,p_cross\n"


def write(tmp_path: Path, text: str, name: str = "file.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def write_rows(path: Path, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        CsvWriter(handle, columns).rows(rows)
    return path


def input_error(reader: Reader, path: Path) -> InputError:
    """The InputError ``reader`` raises for ``path``; checks that it names the file."""
    with pytest.raises(InputError) as err:
        reader(path)
    assert err.value.path == str(path)
    where = str(path) if err.value.line is None else f"{path}:{err.value.line}"
    assert str(err.value).startswith(f"{where}: ")
    return err.value


# ------------------------------------------------------------------------------- round trips
def test_detections_round_trip(tmp_path: Path) -> None:
    rows = [
        (0.0, 10.5, -3.25, 3.0),
        (0.0, -1200.125, 480.0, 0.5),
        (1.5, 11.0, -2.0, 2.75),
        (7.25, 1e5, -1e5, 40.0),
    ]
    path = write_rows(tmp_path / "detections.csv", DETECTION_COLUMNS, rows)
    assert path.read_text(encoding="utf-8").splitlines()[0] == "t,x,y,sigma"
    table = read_detections(path)
    data = np.array(rows)
    np.testing.assert_array_equal(table.t, data[:, 0])
    np.testing.assert_array_equal(table.xy, data[:, 1:3])
    np.testing.assert_array_equal(table.sigma, data[:, 3])
    assert table.line.tolist() == [2, 3, 4, 5]


@pytest.mark.parametrize(
    ("reader", "columns"), [(read_truth, TRUTH_COLUMNS), (read_tracks, TRACK_COLUMNS)]
)
def test_state_tables_round_trip(
    tmp_path: Path, reader: Callable[[Path], StateTable], columns: Sequence[str]
) -> None:
    rows = [
        (0.0, 1, 0.0, 0.0, 1.25, -0.5),
        (0.0, "walker-2", 50.5, -20.0, 0.0, 0.0),
        (1.0, 1, 1.25, -0.5, 1.25, -0.5),
    ]
    path = write_rows(tmp_path / "states.csv", columns, rows)
    table = reader(path)
    assert table.ids == ["1", "walker-2", "1"]
    np.testing.assert_array_equal(table.t, [0, 0, 1])
    np.testing.assert_array_equal(table.xy, [[0, 0], [50.5, -20], [1.25, -0.5]])
    np.testing.assert_array_equal(table.v, [[1.25, -0.5], [0, 0], [1.25, -0.5]])


def test_alerts_round_trip(tmp_path: Path) -> None:
    rows = [
        AlertRow(101.0, "7", "new", "left_to_right", -32.025, -1.347, 0.797),
        AlertRow(102.0, "7", "update", "left_to_right", -30.434, -3.887, 1.0),
        AlertRow(132.0, "7", "end", "right_to_left", -22.0, -50.155, 0.0),
    ]
    path = write_rows(
        tmp_path / "alerts.csv",
        ALERT_COLUMNS,
        [[a.t, a.track_id, a.event, a.direction, a.x, a.y, a.p_cross] for a in rows],
    )
    assert read_alerts(path) == rows


def test_writer_rounds_to_the_millimetre_and_writes_exact_text(tmp_path: Path) -> None:
    path = tmp_path / "tracks.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = CsvWriter(handle, TRACK_COLUMNS)
        writer.row([2.0, 1, 1.23449, -0.0001, 10.0, 0.5])
        writer.row([2.5, 12, 1e6 / 3, -2.0, -0.0, 1.0005])
    assert path.read_text(encoding="utf-8") == (
        "t,track_id,x,y,vx,vy\n2,1,1.234,0,10,0.5\n2.5,12,333333.333,-2,0,1\n"
    )
    table = read_tracks(path)
    np.testing.assert_allclose(table.xy, [[1.234, 0], [333333.333, -2]])


def test_empty_tables_read_as_empty_arrays(tmp_path: Path) -> None:
    det = read_detections(write(tmp_path, DET_HEADER))
    assert det.t.shape == (0,)
    assert det.xy.shape == (0, 2)
    assert det.sigma.shape == (0,)
    tracks = read_tracks(write(tmp_path, TRACK_HEADER, "t.csv"))
    assert tracks.ids == []
    assert tracks.xy.shape == (0, 2)
    assert read_alerts(write(tmp_path, ALERT_HEADER, "a.csv")) == []


def test_blank_lines_spaces_crlf_and_extra_columns_are_accepted(tmp_path: Path) -> None:
    text = "t, x ,y,sigma,comment\r\n\r\n0, 1.5 ,2,3,first\r\n   \r\n1,4,5,6,\r\n"
    table = read_detections(write(tmp_path, text))
    np.testing.assert_array_equal(table.xy, [[1.5, 2], [4, 5]])
    assert table.line.tolist() == [3, 5]


# ------------------------------------------------------------------------------- bad files
BAD_DETECTIONS: dict[str, tuple[str, int, str]] = {
    # name: (file text, line of the error, words in the message)
    "too-few-fields": (DET_HEADER + "0,1,2,3\n1,2,3\n", 3, "expected 4 fields, got 3"),
    "non-numeric": (DET_HEADER + "0,1,2,3\n1,east,3,4\n", 3, "column x"),
    "empty-field": (DET_HEADER + "0,,2,3\n", 2, "column x"),
    "nan": (DET_HEADER + "0,1,2,3\n1,2,nan,4\n", 3, "column y"),
    "NaN-sigma": (DET_HEADER + "0,1,2,NaN\n", 2, "column sigma"),
    "inf": (DET_HEADER + "0,1,2,3\n1,inf,3,4\n", 3, "not a finite number"),
    "minus-inf-time": (DET_HEADER + "-inf,1,2,3\n", 2, "column t"),
    "overflow": (DET_HEADER + "0,1e999,2,3\n", 2, "not a finite number"),
    "negative-sigma": (DET_HEADER + "0,1,2,3\n1,2,3,-1.5\n", 3, "sigma must be > 0, got -1.5"),
    "zero-sigma": (DET_HEADER + "0,1,2,0\n", 2, "sigma must be > 0"),
    "unsorted": (DET_HEADER + "0,1,2,3\n2,1,2,3\n2,5,5,3\n1.5,1,2,3\n", 5, "earlier"),
    "wrong-header": ("t,x,y,sd\n0,1,2,3\n", 1, "expected 't,x,y,sigma'"),
    "header-order": ("x,y,t,sigma\n0,1,2,3\n", 1, "header"),
    "short-header": ("t,x,y\n0,1,2\n", 1, "header"),
    "no-header": ("0,1,2,3\n", 1, "header"),
    "blank-first-line": ("\nt,x,y,sigma\n", 1, "header"),
    "blank-lines-before-error": (DET_HEADER + "\n0,1,2,3\n\n\n  \n1,2,x,3\n", 7, "column y"),
    "quoted-newline": (DET_HEADER + '0,1,"2\n",3\n1,2,3,-4\n', 4, "sigma"),
}


@pytest.mark.parametrize("case", sorted(BAD_DETECTIONS))
def test_bad_detections_name_file_and_line(tmp_path: Path, case: str) -> None:
    text, line, words = BAD_DETECTIONS[case]
    err = input_error(read_detections, write(tmp_path, text, f"{case}.csv"))
    assert err.line == line
    assert words in err.reason


def test_unsorted_error_names_both_times(tmp_path: Path) -> None:
    path = write(tmp_path, DET_HEADER + "0,1,2,3\n\n5.5,1,2,3\n4.25,1,2,3\n")
    err = input_error(read_detections, path)
    assert err.line == 5
    assert "4.25" in err.reason
    assert "5.5" in err.reason


@pytest.mark.parametrize("name", sorted(READERS))
def test_zero_byte_file_is_an_input_error(tmp_path: Path, name: str) -> None:
    reader, columns = READERS[name]
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    err = input_error(reader, path)
    assert "empty" in err.reason
    assert ",".join(columns) in err.reason


@pytest.mark.parametrize("name", sorted(READERS))
def test_missing_file_is_an_input_error(tmp_path: Path, name: str) -> None:
    reader, _ = READERS[name]
    err = input_error(reader, tmp_path / "absent.csv")
    assert "cannot open" in err.reason


@pytest.mark.parametrize("name", sorted(READERS))
def test_header_of_another_file_is_rejected(tmp_path: Path, name: str) -> None:
    reader, columns = READERS[name]
    others = [c for n, (_, c) in READERS.items() if tuple(c) != tuple(columns)]
    for k, other in enumerate(others):
        path = write(tmp_path, ",".join(other) + "\n", f"other-{k}.csv")
        assert input_error(reader, path).line == 1


BAD_STATES: dict[str, tuple[str, int, str]] = {
    "empty-id": ("0,,1,2,3,4\n", 2, "column track_id"),
    "blank-id": ("0,  ,1,2,3,4\n", 2, "column track_id"),
    "nan-velocity": ("0,1,1,2,nan,4\n", 2, "column vx"),
    "too-few": ("0,1,1,2,3\n", 2, "expected 6 fields, got 5"),
    "unsorted": ("1,1,1,2,3,4\n1,2,1,2,3,4\n\n0.5,1,1,2,3,4\n", 5, "earlier"),
}


@pytest.mark.parametrize("case", sorted(BAD_STATES))
@pytest.mark.parametrize("name", ["truth", "tracks"])
def test_bad_state_rows(tmp_path: Path, case: str, name: str) -> None:
    reader, columns = READERS[name]
    body, line, words = BAD_STATES[case]
    if name == "truth":
        words = words.replace("track_id", "truth_id")
    err = input_error(reader, write(tmp_path, ",".join(columns) + "\n" + body))
    assert err.line == line
    assert words in err.reason


BAD_ALERTS: dict[str, tuple[str, int, str]] = {
    "unknown-event": ("1,7,start,left_to_right,0,0,0.5\n", 2, "column event"),
    "unknown-direction": ("1,7,new,north,0,0,0.5\n", 2, "column direction"),
    "case-matters": ("1,7,NEW,left_to_right,0,0,0.5\n", 2, "column event"),
    "p-above-one": (
        "1,7,new,left_to_right,0,0,0.5\n2,7,update,left_to_right,0,0,1.5\n",
        3,
        "p_cross",
    ),
    "p-negative": ("\n\n1,7,new,right_to_left,0,0,-0.1\n", 4, "p_cross must be in [0, 1]"),
    "p-nan": ("1,7,new,right_to_left,0,0,nan\n", 2, "column p_cross"),
    "unsorted": ("2,7,new,left_to_right,0,0,0.5\n1,7,end,left_to_right,0,0,0.5\n", 3, "earlier"),
    "too-few": ("1,7,new,left_to_right,0,0\n", 2, "expected 7 fields, got 6"),
}


@pytest.mark.parametrize("case", sorted(BAD_ALERTS))
def test_bad_alert_rows(tmp_path: Path, case: str) -> None:
    body, line, words = BAD_ALERTS[case]
    err = input_error(read_alerts, write(tmp_path, ALERT_HEADER + body))
    assert err.line == line
    assert words in err.reason


def test_p_cross_bounds_are_inclusive(tmp_path: Path) -> None:
    body = "1,7,new,left_to_right,0,0,0\n2,7,end,left_to_right,0,0,1\n"
    assert [a.p_cross for a in read_alerts(write(tmp_path, ALERT_HEADER + body))] == [0.0, 1.0]


def test_undecodable_header_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"t,x,y,\xa7igma\n0,1,2,3\n")
    assert input_error(read_detections, path).line == 1


def test_undecodable_row_reports_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"t,x,y,sigma\n0,1,2,3\n1,\xa72,2,3\n")
    err = input_error(read_detections, path)
    assert err.line == 3


# ------------------------------------------------------------------ garbage never escapes
garbage_lines = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
        st.lists(
            st.sampled_from(
                ["0", "1", "-1", "2.5", "nan", "inf", "", " ", "x", "new", "end", "1e999"]
            )
            | st.sampled_from(["left_to_right", "right_to_left", '"', '"a,b"', "\x00", "\r"]),
            max_size=9,
        ).map(",".join),
    ),
    max_size=8,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.sampled_from(sorted(READERS)),
    with_header=st.booleans(),
    lines=garbage_lines,
    tail=st.binary(max_size=12),
)
def test_garbage_raises_only_input_errors(
    tmp_path: Path, name: str, with_header: bool, lines: list[str], tail: bytes
) -> None:
    reader, columns = READERS[name]
    head = ",".join(columns) + "\n" if with_header else ""
    path = tmp_path / "garbage.csv"
    path.write_bytes((head + "\n".join(lines)).encode("utf-8") + tail)
    error: InputError | None = None
    try:
        reader(path)
    except InputError as exc:  # anything else fails the test
        error = exc
    if error is not None:
        assert error.path == str(path)
        assert error.line is None or error.line >= 1


def test_a_byte_order_mark_before_the_header_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "detections.csv"
    path.write_bytes(b"\xef\xbb\xbft,x,y,sigma\n0,1,2,3\n")
    table = read_detections(path)
    assert table.t.tolist() == [0.0]
    assert table.sigma.tolist() == [3.0]
