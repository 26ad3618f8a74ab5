"""The frame-detector interface: pixel detections, frame checks and the detector factory.

A :class:`FrameDetector` takes one frame (``uint16`` Y16 radiometric counts or ``uint8``
grey levels, ``H×W``; ``H×W×3`` 8-bit colour is converted to grey) and returns
:class:`PixelDetection` boxes. Detectors are stateful across the frames of one video (a
background model, static hot-spot suppression); a still image is one call on a fresh detector,
so nothing but the frame itself helps it. :func:`make_detector` builds the detector a
:class:`~borderwatch.config.camera.DetectorSettings` describes.

:func:`check_frame` refuses what no detector can use, with a :class:`FrameError` whose
``reason`` is a short counter key: ``empty``, ``dtype``, ``shape``, ``black``, ``saturated``,
``flat``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from borderwatch.config.camera import DetectorSettings
from borderwatch.errors import InputError
from borderwatch.sensors.camera.geometry import CameraIntrinsics, CameraMount

__all__ = [
    "DetectorSettings",
    "FrameDetector",
    "FrameError",
    "PixelDetection",
    "check_frame",
    "geometry_of",
    "make_detector",
]

Frame = NDArray[np.uint8] | NDArray[np.uint16]
#: Fraction of pixels at the top of the range that makes a frame saturated.
SATURATED_FRACTION = 0.98


class FrameError(InputError):
    """A frame no detector can use; ``reason`` is a counter key (see the module docstring)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class PixelDetection:
    """One detected object in a frame.

    Attributes:
        x, y, w, h: bounding box, pixels (left, top, width, height).
        score: warm-body (thermal) or motion (night vision) score in [0, 1].
        label: class hint, one of person, group, boat, vehicle, unknown.
        cx, cy: sub-pixel centroid, pixels (weighted by contrast).
        label_conf: confidence of the class hint in [0, 1].
    """

    x: int
    y: int
    w: int
    h: int
    score: float
    label: str
    cx: float
    cy: float
    label_conf: float = 0.0


class FrameDetector(Protocol):
    """Anything that turns a frame into pixel detections."""

    def detect(self, frame: np.ndarray) -> list[PixelDetection]: ...


def check_frame(frame: object) -> Frame:
    """The frame as a 2-D ``uint8``/``uint16`` array, or :class:`FrameError` saying why not.

    8-bit colour (``H×W×3``/``H×W×4``) is converted to grey; other channel counts, other
    dtypes, empty, all-black, saturated and perfectly flat frames are refused.
    """
    if not isinstance(frame, np.ndarray):
        raise FrameError("dtype", f"frame is a {type(frame).__name__}, not an image array")
    if frame.dtype not in (np.uint8, np.uint16):
        raise FrameError("dtype", f"frame dtype {frame.dtype} is not 8- or 16-bit unsigned")
    if frame.ndim == 3 and frame.shape[2] in (3, 4) and frame.dtype == np.uint8:
        code = cv2.COLOR_BGR2GRAY if frame.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        frame = cv2.cvtColor(frame, code)
    if frame.ndim != 2:
        raise FrameError("shape", f"frame shape {frame.shape} is not a grey H×W image")
    if frame.size == 0 or min(frame.shape) < 8:
        raise FrameError("empty", f"frame of {frame.shape[1]}×{frame.shape[0]} pixels is too small")
    lo, hi = int(frame.min()), int(frame.max())
    if hi == 0:
        raise FrameError("black", "frame is all black (no signal)")
    top = np.iinfo(frame.dtype).max
    if np.count_nonzero(frame >= top) >= SATURATED_FRACTION * frame.size:
        raise FrameError("saturated", "frame is saturated (almost every pixel at full scale)")
    if lo == hi:
        raise FrameError("flat", f"frame is flat (every pixel is {lo})")
    return np.ascontiguousarray(frame)


def geometry_of(settings: DetectorSettings) -> tuple[CameraIntrinsics, CameraMount] | None:
    """The (intrinsics, mount) pair the settings describe, or None without both."""
    if settings.intrinsics is None or settings.mount is None:
        return None
    i = settings.intrinsics
    if i.calibration_file is not None:
        intr = CameraIntrinsics.from_opencv_file(i.calibration_file)
    else:
        if i.width is None or i.height is None or i.hfov_deg is None:  # the model forbids it
            raise ValueError("intrinsics need width, height and hfov_deg")
        intr = CameraIntrinsics.from_fov(i.width, i.height, i.hfov_deg)
    mount = CameraMount(**settings.mount.model_dump())
    return intr, mount


def make_detector(settings: DetectorSettings) -> FrameDetector:
    """The detector the settings describe: the ONNX model when ``dnn_model`` is set, else the
    classical thermal or night-vision pipeline. Raises
    :class:`~borderwatch.errors.ConfigError` for a model or calibration file that cannot be
    loaded."""
    if settings.dnn_model is not None:
        from borderwatch.sensors.camera.dnn import DnnDetector

        return DnnDetector(settings)
    if settings.kind == "nightvision":
        from borderwatch.sensors.camera.nightvision import NightVisionDetector

        return NightVisionDetector(settings)
    from borderwatch.sensors.camera.thermal import ThermalDetector

    return ThermalDetector(settings)
