"""``borderwatch detect``: the real command on image and video files written to a temporary
folder; the CSV contract, bad input skipped with a clear line, the exit-status rule."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from borderwatch.camera_detect import CSV_HEADER
from borderwatch.cli import main
from borderwatch.sensors.camera.geometry import CameraIntrinsics, CameraMount, PlatformPose
from borderwatch.simulator.render import (
    RenderTarget,
    render_nightvision,
    render_thermal,
    write_video,
)

INTR = CameraIntrinsics.from_fov(640, 512, 24.0)
MOUNT = CameraMount(height_m=3.0)
POSE = PlatformPose(0.0, 0.0, 0.0)
LABELS = {"person", "group", "boat", "vehicle", "unknown"}


def _people(*placements: tuple[float, float]) -> list[RenderTarget]:
    return [
        RenderTarget(r * math.sin(math.radians(a)), r * math.cos(math.radians(a)), "person")
        for r, a in placements
    ]


def _thermal(seed: int, placements=((150.0, -4.0), (500.0, 5.0))) -> np.ndarray:
    return render_thermal(_people(*placements), INTR, MOUNT, POSE, np.random.default_rng(seed))


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = [dict(zip(header, row, strict=True)) for row in reader]
    return header, rows


@pytest.fixture
def good_files(tmp_path: Path) -> list[Path]:
    y16 = _thermal(1)
    paths = [
        tmp_path / "y16.png",
        tmp_path / "y16.tiff",
        tmp_path / "grey8.png",
        tmp_path / "j.jpg",
    ]
    cv2.imwrite(str(paths[0]), y16)
    cv2.imwrite(str(paths[1]), _thermal(2))
    # An 8-bit thermal export (AGC'd, white-hot), as a camera's snapshot button writes it.
    y16 = _thermal(3).astype(np.float64)
    grey = np.rint((y16 - y16.min()) * 255.0 / (y16.max() - y16.min())).astype(np.uint8)
    cv2.imwrite(str(paths[2]), grey)
    cv2.imwrite(
        str(paths[3]), cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
    )
    return paths


def test_stills_give_the_csv_contract(tmp_path: Path, good_files: list[Path], capsys):
    out = tmp_path / "detections.csv"
    status = main(["detect", *map(str, good_files), "--out", str(out)])
    assert status == 0
    header, rows = _read(out)
    assert tuple(header) == CSV_HEADER
    assert out.read_text().splitlines()[0] == "file,frame,x,y,w,h,score,label"
    by_file: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_file.setdefault(row["file"], []).append(row)
        assert row["frame"] == "0"
        assert row["label"] in LABELS
        x, y, w, h = (int(row[k]) for k in "xywh")
        assert x >= 0
        assert y >= 0
        assert x + w <= 640
        assert y + h <= 512
        assert 0.0 <= float(row["score"]) <= 1.0
    # Both people (one of them ~5 px tall at 500 m) in every file, nothing else.
    assert {f: len(r) for f, r in by_file.items()} == {str(p): 2 for p in good_files}
    assert "4 file(s) read, 0 skipped" in capsys.readouterr().err


def test_bad_files_are_skipped_with_a_clear_line(tmp_path: Path, good_files: list[Path], capsys):
    png = good_files[0].read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(png[: len(png) // 3])
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    black = tmp_path / "black.png"
    cv2.imwrite(str(black), np.zeros((512, 640), dtype=np.uint16))
    saturated = tmp_path / "saturated.tiff"
    cv2.imwrite(str(saturated), np.full((512, 640), 255, dtype=np.uint8))
    floats = tmp_path / "float32.tiff"  # wrong bit depth: a float image
    cv2.imwrite(str(floats), np.random.default_rng(0).random((64, 64), dtype=np.float32))
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video either\n")
    bad = [truncated, corrupt, black, saturated, floats, notes, tmp_path / "missing.png"]
    out = tmp_path / "d.csv"
    status = main(["detect", str(good_files[0]), *map(str, bad), "--out", str(out)])
    assert status == 0  # one file could be read
    err = capsys.readouterr().err
    for path, reason in zip(
        bad,
        [
            "cannot read",
            "cannot read",
            "all black",
            "saturated",
            "8- or 16-bit",
            "cannot open",
            "no such file",
        ],
        strict=True,
    ):
        lines = [
            line for line in err.splitlines() if line.startswith(f"borderwatch detect: {path}")
        ]
        assert len(lines) == 1, path
        assert reason in lines[0]
    assert "1 file(s) read, 7 skipped" in err
    _header, rows = _read(out)
    assert {r["file"] for r in rows} == {str(good_files[0])}


def test_no_readable_file_exits_one(tmp_path: Path, capsys):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"junk")
    out = tmp_path / "d.csv"
    assert main(["detect", str(junk), "--out", str(out)]) == 1
    assert out.read_text() == "file,frame,x,y,w,h,score,label\n"
    assert "0 file(s) read, 1 skipped" in capsys.readouterr().err


def test_video_frame_by_frame_with_a_night_vision_camera_file(tmp_path: Path):
    rng = np.random.default_rng(7)
    mount = CameraMount(height_m=3.0, pitch_deg=-1.0)
    frames = [
        render_nightvision(_people((60.0, -6.0 + 0.25 * k)), INTR, mount, POSE, rng)
        for k in range(20)
    ]
    video = tmp_path / "nv.avi"
    write_video(frames, video)
    camera = tmp_path / "nv.yaml"
    camera.write_text("detector:\n  kind: nightvision\n  surface: ground\n")
    out = tmp_path / "d.csv"
    assert main(["detect", str(video), "--out", str(out), "--camera", str(camera)]) == 0
    _header, rows = _read(out)
    frames_with_mover = {
        int(r["frame"])
        for r in rows
        if int(r["frame"]) >= 5 and int(r["x"]) < 320 and 250 < int(r["y"]) + int(r["h"]) < 330
    }
    assert len(frames_with_mover) >= 13  # of frames 5..19
    assert all(0 <= int(r["frame"]) < 20 for r in rows)


def test_camera_file_with_calibration_gives_class_from_size_at_range(tmp_path: Path):
    image = tmp_path / "boat_and_person.png"
    boat = RenderTarget(400 * math.sin(0.1), 400 * math.cos(0.1), "boat")
    targets = [*_people((150.0, -5.0)), boat]
    cv2.imwrite(str(image), render_thermal(targets, INTR, MOUNT, POSE, np.random.default_rng(9)))
    INTR.to_opencv_file(tmp_path / "calib.yaml")
    camera = tmp_path / "cam.yaml"
    camera.write_text(
        "detector:\n  surface: water\n  intrinsics:\n    calibration_file: calib.yaml\n"
        "  mount:\n    height_m: 3.0\n"
    )
    out = tmp_path / "d.csv"
    assert main(["detect", str(image), "--out", str(out), "--camera", str(camera)]) == 0
    _header, rows = _read(out)
    assert sorted(r["label"] for r in rows) == ["boat", "person"]


def test_bad_camera_file_exits_two_naming_the_line(tmp_path: Path, capsys):
    camera = tmp_path / "cam.yaml"
    camera.write_text("detector:\n  kind: thermal\n  contrast_kelvin: 3\n")
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), _thermal(1))
    assert (
        main(["detect", str(image), "--out", str(tmp_path / "d.csv"), "--camera", str(camera)]) == 2
    )
    err = capsys.readouterr().err
    assert f"{camera}:3" in err
    assert "contrast_kelvin" in err


def test_real_entry_point_in_a_subprocess(tmp_path: Path, good_files: list[Path]):
    out = tmp_path / "d.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "borderwatch.cli", "detect", str(good_files[0]), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    _header, rows = _read(out)
    assert len(rows) == 2


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.binary(min_size=0, max_size=600),
    suffix=st.sampled_from([".png", ".tif", ".jpg", ".avi"]),
)
def test_random_bytes_never_crash(tmp_path: Path, data: bytes, suffix: str):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    status = main(["detect", str(path), "--out", str(tmp_path / "d.csv")])
    assert status in (0, 1)


def test_camera_file_with_an_onnx_model(tmp_path: Path):
    """A relative ``dnn_model`` in the camera file is found beside it and serves every file."""
    from tests.test_thermal_detect import _onnx_blob_model

    _onnx_blob_model(tmp_path / "blobs.onnx", threshold=0.5)
    camera = tmp_path / "cam.yaml"
    camera.write_text("detector:\n  dnn_model: blobs.onnx\n  dnn_input_size: [160, 128]\n")
    images = []
    for i in range(3):
        frame = np.full((256, 320), 50, dtype=np.uint8)
        frame[100:120, 40 + 60 * i : 50 + 60 * i] = 230
        images.append(tmp_path / f"p{i}.png")
        cv2.imwrite(str(images[-1]), frame)
    out = tmp_path / "d.csv"
    assert main(["detect", *map(str, images), "--out", str(out), "--camera", str(camera)]) == 0
    _header, rows = _read(out)
    assert [(r["file"], abs(int(r["x"]) - (40 + 60 * i)) <= 3) for i, r in enumerate(rows)] == [
        (str(p), True) for p in images
    ]
