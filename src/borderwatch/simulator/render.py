"""Synthetic thermal (16-bit Y16) and night-vision (8-bit) frames of targets seen by a camera.

The scene is built in kelvin (thermal) or grey levels (night vision) and then quantised:

* **Background** from each pixel's elevation (:func:`~borderwatch.sensors.camera.geometry.
  pixel_to_angles`, cached per camera): cold sky above the horizon, the surface (water or
  ground) below, both blending towards the horizon as water reflects the sky at grazing angles;
  plus a low-frequency texture (waves, terrain) drawn anew each frame.
* **Targets** as upright rectangles of their true size: the foot point and the head are
  projected with :func:`~borderwatch.sensors.camera.geometry.project_enu`, the width scales
  with the depth; each pixel takes the target's temperature in proportion to how much of it the
  rectangle covers, so a person 500 m away (1.5 px wide) is a faint, partly filled blob as a
  real detector sees it. Contrast fades with range (``attenuation_km``).
* **Optics and sensor**: a Gaussian blur (``psf_sigma_px``), vignetting (corners cooler by
  ``vignetting_k``), fixed-pattern noise (per-pixel and per-column offsets drawn once from
  ``fpn_seed``), temporal noise (``netd_k``), quantisation to Y16 counts
  (``kelvin = gain·count + offset``).
* **Hot distractors** fixed in the image (an engine on the own boat, a lamp), hotter than
  any body.

Everything random comes from the ``rng`` passed in (and ``fpn_seed``), so a seed reproduces
the frames bit for bit. Writers: a Y16 frame sequence as 16-bit PNG files, an 8-bit sequence as
an MJPG ``.avi`` (``cv2.VideoWriter``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from borderwatch.fusion.detections import BoolArray, FloatArray
from borderwatch.sensors.camera.geometry import (
    CameraIntrinsics,
    CameraMount,
    PlatformPose,
    pixel_to_angles,
    project_enu,
)

__all__ = [
    "HotSpot",
    "NightVisionScene",
    "RenderTarget",
    "ThermalScene",
    "render_nightvision",
    "render_thermal",
    "target_boxes",
    "write_video",
    "write_y16_sequence",
]

#: Default (height, width) in metres and temperature in kelvin of each target class.
CLASS_SIZE_M = {
    "person": (1.8, 0.5),
    "group": (1.8, 2.5),
    "boat": (1.5, 6.0),
    "vehicle": (1.8, 4.5),
}
CLASS_TEMP_K = {"person": 306.0, "group": 306.0, "boat": 298.0, "vehicle": 310.0}
#: Texture grid step, pixels (the texture is drawn at this coarser scale and upsampled).
_TEXTURE_STEP = 16


@dataclass(frozen=True)
class RenderTarget:
    """A target to draw: position on the surface (local ENU metres), class and optionally
    its size and apparent temperature (defaults per class)."""

    e: float
    n: float
    cls: str = "person"
    height_m: float | None = None
    width_m: float | None = None
    temp_k: float | None = None

    def size(self) -> tuple[float, float]:
        h, w = CLASS_SIZE_M.get(self.cls, CLASS_SIZE_M["person"])
        return (self.height_m or h, self.width_m or w)

    def temperature(self) -> float:
        return self.temp_k if self.temp_k is not None else CLASS_TEMP_K.get(self.cls, 306.0)


@dataclass(frozen=True)
class HotSpot:
    """A hot distractor fixed in the image: centre (pixels), radius (pixels), temperature."""

    u: float
    v: float
    radius_px: float = 1.5
    temp_k: float = 360.0


@dataclass(frozen=True)
class ThermalScene:
    """Scene and sensor parameters of :func:`render_thermal` (kelvin unless named)."""

    surface_k: float = 285.0
    sky_k: float = 250.0
    texture_k: float = 0.3
    netd_k: float = 0.05
    fpn_k: float = 0.08
    column_fpn_k: float = 0.05
    fpn_seed: int = 0
    vignetting_k: float = 1.5
    psf_sigma_px: float = 0.5
    attenuation_km: float = 8.0
    gain_k: float = 0.01
    offset_k: float = 0.0
    hot_spots: tuple[HotSpot, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class NightVisionScene:
    """Scene and sensor parameters of :func:`render_nightvision` (grey levels)."""

    surface_level: float = 30.0
    sky_level: float = 14.0
    texture_level: float = 2.0
    target_level: float = 52.0
    noise_level: float = 6.0
    vignetting: float = 0.4
    psf_sigma_px: float = 0.8
    lights: tuple[HotSpot, ...] = field(default_factory=tuple)


def target_boxes(
    targets: Sequence[RenderTarget],
    intr: CameraIntrinsics,
    mount: CameraMount,
    pose: PlatformPose,
) -> tuple[FloatArray, BoolArray, FloatArray]:
    """Each target's box ``(u0, v0, u1, v1)`` in float pixels, whether its foot point is in the
    image and in front of the camera, and its horizontal range from the camera, m."""
    n = len(targets)
    if n == 0:
        return np.zeros((0, 4)), np.zeros(0, dtype=bool), np.zeros(0)
    sizes = np.array([t.size() for t in targets])
    en = np.array([[t.e, t.n] for t in targets], dtype=np.float64)
    foot = np.column_stack([en, np.zeros(n)])
    head = np.column_stack([en, sizes[:, 0]])
    pf, ok = project_enu(intr, mount, pose, foot)
    ph, _ = project_enu(intr, mount, pose, head)
    rng = np.hypot(en[:, 0] - pose.e, en[:, 1] - pose.n)
    depth = np.maximum(np.hypot(rng, mount.height_m), 1e-3)
    half_w = sizes[:, 1] * intr.fx / depth / 2.0
    boxes = np.column_stack([pf[:, 0] - half_w, ph[:, 1], pf[:, 0] + half_w, pf[:, 1]])
    return boxes, ok & np.all(np.isfinite(boxes), axis=1), rng


def _coverage(lo: float, hi: float, size: int) -> tuple[int, FloatArray]:
    """First pixel index and the fraction of each pixel ``[i − ½, i + ½]`` covered by
    ``[lo, hi]`` (clipped to the image)."""
    i0 = max(math.floor(lo + 0.5), 0)
    i1 = min(math.floor(hi + 0.5), size - 1)
    if i1 < i0:
        return 0, np.zeros(0)
    idx = np.arange(i0, i1 + 1, dtype=np.float64)
    cover = np.clip(np.minimum(idx + 0.5, hi) - np.maximum(idx - 0.5, lo), 0.0, 1.0)
    return i0, cover


def _paint(img: FloatArray, box: FloatArray, value: float) -> None:
    """Blend ``value`` into ``img`` over ``box`` in proportion to pixel coverage."""
    h, w = img.shape
    x0, cx = _coverage(float(box[0]), float(box[2]), w)
    y0, cy = _coverage(float(box[1]), float(box[3]), h)
    if cx.size == 0 or cy.size == 0:
        return
    alpha = np.outer(cy, cx)
    patch = img[y0 : y0 + cy.size, x0 : x0 + cx.size]
    patch += alpha * (value - patch)


_ELEVATION_CACHE: dict[tuple[Any, ...], FloatArray] = {}


def _elevation_map(intr: CameraIntrinsics, mount: CameraMount) -> FloatArray:
    """Elevation of every pixel, degrees (depends on the camera, not on the platform pose)."""
    key = (intr.width, intr.height, intr.K.tobytes(), intr.dist.tobytes(), mount)
    cached = _ELEVATION_CACHE.get(key)
    if cached is None:
        v, u = np.mgrid[0 : intr.height, 0 : intr.width].astype(np.float64)
        _az, cached = pixel_to_angles(intr, mount, u, v)
        if len(_ELEVATION_CACHE) > 8:
            _ELEVATION_CACHE.clear()
        _ELEVATION_CACHE[key] = cached
    return cached


def _texture(rng: np.random.Generator, shape: tuple[int, int], amplitude: float) -> FloatArray:
    h, w = shape
    coarse = rng.normal(0.0, amplitude, (h // _TEXTURE_STEP + 2, w // _TEXTURE_STEP + 2))
    big = cv2.resize(
        coarse,
        (coarse.shape[1] * _TEXTURE_STEP, coarse.shape[0] * _TEXTURE_STEP),
        interpolation=cv2.INTER_CUBIC,
    )
    return np.asarray(big[:h, :w], dtype=np.float64)


def _vignette(shape: tuple[int, int]) -> FloatArray:
    """0 at the image centre, 1 at the corners (radius squared)."""
    h, w = shape
    y = (np.arange(h) - (h - 1) / 2.0) / ((h - 1) / 2.0)
    x = (np.arange(w) - (w - 1) / 2.0) / ((w - 1) / 2.0)
    return np.asarray((y[:, None] ** 2 + x[None, :] ** 2) / 2.0, dtype=np.float64)


_FPN_CACHE: dict[tuple[Any, ...], FloatArray] = {}


def _fixed_pattern(scene: ThermalScene, shape: tuple[int, int]) -> FloatArray:
    """The sensor's fixed-pattern offsets (the same every frame for one ``fpn_seed``)."""
    key = (scene.fpn_seed, scene.fpn_k, scene.column_fpn_k, shape)
    cached = _FPN_CACHE.get(key)
    if cached is None:
        fpn = np.random.Generator(np.random.PCG64(scene.fpn_seed))
        pixel = fpn.normal(0.0, scene.fpn_k, shape)
        column = fpn.normal(0.0, scene.column_fpn_k, shape[1])
        cached = np.asarray(pixel + column[None, :], dtype=np.float64)
        if len(_FPN_CACHE) > 8:
            _FPN_CACHE.clear()
        _FPN_CACHE[key] = cached
    return cached


def _disc(img: FloatArray, spot: HotSpot, value: float) -> None:
    r = spot.radius_px
    box = np.array([spot.u - r, spot.v - r, spot.u + r, spot.v + r])
    _paint(img, box, value)


def render_thermal(
    targets: Sequence[RenderTarget],
    intr: CameraIntrinsics,
    mount: CameraMount,
    pose: PlatformPose,
    rng: np.random.Generator,
    scene: ThermalScene | None = None,
) -> NDArray[np.uint16]:
    """One Y16 frame (``height × width``, ``uint16``) of ``targets`` seen by the camera."""
    sc = scene or ThermalScene()
    shape = (intr.height, intr.width)
    el = _elevation_map(intr, mount)
    span = sc.surface_k - sc.sky_k
    below = sc.sky_k + span * (1.0 - 0.6 * np.exp(np.minimum(el, 0.0) / 1.0))
    above = sc.sky_k + span * 0.4 * np.exp(-np.maximum(el, 0.0) / 2.0)
    img = np.where(el < 0.0, below, above) + _texture(rng, shape, sc.texture_k)
    boxes, ok, rng_m = target_boxes(targets, intr, mount, pose)
    # Far targets first, so nearer ones cover them.
    for i in np.argsort(-rng_m):
        if not ok[i]:
            continue
        b = boxes[i]
        u0, v1 = int(np.clip(b[0], 0, shape[1] - 1)), int(np.clip(b[3], 0, shape[0] - 1))
        local = float(img[v1, u0])
        tau = math.exp(-rng_m[i] / (sc.attenuation_km * 1000.0))
        _paint(img, b, local + (targets[i].temperature() - local) * tau)
    for spot in sc.hot_spots:
        _disc(img, spot, spot.temp_k)
    if sc.psf_sigma_px > 0:
        img = np.asarray(cv2.GaussianBlur(img, (0, 0), sc.psf_sigma_px), dtype=np.float64)
    img = img - sc.vignetting_k * _vignette(shape) + _fixed_pattern(sc, shape)
    img = img + rng.normal(0.0, sc.netd_k, shape)
    counts = np.rint((img - sc.offset_k) / sc.gain_k)
    return np.clip(counts, 0, 65535).astype(np.uint16)


def render_nightvision(
    targets: Sequence[RenderTarget],
    intr: CameraIntrinsics,
    mount: CameraMount,
    pose: PlatformPose,
    rng: np.random.Generator,
    scene: NightVisionScene | None = None,
) -> NDArray[np.uint8]:
    """One 8-bit low-light frame of ``targets``: dim surface, darker sky, targets a little
    brighter (an infrared illuminator), heavy noise, strong vignetting, saturated lights."""
    sc = scene or NightVisionScene()
    shape = (intr.height, intr.width)
    el = _elevation_map(intr, mount)
    img = np.where(el < 0.0, sc.surface_level, sc.sky_level).astype(np.float64)
    img += _texture(rng, shape, sc.texture_level)
    boxes, ok, rng_m = target_boxes(targets, intr, mount, pose)
    for i in np.argsort(-rng_m):
        if ok[i]:
            _paint(img, boxes[i], sc.target_level)
    for light in sc.lights:
        _disc(img, light, 255.0)
    if sc.psf_sigma_px > 0:
        img = np.asarray(cv2.GaussianBlur(img, (0, 0), sc.psf_sigma_px), dtype=np.float64)
    img *= 1.0 - sc.vignetting * _vignette(shape)
    img += rng.normal(0.0, sc.noise_level, shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def write_y16_sequence(frames: Iterable[NDArray[np.uint16]], directory: Path) -> list[Path]:
    """Write Y16 frames as ``frame_000000.png`` … (16-bit PNG) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        path = directory / f"frame_{i:06d}.png"
        if not cv2.imwrite(str(path), frame):
            raise OSError(f"cannot write {path}")
        paths.append(path)
    return paths


def write_video(frames: Iterable[NDArray[np.uint8]], path: Path, fps: float = 25.0) -> int:
    """Write 8-bit grey frames as an MJPG video (``.avi``); returns the number of frames."""
    writer: cv2.VideoWriter | None = None
    count = 0
    try:
        for frame in frames:
            if writer is None:
                h, w = frame.shape[:2]
                fourcc = cv2.VideoWriter.fourcc(*"MJPG")
                writer = cv2.VideoWriter(str(path), fourcc, fps, (w, h), isColor=False)
                if not writer.isOpened():
                    raise OSError(f"cannot open a video writer for {path}")
            writer.write(frame)
            count += 1
    finally:
        if writer is not None:
            writer.release()
    return count
