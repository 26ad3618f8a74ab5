"""Class hints for detector boxes: person, group, boat, vehicle or unknown.

With the range to a box (from its foot point's elevation, :mod:`.geometry`) its physical size
is ``size_px · range / f``; the hint then follows from height and width in metres. Without a
range only the box's shape is left: tall and narrow is a person, wide and low a boat (on water)
or a vehicle (on the ground). The hints are hints: they carry a confidence, and the tracker
weighs them as such.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from borderwatch.fusion.detections import BoolArray, FloatArray
from borderwatch.sensors.camera.blobs import Blobs
from borderwatch.sensors.camera.detect import PixelDetection
from borderwatch.sensors.camera.geometry import CameraIntrinsics, CameraMount, pixel_to_angles

__all__ = ["LABELS", "blob_ranges", "classify_boxes", "to_detections"]

LABELS = ("person", "group", "boat", "vehicle", "unknown")
Surface = Literal["water", "ground"]
Geometry = tuple[CameraIntrinsics, CameraMount]

#: Height of a standing or walking person in metres, with the box's pixel quantisation.
PERSON_HEIGHT_M = (0.7, 2.8)
#: A single person's box is at most this wide; a group of a few people up to the next bound.
PERSON_WIDTH_M = 1.5
GROUP_WIDTH_M = 6.0
#: Boats and vehicles are at least this wide (seen from the side or at an angle).
CRAFT_WIDTH_M = 2.5
#: A group stands taller for its width than a vehicle does (3 people: 0.7, a car: 0.4).
GROUP_MIN_ASPECT = 0.5
CRAFT_HEIGHT_M = 5.0
#: Boxes smaller than this (pixels, height) have no shape to speak of without a range.
MIN_SHAPE_PX = 4


def classify_boxes(
    w_px: FloatArray,
    h_px: FloatArray,
    range_m: FloatArray,
    fx: float,
    fy: float,
    surface: Surface = "water",
) -> tuple[list[str], FloatArray]:
    """Labels and confidences for boxes of ``w_px × h_px`` pixels at ``range_m`` (NaN where
    unknown), seen with focal lengths ``fx``, ``fy`` (pixels)."""
    w = np.asarray(w_px, dtype=np.float64)
    h = np.asarray(h_px, dtype=np.float64)
    r = np.asarray(range_m, dtype=np.float64)
    craft = "boat" if surface == "water" else "vehicle"
    labels = np.full(w.shape, "unknown", dtype=object)
    conf = np.full(w.shape, 0.2)
    known = np.isfinite(r) & (r > 0)
    width_m = w * np.where(known, r, 0.0) / fx
    height_m = h * np.where(known, r, 0.0) / fy
    person_tall = (height_m >= PERSON_HEIGHT_M[0]) & (height_m <= PERSON_HEIGHT_M[1])
    rules = [
        (known & person_tall & (width_m <= PERSON_WIDTH_M), "person", 0.7),
        (
            known
            & person_tall
            & (width_m > PERSON_WIDTH_M)
            & (width_m <= GROUP_WIDTH_M)
            & (height_m >= GROUP_MIN_ASPECT * width_m)
            & (surface == "ground"),
            "group",
            0.5,
        ),
        (known & (width_m >= CRAFT_WIDTH_M) & (height_m <= CRAFT_HEIGHT_M), craft, 0.6),
        (~known & (h >= MIN_SHAPE_PX) & (h >= 1.8 * w), "person", 0.4),
        (~known & (h >= MIN_SHAPE_PX) & (h < 1.8 * w) & (w < 2.5 * h) & (w >= 6), "group", 0.3),
        (~known & (h >= 2) & (w >= 2.5 * h), craft, 0.3),
    ]
    assigned = np.zeros(w.shape, dtype=bool)
    for where, label, c in rules:
        take = where & ~assigned
        labels[take] = label
        conf[take] = c
        assigned |= take
    return [str(x) for x in labels.tolist()], conf


def blob_ranges(
    x: FloatArray, w: FloatArray, y: FloatArray, h: FloatArray, geometry: Geometry | None
) -> FloatArray:
    """Flat-surface range of each box's foot point, m (NaN above the horizon or without a
    geometry)."""
    if geometry is None or x.shape[0] == 0:
        return np.full(x.shape, np.nan)
    intr, mount = geometry
    _az, el = pixel_to_angles(intr, mount, x + (w - 1) / 2.0, y + h - 0.5)
    depression = np.radians(-el)
    with np.errstate(divide="ignore"):
        return np.where(depression > 0, mount.height_m / np.tan(depression), np.nan)


def to_detections(
    blobs: Blobs,
    keep: BoolArray,
    score: FloatArray,
    geometry: Geometry | None,
    surface: Surface,
    limit: int,
) -> list[PixelDetection]:
    """The kept blobs as detections with class hints, best score first, at most ``limit``."""
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        return []
    idx = idx[np.argsort(-score[idx], kind="stable")][:limit]
    x, y = blobs.x[idx].astype(np.float64), blobs.y[idx].astype(np.float64)
    w, h = blobs.w[idx].astype(np.float64), blobs.h[idx].astype(np.float64)
    rng = blob_ranges(x, w, y, h, geometry)
    fx = fy = 1.0
    if geometry is not None:
        fx, fy = geometry[0].fx, geometry[0].fy
    labels, conf = classify_boxes(w, h, rng, fx, fy, surface)
    return [
        PixelDetection(
            x=int(blobs.x[i]),
            y=int(blobs.y[i]),
            w=int(blobs.w[i]),
            h=int(blobs.h[i]),
            score=float(np.clip(score[i], 0.0, 1.0)),
            label=labels[j],
            cx=float(blobs.cx[i]),
            cy=float(blobs.cy[i]),
            label_conf=float(conf[j]),
        )
        for j, i in enumerate(idx)
    ]
