"""Warm bodies in thermal frames: local-background contrast, blobs, static hot-spot suppression.

Each frame, still or video, goes through the same single-frame steps:

1. **Local background.** A grey-scale morphological opening of the raw frame with a square of
   ``background_px`` pixels (``cv2.morphologyEx``) removes every warm structure that a square
   that large does not fit in, and keeps the background's level, gradients and edges (the
   horizon, a shore line) where they are. The frame minus its opening (a white top-hat) is the
   contrast of warm objects up to that size. It works on the raw counts: the conversion to
   kelvin is linear and increasing, so it commutes with the opening.
2. **Threshold.** A pixel is warm when its contrast exceeds both ``contrast_k`` kelvin and
   ``snr`` robust noise σ above the contrast's median (the opening leaves the background's
   noise slightly positive). The noise σ is the median absolute difference of horizontally
   adjacent pixels on a sparse grid (fixed-pattern noise and texture count as noise: they do
   make blobs).
3. **Blobs.** A 3×3 closing joins fragments; connected components give boxes, areas,
   contrast-weighted sub-pixel centroids, peak contrast and peak temperature.
4. **Hot spots.** A small blob (``hotspot_max_area_px``) whose peak is hotter than a body
   (``max_body_k``) is a lamp or an exhaust, not a warm body, and is dropped.
5. **Score and hint.** The warm-body score rises from 0.5 at the threshold towards 1 with the
   peak contrast; labels come from :func:`~.classify.classify_boxes`, from size at range
   when the settings give intrinsics and mount, else from shape.

In video (successive calls on one detector, ``background_model`` on) a per-pixel persistence
count of the dilated warm mask is the background model of static hot spots: a blob whose
pixels have mostly stayed warm for ``static_frames`` frames (an engine in view, a lamp, a warm
rock) is suppressed, while a walker moves off its pixels long before. The dilation tolerates a
pixel of jitter. A person who stands still that long is suppressed too: the trade-off of any
background model.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from borderwatch.config.camera import DetectorSettings
from borderwatch.fusion.detections import FloatArray
from borderwatch.sensors.camera.blobs import find_blobs
from borderwatch.sensors.camera.classify import to_detections
from borderwatch.sensors.camera.detect import PixelDetection, check_frame, geometry_of

__all__ = ["ThermalDetector", "robust_noise", "threshold_map"]

_KERNEL3 = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
#: Sparse grid step of the noise estimate, pixels.
_NOISE_STEP = 4
#: Cell of the local clutter estimate, pixels (a multiple of the noise grid step).
_CELL_PX = 16
#: The 30th percentile of |x| for a normal x is 0.385 σ.
_LOW_QUANTILE_TO_SIGMA = 1.0 / 0.385
#: A robust σ is never below this many counts (quantisation).
_MIN_NOISE = 0.5
#: Fraction of a blob's pixels that must be static for the blob to be static.
_STATIC_FRACTION = 0.5


def robust_noise(frame: NDArray[np.integer]) -> float:
    """Robust σ of a frame's pixel noise, in its own units: the median absolute difference of
    horizontally adjacent pixels on a sparse grid, scaled for a normal distribution."""
    a = frame[::_NOISE_STEP, 0:-1:_NOISE_STEP].astype(np.float32)
    b = frame[::_NOISE_STEP, 1::_NOISE_STEP].astype(np.float32)
    d = np.abs(a[:, : b.shape[1]] - b[:, : a.shape[1]])
    return max(float(np.median(d)) * 1.4826 / float(np.sqrt(2.0)), _MIN_NOISE)


def threshold_map(contrast: NDArray[Any], floor: float, snr: float, sigma: float) -> NDArray[Any]:
    """Per-pixel detection threshold for ``contrast`` (same dtype and shape, in counts).

    The threshold is ``max(floor, level + snr·max(spread, sigma))``: ``level`` is the
    contrast's median, ``spread`` its local robust spread, a low quantile (about the 30th
    percentile) of the absolute deviation from the level of a sparse sample in each
    ``_CELL_PX`` square cell, scaled to a normal σ, so that a target filling most of a cell
    does not inflate it. A 3×3 median over the cells then drops cells a large target covers
    entirely, a 3×3 mean smooths the rest, and the cell map is interpolated to full size:
    textured water or terrain raises the threshold where it is, not everywhere.
    """
    sample = contrast[::_NOISE_STEP, ::_NOISE_STEP].astype(np.float32)
    level = float(np.median(sample))
    # Frames smaller than a cell are one cell.
    step = min(_CELL_PX // _NOISE_STEP, *sample.shape)
    rows, cols = sample.shape[0] // step, sample.shape[1] // step
    blocks = np.abs(sample[: rows * step, : cols * step] - level)
    blocks = blocks.reshape(rows, step, cols, step).transpose(0, 2, 1, 3).reshape(rows, cols, -1)
    k = max(blocks.shape[2] * 3 // 10, 0)
    low = np.partition(blocks, k, axis=2)[:, :, k] * _LOW_QUANTILE_TO_SIGMA
    spread = cv2.medianBlur(np.ascontiguousarray(low, dtype=np.float32), 3)
    spread = cv2.blur(spread, (3, 3), borderType=cv2.BORDER_REPLICATE)
    cells = np.maximum(floor, level + snr * np.maximum(spread, sigma))
    top = float(np.iinfo(contrast.dtype).max)
    cells = np.clip(np.ceil(cells), 0.0, top).astype(contrast.dtype)
    h, w = contrast.shape
    return np.asarray(cv2.resize(cells, (w, h), interpolation=cv2.INTER_LINEAR))


class ThermalDetector:
    """The classical thermal detector; see the module docstring. Stateful across the frames
    of one video; :meth:`reset` (or a new detector) starts a new one."""

    def __init__(self, settings: DetectorSettings) -> None:
        self.settings = settings
        self.geometry = geometry_of(settings)
        k = settings.background_px
        self._background_kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
        self._persist: NDArray[Any] | None = None
        self.frames = 0
        self.suppressed_static = 0
        self.suppressed_hot = 0

    def reset(self) -> None:
        """Forget the video so far (the next frame starts a new one)."""
        self._persist = None
        self.frames = 0

    def kelvin_per_count(self, frame: NDArray[np.integer]) -> tuple[float, float]:
        """Gain and offset from the frame's counts to kelvin."""
        if frame.dtype == np.uint16:
            return self.settings.y16_gain_k, self.settings.y16_offset_k
        return self.settings.gray_gain_k, 0.0

    def to_kelvin(self, frame: np.ndarray) -> FloatArray:
        """The frame in kelvin (``float64``), after :func:`check_frame`."""
        f = check_frame(frame)
        gain, offset = self.kelvin_per_count(f)
        return np.asarray(f, dtype=np.float64) * gain + offset

    def detect(self, frame: np.ndarray) -> list[PixelDetection]:
        """Detections in ``frame`` (Y16 or 8-bit); raises
        :class:`~borderwatch.sensors.camera.detect.FrameError` for an unusable frame."""
        f = check_frame(frame)
        s = self.settings
        if f.dtype == np.uint8 and s.polarity == "black_hot":
            f = np.asarray(cv2.bitwise_not(f), dtype=np.uint8)
        gain, offset = self.kelvin_per_count(f)
        background = cv2.morphologyEx(f, cv2.MORPH_OPEN, self._background_kernel)
        contrast = cv2.subtract(f, background)  # saturates at 0: warm contrast only
        threshold = threshold_map(contrast, s.contrast_k / gain, s.snr, robust_noise(f))
        warm = np.asarray(
            cv2.morphologyEx(
                cv2.compare(contrast, threshold, cv2.CMP_GT), cv2.MORPH_CLOSE, _KERNEL3
            )
        )
        static = self._update_static(warm, f.shape)
        blobs = find_blobs(warm, contrast, f)
        if len(blobs) == 0:
            return []
        peak_k = blobs.peak_value * gain + offset
        keep = (blobs.area >= s.min_area_px) & (blobs.area <= s.max_area_px)
        hot = (blobs.area <= s.hotspot_max_area_px) & (peak_k > s.max_body_k)
        self.suppressed_hot += int(np.count_nonzero(keep & hot))
        keep &= ~hot
        if static is not None:
            is_static = blobs.fraction(static) > _STATIC_FRACTION
            self.suppressed_static += int(np.count_nonzero(keep & is_static))
            keep &= ~is_static
        # Each blob's threshold where it peaks is close enough to its threshold everywhere.
        at = threshold[
            np.clip(np.rint(blobs.cy), 0, f.shape[0] - 1).astype(np.int64),
            np.clip(np.rint(blobs.cx), 0, f.shape[1] - 1).astype(np.int64),
        ]
        score = 1.0 - 0.5 * np.exp(-(blobs.peak - at) / at)
        keep &= score >= s.min_score
        return to_detections(blobs, keep, score, self.geometry, s.surface, s.max_detections)

    def _update_static(
        self, warm: NDArray[Any], shape: tuple[int, ...]
    ) -> NDArray[np.bool_] | None:
        """Update the persistence count; the mask of static pixels (None for stills)."""
        self.frames += 1
        if not self.settings.background_model:
            return None
        if self._persist is None or self._persist.shape != shape:
            self._persist = np.zeros(shape, dtype=np.uint16)
        grown = cv2.dilate(warm, _KERNEL3)
        # Count up where warm (saturating), back to zero where not.
        on = grown > 0
        persist = np.asarray(cv2.add(self._persist, on.astype(np.uint16))) * on
        self._persist = persist
        if self.frames < self.settings.static_frames:
            return None
        return np.asarray(persist >= self.settings.static_frames)
