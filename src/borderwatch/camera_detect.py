"""``borderwatch detect``: run the camera detector on still images and videos, write a CSV.

Contract (other tools parse it): the output has the header ``file,frame,x,y,w,h,score,label``
exactly, then one row per detection: ``file`` as given on the command line, ``frame`` the
0-based frame index (0 for a still image), the box in pixels, ``score`` in [0, 1] with three
decimals, ``label`` one of ``person``, ``group``, ``boat``, ``vehicle``, ``unknown``. Rows come
in input order, frame order, best score first.

Inputs: still images (``.png``, ``.tif``/``.tiff``, ``.jpg``/``.jpeg``, ``.pgm``, ``.bmp``;
8- or 16-bit, read with ``cv2.IMREAD_UNCHANGED``) are one frame each on a fresh detector, so
nothing but the frame itself helps; anything else is opened as a video with
``cv2.VideoCapture`` and its frames go through one detector in order (its background model
learns the video).

Bad input never stops the run: an unreadable or corrupt file, or a frame that is all black,
saturated, flat or of an unusable type, gets one line on stderr
(``borderwatch detect: FILE[:FRAME]: reason``) and is skipped and counted. The exit status is
0 when at least one file could be read (even if some were skipped, or nothing was detected), 1
when none could, 2 for a bad ``--camera`` file or an output that cannot be written.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from borderwatch.config.camera import DetectorSettings, load_camera_file
from borderwatch.errors import InputError
from borderwatch.sensors.camera.detect import (
    FrameError,
    PixelDetection,
    make_detector,
)

__all__ = ["CSV_HEADER", "DetectSummary", "run_detect"]

log = logging.getLogger(__name__)

CSV_HEADER = ("file", "frame", "x", "y", "w", "h", "score", "label")
IMAGE_SUFFIXES = frozenset({".png", ".tif", ".tiff", ".jpg", ".jpeg", ".pgm", ".bmp"})


@dataclass
class DetectSummary:
    """Counts of one run: files read and skipped, frames, frames skipped by reason,
    detections written."""

    files_read: int = 0
    files_skipped: int = 0
    frames: int = 0
    detections: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def run_detect(
    inputs: Sequence[Path],
    out: Path,
    camera: Path | None = None,
    stderr: TextIO | None = None,
) -> tuple[int, DetectSummary]:
    """Detect in every input and write the CSV to ``out``; the exit status and the counts."""
    err = stderr if stderr is not None else sys.stderr
    # Decoder warnings ("PNG input buffer is incomplete") would duplicate our own error line.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    settings = load_camera_file(camera).detector if camera is not None else DetectorSettings()
    # Build one detector up front so a bad model or calibration file fails before any output.
    # A network is stateless and costly to load: it serves every file; the classical
    # detectors keep a video's state, so each file gets a fresh one.
    first = make_detector(settings)
    shared = first if settings.dnn_model is not None else None
    summary = DetectSummary()

    def complain(where: str, reason: str, key: str) -> None:
        print(f"borderwatch detect: {where}: {reason}", file=err)
        summary.skip(key)

    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        for path in inputs:
            name = str(path)
            used = 0
            detector = shared if shared is not None else make_detector(settings)
            for index, frame in _frames(path, name, complain):
                try:
                    dets = detector.detect(frame)
                except FrameError as exc:
                    complain(f"{name}:{index}", exc.reason, exc.key)
                    continue
                used += 1
                writer.writerows(_rows(name, index, dets))
                summary.detections += len(dets)
            summary.frames += used
            if used:
                summary.files_read += 1
            else:
                summary.files_skipped += 1
    print(
        f"borderwatch detect: {summary.files_read} file(s) read, {summary.files_skipped} "
        f"skipped, {summary.frames} frame(s), {summary.detections} detection(s)",
        file=err,
    )
    return (0 if summary.files_read else 1), summary


def _rows(name: str, index: int, dets: list[PixelDetection]) -> list[list[object]]:
    return [[name, index, d.x, d.y, d.w, d.h, f"{d.score:.3f}", d.label] for d in dets]


def _frames(
    path: Path, name: str, complain: Callable[[str, str, str], None]
) -> Iterator[tuple[int, np.ndarray]]:
    """The frames of a still image or a video, with their indices; problems go to
    ``complain(name, reason, counter_key)`` and end the file."""
    if not path.is_file():
        complain(name, "no such file", "missing")
        return
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = _read_image(path)
        if image is None:
            complain(name, "cannot read image (unreadable, corrupt or truncated)", "unreadable")
            return
        yield 0, image
        return
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            reason = "cannot open as an image or a video (unknown format or corrupt)"
            complain(name, reason, "unreadable")
            return
        index = 0
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            yield index, np.asarray(frame)
            index += 1
        if index == 0:
            complain(name, "video has no readable frame", "unreadable")
    finally:
        cap.release()


def _read_image(path: Path) -> np.ndarray | None:
    """The image as stored (8/16-bit, grey or colour), or None when OpenCV cannot decode it.

    The bytes are decoded from memory (``cv2.imdecode``): a truncated file decodes to None or
    raises in the codec rather than printing a partial image."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    return None if image is None else np.asarray(image)


def detect_command(inputs: Sequence[Path], out: Path, camera: Path | None) -> int:
    """The ``borderwatch detect`` entry: runs, reports an unwritable output as an input error."""
    try:
        status, _summary = run_detect(inputs, out, camera)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", path=out) from exc
    return status
