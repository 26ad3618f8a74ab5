"""Camera geometry: pixels to bearings and elevations, world points to pixels, and camera
detections as measurements for the fusion core.

Frames and conventions:

* Pixels: OpenCV convention, ``u`` to the right, ``v`` down, the centre of pixel ``(i, j)`` at
  ``u = i``, ``v = j``. Intrinsics are a pinhole ``K`` with OpenCV distortion coefficients.
* Camera frame: ``x`` right, ``y`` down, ``z`` along the optical axis.
* World: local ENU metres ``(e, n, u)``, ``u`` the height above the water or the flat ground.
* Angles: azimuths in degrees clockwise from north (bearings) or from the platform's heading
  (relative azimuths); elevations in degrees above the horizontal (negative looks down).
* Mount: the optical axis is turned ``yaw_deg`` clockwise from the platform's heading and
  ``pitch_deg`` up from the horizontal; ``roll_deg`` turns the image clockwise as seen from
  behind the camera (a level horizon then slopes down to the right in the image).

A detection's foot point (the bottom centre of its box) seen below the horizon by a camera at
height ``H`` above flat ground or water gives a range ``r = H / tan(−ε)`` from its elevation
``ε``. Its uncertainty grows as ``H / sin²(−ε) · σ_ε`` near the horizon, so such rows are sent
as ``RANGE_BEARING`` only while that range is well conditioned, and as ``BEARING_ONLY``
otherwise (see :func:`camera_detections`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Self

import cv2
import numpy as np

from borderwatch.errors import ConfigError
from borderwatch.fusion.detections import (
    BoolArray,
    DetectionBatch,
    FloatArray,
    MeasurementKind,
    TargetClass,
)

if TYPE_CHECKING:
    from borderwatch.sensors.camera.detect import PixelDetection
    from borderwatch.sensors.platform import SensorPose

__all__ = [
    "CameraIntrinsics",
    "CameraMount",
    "PlatformPose",
    "camera_detections",
    "camera_rotation",
    "pixel_to_angles",
    "project_enu",
]

#: Class hint of each detector label in the fusion core.
LABEL_CLASS = {
    "person": TargetClass.PERSON,
    "group": TargetClass.PERSON,
    "boat": TargetClass.BOAT,
    "vehicle": TargetClass.VEHICLE,
    "unknown": TargetClass.UNKNOWN,
}
#: Default farthest range a camera row may claim from its elevation, m.
MAX_RANGE_M = 3000.0
#: A range is sent only while its 1-σ is at most this fraction of the range.
MAX_RANGE_REL_SIGMA = 0.3
#: Finite-difference steps for the Jacobians of the angles: pixels and degrees.
_DU_PX = 0.5
_DANGLE_DEG = 0.05


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics with OpenCV distortion.

    Attributes:
        width: image width, pixels.
        height: image height, pixels.
        K: 3×3 camera matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``, pixels.
        dist: OpenCV distortion coefficients ``(k1, k2, p1, p2[, k3...])``; zeros for none.
    """

    width: int
    height: int
    K: FloatArray
    dist: FloatArray

    def __post_init__(self) -> None:
        K = np.asarray(self.K, dtype=np.float64)
        dist = np.asarray(self.dist, dtype=np.float64).ravel()
        problems = []
        if self.width <= 0 or self.height <= 0:
            problems.append(f"image size {self.width}×{self.height} is not positive")
        if K.shape != (3, 3) or not np.all(np.isfinite(K)):
            problems.append("camera matrix must be a finite 3×3 matrix")
        elif K[0, 0] <= 0 or K[1, 1] <= 0:
            problems.append("focal lengths fx, fy must be positive")
        if dist.size not in (4, 5, 8, 12, 14) or not np.all(np.isfinite(dist)):
            problems.append("distortion must be 4, 5, 8, 12 or 14 finite coefficients")
        if problems:
            raise ValueError("; ".join(problems))
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "dist", dist)

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float) -> Self:
        """An ideal camera (square pixels, centred principal point, no distortion) whose
        horizontal field of view is ``hfov_deg``."""
        if not 0.0 < hfov_deg < 180.0:
            raise ValueError(f"horizontal field of view {hfov_deg:g}° is not in (0, 180)")
        f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        K = np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0, 0, 1.0]])
        return cls(width, height, K, np.zeros(5))

    @classmethod
    def from_opencv_file(cls, path: Path) -> Self:
        """Intrinsics from an OpenCV calibration file (``cv2.FileStorage`` YAML or XML, as
        ``cv2.calibrateCamera`` samples write them) with the nodes ``camera_matrix``,
        ``distortion_coefficients``, ``image_width`` and ``image_height``.

        Raises :class:`~borderwatch.errors.ConfigError` naming the file and the problem.
        """
        path = Path(path)
        if not path.is_file():
            raise ConfigError("calibration file not found", path=path)
        # OpenCV's parser reports a malformed file as cv2.error, or as a SystemError from the
        # binding's constructor; either way the operator needs the file name and the reason.
        try:
            fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
        except (cv2.error, SystemError) as exc:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            lines = str(cause).strip().splitlines()
            reason = lines[-1] if lines else "unreadable"
            raise ConfigError(f"not an OpenCV calibration file: {reason}", path=path) from exc
        try:
            if not fs.isOpened():
                raise ConfigError("not an OpenCV calibration file", path=path)
            K = _mat(fs, "camera_matrix", path)
            dist = _mat(fs, "distortion_coefficients", path)
            width = _int(fs, "image_width", path)
            height = _int(fs, "image_height", path)
        except (cv2.error, SystemError) as exc:
            raise ConfigError(f"unreadable calibration: {exc}", path=path) from exc
        finally:
            fs.release()
        try:
            return cls(width, height, K, dist)
        except ValueError as exc:
            raise ConfigError(f"bad calibration: {exc}", path=path) from exc

    def to_opencv_file(self, path: Path) -> None:
        """Write the intrinsics in the layout :meth:`from_opencv_file` reads."""
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
        try:
            fs.write("image_width", self.width)
            fs.write("image_height", self.height)
            fs.write("camera_matrix", self.K)
            fs.write("distortion_coefficients", self.dist.reshape(1, -1))
        finally:
            fs.release()


def _mat(fs: cv2.FileStorage, name: str, path: Path) -> FloatArray:
    node = fs.getNode(name)
    if node.empty():
        raise ConfigError(f"missing node {name!r}", path=path)
    mat = node.mat()
    if mat is None:
        raise ConfigError(f"node {name!r} is not a matrix", path=path)
    return np.asarray(mat, dtype=np.float64)


def _int(fs: cv2.FileStorage, name: str, path: Path) -> int:
    node = fs.getNode(name)
    if node.empty() or (not node.isReal() and not node.isInt()):
        raise ConfigError(f"missing or non-numeric node {name!r}", path=path)
    value = node.real()
    if not math.isfinite(value) or value != int(value):
        raise ConfigError(f"node {name!r} is not an integer: {value!r}", path=path)
    return int(value)


@dataclass(frozen=True)
class CameraMount:
    """How a camera is mounted on its platform (boat, vehicle, tower).

    Attributes:
        yaw_deg: optical axis relative to the platform heading, clockwise, degrees.
        pitch_deg: optical axis above the horizontal, degrees (negative looks down).
        roll_deg: image rotation, clockwise seen from behind the camera, degrees.
        height_m: camera height above the water or flat ground, metres.
        sigma_yaw_deg: 1-σ calibration error of the yaw, degrees.
        sigma_pitch_deg: 1-σ calibration error of the pitch (and of the platform's own
            pitching, for a boat), degrees.
        sigma_height_m: 1-σ of the height above the surface (waves, terrain), metres.
    """

    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    height_m: float = 2.0
    sigma_yaw_deg: float = 0.2
    sigma_pitch_deg: float = 0.2
    sigma_height_m: float = 0.2


@dataclass(frozen=True)
class PlatformPose:
    """Position and heading of the platform carrying the camera, in the fusion frame.

    Attributes:
        e: east, local ENU metres.
        n: north, local ENU metres.
        heading_deg: true heading, degrees clockwise from north.
        sigma_pos_m: 1-σ position error per axis, metres.
        sigma_heading_deg: 1-σ heading error, degrees.
    """

    e: float
    n: float
    heading_deg: float
    sigma_pos_m: float = 1.0
    sigma_heading_deg: float = 0.5

    @classmethod
    def from_sensor_pose(cls, pose: SensorPose) -> Self | None:
        """The pose of a sensor placed by :func:`borderwatch.sensors.platform.sensor_pose`
        (with the mount yaw 0, which the camera mount applies), or None without a heading.
        The position σ is the RMS of the covariance's two axes."""
        if pose.heading_deg is None:
            return None
        sigma = math.sqrt(max(float(np.trace(pose.xy_cov)) / 2.0, 0.0))
        return cls(pose.xy[0], pose.xy[1], pose.heading_deg, sigma, pose.heading_sigma_deg or 0.0)


def camera_rotation(mount: CameraMount, heading_deg: float = 0.0) -> FloatArray:
    """Rotation from ENU to camera axes (rows are the camera's x, y, z axes in ENU).

    ``heading_deg`` is the platform heading; 0 gives the rotation relative to the platform.
    """
    a = math.radians(heading_deg + mount.yaw_deg)
    p = math.radians(mount.pitch_deg)
    forward = np.array([math.sin(a) * math.cos(p), math.cos(a) * math.cos(p), math.sin(p)])
    right = np.array([math.cos(a), -math.sin(a), 0.0])
    down = np.cross(forward, right)
    r = math.radians(mount.roll_deg)
    cr, sr = math.cos(r), math.sin(r)
    x_axis = cr * right + sr * down
    y_axis = -sr * right + cr * down
    return np.stack([x_axis, y_axis, forward])


def pixel_to_angles(
    intr: CameraIntrinsics,
    mount: CameraMount,
    u: FloatArray | float,
    v: FloatArray | float,
) -> tuple[FloatArray, FloatArray]:
    """Azimuth relative to the platform heading (clockwise, degrees in (−180, 180]) and
    elevation (degrees, up positive) of pixels ``(u, v)``, undistorted by
    ``cv2.undistortPoints``. Arrays of any (equal) shape; the result has that shape."""
    uu, vv = np.broadcast_arrays(np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64))
    shape = uu.shape
    az, el = _ray_angles(_rays(intr, uu.ravel(), vv.ravel()), camera_rotation(mount))
    return az.reshape(shape), el.reshape(shape)


def _rays(intr: CameraIntrinsics, u: FloatArray, v: FloatArray) -> FloatArray:
    """Undistorted viewing rays ``(N, 3)`` in camera axes (``z = 1``) of pixels ``u, v``."""
    if u.shape[0] == 0:
        return np.zeros((0, 3))
    pts = np.stack([u, v], axis=-1).reshape(-1, 1, 2)
    norm = np.asarray(cv2.undistortPoints(pts, intr.K, intr.dist)).reshape(-1, 2)
    return np.column_stack([norm, np.ones(norm.shape[0])])


def _ray_angles(rays: FloatArray, R: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Azimuth (clockwise from the frame's north) and elevation, degrees, of camera rays
    under the rotation ``R`` (ENU to camera)."""
    world = rays @ R  # R.T @ ray for every row
    az = np.degrees(np.arctan2(world[:, 0], world[:, 1]))
    el = np.degrees(np.arctan2(world[:, 2], np.hypot(world[:, 0], world[:, 1])))
    return az, el


def project_enu(
    intr: CameraIntrinsics,
    mount: CameraMount,
    pose: PlatformPose,
    points_enu: FloatArray,
) -> tuple[FloatArray, BoolArray]:
    """Pixels ``(N, 2)`` of ENU points ``(N, 3)`` (up = height above the surface), and a mask
    of the points in front of the camera and inside the image."""
    pts = np.asarray(points_enu, dtype=np.float64).reshape(-1, 3)
    R = camera_rotation(mount, pose.heading_deg)
    centre = np.array([pose.e, pose.n, mount.height_m])
    cam = (pts - centre) @ R.T
    in_front = cam[:, 2] > 1e-6
    if pts.shape[0] == 0:
        return np.zeros((0, 2)), np.zeros(0, dtype=bool)
    rvec, _ = cv2.Rodrigues(R)
    tvec = -R @ centre
    projected, _ = cv2.projectPoints(pts.reshape(-1, 1, 3), rvec, tvec, intr.K, intr.dist)
    px = np.asarray(projected, dtype=np.float64).reshape(-1, 2)
    # Far outside the calibrated field, distortion polynomials fold back into the image: keep
    # only points whose undistorted direction is within the field as well.
    z = np.where(in_front, cam[:, 2], 1.0)
    ideal = (cam[:, :2] / z[:, None]) * [intr.fx, intr.fy] + intr.K[:2, 2]
    margin = 0.25 * max(intr.width, intr.height)
    inside_ideal = (
        (ideal[:, 0] > -margin)
        & (ideal[:, 0] < intr.width + margin)
        & (ideal[:, 1] > -margin)
        & (ideal[:, 1] < intr.height + margin)
    )
    inside = (
        (px[:, 0] >= -0.5)
        & (px[:, 0] < intr.width - 0.5)
        & (px[:, 1] >= -0.5)
        & (px[:, 1] < intr.height - 0.5)
    )
    return px, np.asarray(in_front & inside & inside_ideal, dtype=bool)


def camera_detections(
    dets: Sequence[PixelDetection],
    intr: CameraIntrinsics,
    mount: CameraMount,
    pose: PlatformPose,
    t: float,
    sensor: int,
    pixel_sigma: float = 0.5,
    max_range_m: float = MAX_RANGE_M,
) -> DetectionBatch:
    """Pixel detections of one frame as fusion rows measured from the platform position.

    Each box's foot point (the bottom centre, with the sub-pixel centroid's column) gives the
    azimuth and elevation. A row is ``RANGE_BEARING`` when the foot point is below the horizon,
    its flat-surface range ``H / tan(−ε)`` is within ``max_range_m`` and the range's 1-σ is at
    most :data:`MAX_RANGE_REL_SIGMA` of it; ``BEARING_ONLY`` otherwise.

    The noise ``R`` propagates, through the Jacobian of (range, bearing) with respect to them:
    the pixel error ``pixel_sigma`` (1-σ, both axes), the mount's yaw, pitch and height errors
    and the platform heading error; plus the platform position error ``sigma_pos_m`` seen along
    the line of sight (range) and across it (bearing, divided by the range; by
    ``max_range_m`` for bearing-only rows, whose range is unknown).
    """
    n = len(dets)
    if n == 0:
        return DetectionBatch.empty()
    u = np.array([d.cx for d in dets], dtype=np.float64)
    v = np.array([d.y + d.h - 0.5 for d in dets], dtype=np.float64)
    # The pixel and its four neighbours for the Jacobian, undistorted in one call.
    d = _DU_PX
    rays = _rays(
        intr, np.concatenate([u, u + d, u - d, u, u]), np.concatenate([v, v, v, v + d, v - d])
    )
    az_all, el_all = _ray_angles(rays, camera_rotation(mount))
    az, el = az_all[:n], el_all[:n]
    # Jacobian of (az, el) in degrees w.r.t. (u, v, yaw, pitch), by central differences.
    J = np.zeros((n, 2, 4))
    for col in (0, 1):
        plus, minus = (
            slice((1 + 2 * col) * n, (2 + 2 * col) * n),
            slice((2 + 2 * col) * n, (3 + 2 * col) * n),
        )
        J[:, 0, col] = _wrap_deg(az_all[plus] - az_all[minus]) / (2 * d)
        J[:, 1, col] = (el_all[plus] - el_all[minus]) / (2 * d)
    for col, field in ((2, "yaw_deg"), (3, "pitch_deg")):
        base = getattr(mount, field)
        up = camera_rotation(replace(mount, **{field: base + _DANGLE_DEG}))
        down = camera_rotation(replace(mount, **{field: base - _DANGLE_DEG}))
        ap, ep = _ray_angles(rays[:n], up)
        am, em = _ray_angles(rays[:n], down)
        J[:, 0, col] = _wrap_deg(ap - am) / (2 * _DANGLE_DEG)
        J[:, 1, col] = (ep - em) / (2 * _DANGLE_DEG)
    src = np.diag(
        [pixel_sigma**2, pixel_sigma**2, mount.sigma_yaw_deg**2, mount.sigma_pitch_deg**2]
    )
    C_angles = np.radians(np.radians(J @ src @ np.swapaxes(J, 1, 2)))  # rad²
    C_angles[:, 0, 0] += math.radians(pose.sigma_heading_deg) ** 2
    bearing = np.radians((pose.heading_deg + az) % 360.0)
    depression = np.radians(-el)
    H = mount.height_m
    # Above (or on) the horizon there is no flat-surface range: NaN, which no test passes.
    dep = np.where(depression > 1e-9, depression, np.nan)
    rng = H / np.tan(dep)
    dr_deps = -H / np.sin(dep) ** 2
    dr_dh = 1.0 / np.tan(dep)
    var_r = dr_deps**2 * C_angles[:, 1, 1] + (dr_dh * mount.sigma_height_m) ** 2
    # Range rises with the elevation (dr/dε = −dr/d(−ε)), hence the sign.
    cov_rb = -dr_deps * C_angles[:, 0, 1]
    sig2 = pose.sigma_pos_m**2
    rb = np.isfinite(rng) & (rng <= max_range_m) & (np.sqrt(var_r) <= MAX_RANGE_REL_SIGMA * rng)
    z = np.zeros((n, 2))
    R = np.zeros((n, 2, 2))
    kind = np.where(rb, MeasurementKind.RANGE_BEARING, MeasurementKind.BEARING_ONLY)
    r_safe = np.where(rb, rng, 1.0)
    z[:, 0] = np.where(rb, r_safe, bearing)
    z[:, 1] = np.where(rb, bearing, np.nan)
    # The platform position error: along the line of sight in range, across it in bearing.
    R[:, 0, 0] = np.where(rb, var_r + sig2, C_angles[:, 0, 0] + sig2 / max_range_m**2)
    R[:, 1, 1] = np.where(rb, C_angles[:, 0, 0] + sig2 / r_safe**2, 0.0)
    R[:, 0, 1] = R[:, 1, 0] = np.where(rb, cov_rb, 0.0)
    cls = np.array([LABEL_CLASS.get(d.label, TargetClass.UNKNOWN) for d in dets], dtype=np.int64)
    conf = np.array([getattr(d, "label_conf", d.score) for d in dets], dtype=np.float64)
    return DetectionBatch(
        t=np.full(n, float(t)),
        kind=kind.astype(np.int64),
        z=z,
        R=R,
        sensor_xy=np.tile([pose.e, pose.n], (n, 1)).astype(np.float64),
        sensor=np.full(n, sensor, dtype=np.int64),
        cls=cls,
        cls_conf=np.clip(conf, 0.0, 1.0),
    )


def _wrap_deg(a: FloatArray) -> FloatArray:
    return np.asarray((a + 180.0) % 360.0 - 180.0, dtype=np.float64)
