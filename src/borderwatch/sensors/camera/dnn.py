"""A neural detector behind the :class:`~.detect.FrameDetector` interface (OpenCV DNN, ONNX).

Used only when ``dnn_model`` names a model file; borderwatch works without one. The model
contract is a dense one, which detection and segmentation heads both reduce to and which needs
no model-specific box decoding:

* input ``1×1×H×W`` float32, the frame resized to ``dnn_input_size`` (width, height) and
  scaled to [0, 1] by its dtype's full scale;
* output ``1×1×h×w`` (any resolution): a per-pixel objectness in [0, 1].

Pixels above ``dnn_score`` form blobs (connected components); their boxes are scaled back to
the frame, scored by their peak objectness and labelled like the classical detectors' boxes.
A model that cannot be loaded is a :class:`~borderwatch.errors.ConfigError`; an output of the
wrong shape is a :class:`~.detect.FrameError` for that frame (``model_output``).
"""

from __future__ import annotations

import cv2
import numpy as np

from borderwatch.config.camera import DetectorSettings
from borderwatch.errors import ConfigError
from borderwatch.sensors.camera.blobs import find_blobs
from borderwatch.sensors.camera.classify import to_detections
from borderwatch.sensors.camera.detect import (
    FrameError,
    PixelDetection,
    check_frame,
    geometry_of,
)

__all__ = ["DnnDetector"]


class DnnDetector:
    """Runs an ONNX objectness model with ``cv2.dnn``; see the module docstring."""

    def __init__(self, settings: DetectorSettings) -> None:
        if settings.dnn_model is None:
            raise ConfigError("dnn_model is not set")
        path = settings.dnn_model
        if not path.is_file():
            raise ConfigError("DNN model file not found", path=path)
        try:
            self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            lines = str(exc).strip().splitlines()
            reason = lines[-1] if lines else "unreadable"
            raise ConfigError(f"cannot load ONNX model: {reason}", path=path) from exc
        if self.net.empty():
            raise ConfigError("cannot load ONNX model: empty network", path=path)
        self.settings = settings
        self.geometry = geometry_of(settings)

    def detect(self, frame: np.ndarray) -> list[PixelDetection]:
        """Detections in ``frame``; raises ``FrameError`` for an unusable frame or output."""
        f = check_frame(frame)
        s = self.settings
        scale = 1.0 / float(np.iinfo(f.dtype).max)
        blob = cv2.dnn.blobFromImage(
            f.astype(np.float32), scalefactor=scale, size=tuple(s.dnn_input_size)
        )
        self.net.setInput(blob)
        out = np.asarray(self.net.forward())
        if out.ndim != 4 or out.shape[0] != 1 or out.shape[1] != 1:
            raise FrameError("model_output", f"model output shape {out.shape} is not 1×1×h×w")
        heat = cv2.resize(out[0, 0].astype(np.float32), (f.shape[1], f.shape[0]))
        mask = (heat > s.dnn_score).astype(np.uint8)
        blobs = find_blobs(mask, heat)
        if len(blobs) == 0:
            return []
        keep = (blobs.area >= s.min_area_px) & (blobs.area <= s.max_area_px)
        return to_detections(blobs, keep, blobs.peak, self.geometry, s.surface, s.max_detections)
