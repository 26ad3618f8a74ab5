"""Connected components of a foreground mask as arrays of box statistics.

Every detector ends the same way: a binary mask becomes connected components
(``cv2.connectedComponentsWithStats``), and each component gets a box, an area, a sub-pixel
centroid weighted by a per-pixel strength (contrast or motion) and the peak strength. Only the
foreground pixels are touched after labelling, so the cost follows what was detected, not the
frame size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from borderwatch.fusion.detections import BoolArray, FloatArray, IntArray

__all__ = ["Blobs", "find_blobs"]


@dataclass(frozen=True, slots=True)
class Blobs:
    """``n`` components; ``labels`` is the label image (0 background, ``i + 1`` blob ``i``).

    Arrays: ``x, y, w, h, area`` (int64, pixels), ``cx, cy`` (weighted centroid, pixels),
    ``peak`` (largest strength), ``peak_value`` (largest raw frame value) per blob; ``px,
    py, plabel`` the foreground pixels and their blob index.
    """

    labels: NDArray[np.int32]
    x: IntArray
    y: IntArray
    w: IntArray
    h: IntArray
    area: IntArray
    cx: FloatArray
    cy: FloatArray
    peak: FloatArray
    peak_value: FloatArray
    px: IntArray
    py: IntArray
    plabel: IntArray

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def fraction(self, pixels: BoolArray) -> FloatArray:
        """Fraction of each blob's pixels where ``pixels`` is true."""
        on = pixels[self.py, self.px].astype(np.float64)
        hits = np.bincount(self.plabel, weights=on, minlength=len(self))
        return np.asarray(hits / np.maximum(self.area, 1), dtype=np.float64)

    def maximum(self, values: NDArray[Any]) -> FloatArray:
        """Largest of ``values`` (an image of the frame's shape) over each blob's pixels."""
        out = np.full(len(self), -np.inf)
        np.maximum.at(out, self.plabel, np.asarray(values[self.py, self.px], dtype=np.float64))
        return out


def find_blobs(
    mask: NDArray[Any], strength: NDArray[Any], frame: NDArray[Any] | None = None
) -> Blobs:
    """Components of ``mask`` (non-zero = foreground, 8-connected) with centroids weighted by
    ``strength`` (same shape) and peaks of ``strength`` and of ``frame`` (default
    ``strength``)."""
    # Grana's block-based labelling: the fastest of OpenCV's on sparse masks by 3× (measured,
    # one thread, 640×512), with the same labels as the default.
    n, cc_labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
        mask, 8, cv2.CV_32S, cv2.CCL_GRANA
    )
    labels = np.asarray(cc_labels, dtype=np.int32)
    k = n - 1
    # Only the foreground pixels from here on (cv2.findNonZero lists them without a
    # full-frame boolean pass).
    points = cv2.findNonZero(mask)
    xy = np.zeros((0, 2), dtype=np.int64) if points is None else points.reshape(-1, 2)
    xs, ys = xy[:, 0], xy[:, 1]
    lab = labels[ys, xs].astype(np.int64) - 1
    wgt = np.asarray(strength[ys, xs], dtype=np.float64)
    wpos = np.maximum(wgt, 1e-9)
    total = np.bincount(lab, weights=wpos, minlength=k)
    cx = np.bincount(lab, weights=wpos * xs, minlength=k) / np.maximum(total, 1e-300)
    cy = np.bincount(lab, weights=wpos * ys, minlength=k) / np.maximum(total, 1e-300)
    peak = np.full(k, -np.inf)
    np.maximum.at(peak, lab, wgt)
    if frame is None:
        peak_value = peak.copy()
    else:
        peak_value = np.full(k, -np.inf)
        values = np.asarray(frame[ys, xs], dtype=np.float64)
        np.maximum.at(peak_value, lab, values)
    st = np.asarray(stats)[1:].astype(np.int64)
    return Blobs(
        labels=labels,
        x=st[:, cv2.CC_STAT_LEFT],
        y=st[:, cv2.CC_STAT_TOP],
        w=st[:, cv2.CC_STAT_WIDTH],
        h=st[:, cv2.CC_STAT_HEIGHT],
        area=st[:, cv2.CC_STAT_AREA],
        cx=cx,
        cy=cy,
        peak=peak,
        peak_value=peak_value,
        px=xs.astype(np.int64),
        py=ys.astype(np.int64),
        plabel=lab,
    )
