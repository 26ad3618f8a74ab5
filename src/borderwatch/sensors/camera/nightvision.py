"""Moving objects in noisy low-light (night-vision) video.

Low-light frames are dominated by shot noise, and people are barely brighter or darker than
their background, so a single frame says little; motion does. Each frame is:

1. denoised (a 5×5 Gaussian, which keeps objects a few pixels across);
2. fed to OpenCV's MOG2 background subtractor (``nv_history`` frames, variance threshold
   ``nv_threshold``, no shadows); its foreground mask is opened (3×3) to remove the noise
   pixels that pass alone, and closed with an upright 3×9 rectangle to join the parts of a
   walker that move (head and shoulders, legs);
3. made persistent: each foreground pixel continues the longest run of foreground found within
   ``nv_motion_px`` pixels in the previous frame (a grey dilation of the run lengths), so a
   mover's run follows it; only blobs whose run has lasted ``nv_persist_frames`` frames are
   reported, so one-frame noise bursts are not;
4. turned into boxes scored by their persistence and labelled from shape (or size at range).

The first frame of a video (and a still image) has no history: it is searched for local
contrast in both directions (the thermal detector's top-hat, on the frame and its negative)
with a score capped at 0.5. Frames may be 8- or 16-bit; 16-bit ones are scaled to 8 bits.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from borderwatch.config.camera import DetectorSettings
from borderwatch.sensors.camera.blobs import find_blobs
from borderwatch.sensors.camera.classify import to_detections
from borderwatch.sensors.camera.detect import PixelDetection, check_frame, geometry_of
from borderwatch.sensors.camera.thermal import robust_noise, threshold_map

__all__ = ["NightVisionDetector"]

_KERNEL3 = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
_UPRIGHT = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 9))
#: Score of a single-frame (no motion) detection is at most this.
_STILL_SCORE = 0.5


class NightVisionDetector:
    """Motion detector for 8-bit low-light video; see the module docstring."""

    def __init__(self, settings: DetectorSettings) -> None:
        self.settings = settings
        self.geometry = geometry_of(settings)
        k = settings.background_px
        self._background_kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
        m = 2 * settings.nv_motion_px + 1
        self._motion_kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (m, m))
        self.reset()

    def reset(self) -> None:
        """Forget the video so far."""
        self._mog = cv2.createBackgroundSubtractorMOG2(
            history=self.settings.nv_history,
            varThreshold=self.settings.nv_threshold,
            detectShadows=False,
        )
        self._persist: NDArray[Any] | None = None
        self.frames = 0

    def detect(self, frame: np.ndarray) -> list[PixelDetection]:
        """Detections in ``frame``; raises ``FrameError`` for an unusable frame."""
        f: NDArray[Any] = check_frame(frame)
        if f.dtype == np.uint16:
            lo, hi = float(f.min()), float(f.max())
            f = ((f.astype(np.float32) - lo) * (255.0 / (hi - lo))).astype(np.uint8)
        smooth = np.asarray(cv2.GaussianBlur(f, (5, 5), 0))
        self.frames += 1
        if self._persist is None or self._persist.shape != f.shape:
            self._persist = np.zeros(f.shape, dtype=np.uint16)
            self._mog.apply(smooth, learningRate=1.0)
            return self._still(smooth)
        fg = self._mog.apply(smooth)
        fg = cv2.morphologyEx((fg > 0).astype(np.uint8), cv2.MORPH_OPEN, _KERNEL3)
        # A walker's moving parts (head and shoulders, legs) come apart in the difference;
        # a tall closing joins them again.
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, _UPRIGHT)
        # Persistence follows a mover: each foreground pixel continues the longest run found
        # within the motion radius in the previous frame (a grey dilation of the run lengths).
        reach = np.asarray(cv2.dilate(self._persist, self._motion_kernel))
        persist = np.where(fg > 0, np.minimum(reach, 65534) + 1, 0).astype(np.uint16)
        self._persist = persist
        diff = cv2.absdiff(smooth, self._mog.getBackgroundImage())
        blobs = find_blobs(fg, diff, f)
        if len(blobs) == 0:
            return []
        s = self.settings
        run = blobs.maximum(persist)
        keep = (run >= s.nv_persist_frames) & (blobs.area >= s.min_area_px)
        keep &= blobs.area <= s.max_area_px
        score = 0.5 + 0.5 * np.minimum(run / (2.0 * s.nv_persist_frames), 1.0)
        return to_detections(blobs, keep, score, self.geometry, s.surface, s.max_detections)

    def _still(self, smooth: NDArray[Any]) -> list[PixelDetection]:
        """Local contrast, bright or dark, in one frame (no motion to go by)."""
        s = self.settings
        sigma = robust_noise(smooth)
        masks = []
        strengths = []
        for img in (smooth, cv2.bitwise_not(smooth)):
            opened = cv2.morphologyEx(img, cv2.MORPH_OPEN, self._background_kernel)
            contrast = np.asarray(cv2.subtract(img, opened))
            masks.append(contrast > threshold_map(contrast, 1.0, s.snr, sigma))
            strengths.append(contrast)
        mask = cv2.morphologyEx((masks[0] | masks[1]).astype(np.uint8), cv2.MORPH_CLOSE, _KERNEL3)
        strength = np.maximum(strengths[0], strengths[1])
        blobs = find_blobs(mask, strength)
        if len(blobs) == 0:
            return []
        keep = (blobs.area >= s.min_area_px) & (blobs.area <= s.max_area_px)
        score = _STILL_SCORE * (1.0 - np.exp(-blobs.peak / max(s.snr * sigma, 1.0)))
        return to_detections(blobs, keep, score, self.geometry, s.surface, s.max_detections)
