"""The node's camera stage: frames in, georeferenced camera detections out, off the event loop.

Detection costs milliseconds of CPU per frame, so it never runs on the event loop. Each camera
has a :class:`CameraStage`; the sensor stage (:mod:`borderwatch.edge.ingest`) calls
:meth:`CameraStage.submit` on the event loop with a frame and the platform pose at the frame's
time, which is taken there and then (the navigation estimate lives on the event loop). A worker
thread of the camera's own runs the frame detector (stateful: frames of one camera in order),
turns the pixel detections into fusion rows with
:func:`~borderwatch.sensors.camera.geometry.camera_detections` and leaves the batch for
:meth:`CameraStage.take`. The thread runs while frames wait and ends when none do, so a stopping
node has nothing to stop.

Every frame's ticket (:class:`~borderwatch.drivers.camera.FrameTicket`) goes back to its driver
with what became of the frame, so the camera's health counts it: ``frames_dropped`` (more than
``max_frames_in_flight`` waiting), ``no_position`` (no valid GNSS fix), ``no_heading``,
``detect_error`` (the detector raised; logged), ``bad_calibration`` or ``no_detector`` (the
camera cannot work: its calibration or model file did not load at start; the driver reports
``fault``). The node runs on in every case.

The platform pose is the node's own navigation estimate (a ``gps`` device: position, heading
from HDT/THS or course over ground) moved by the camera's lever arm
(:func:`~borderwatch.sensors.platform.sensor_pose`), or the camera's fixed ``site``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from borderwatch.config.camera import DetectorSettings, IntrinsicsSettings, MountSettings
from borderwatch.config.devices import AnyCamera, CameraSiteSettings
from borderwatch.drivers.base import LogLimiter
from borderwatch.drivers.camera import FrameTicket
from borderwatch.errors import ConfigError
from borderwatch.fusion.detections import DetectionBatch, MeasurementKind
from borderwatch.fusion.frames import LocalFrame
from borderwatch.sensors.camera.detect import FrameDetector, geometry_of, make_detector
from borderwatch.sensors.camera.geometry import (
    CameraIntrinsics,
    CameraMount,
    PlatformPose,
    camera_detections,
)
from borderwatch.sensors.navigation import NavState
from borderwatch.sensors.platform import sensor_pose

log = logging.getLogger(__name__)

#: Shortest interval between two log lines of the same kind per camera, s.
LOG_INTERVAL_S = 10.0
#: Detection times kept for the figures in :meth:`CameraStage.stats`.
TIMING_WINDOW = 500


@dataclass(frozen=True, slots=True, eq=False)
class _Job:
    t: float
    image: Any
    pose: PlatformPose
    ticket: FrameTicket
    submitted: float  # perf_counter at submit, s


def detector_settings(device: AnyCamera) -> DetectorSettings:
    """The device's detector settings with its intrinsics and mount filled in (the detector
    uses them for class hints from apparent size at range)."""
    intr = device.intrinsics
    if intr.calibration_file is not None:
        intrinsics = IntrinsicsSettings(calibration_file=intr.calibration_file)
    else:
        intrinsics = IntrinsicsSettings(
            width=device.width, height=device.height, hfov_deg=intr.hfov_deg
        )
    mount = MountSettings(**device.mount.geometry())
    return device.detector.model_copy(update={"intrinsics": intrinsics, "mount": mount})


def camera_geometry(device: AnyCamera) -> tuple[CameraIntrinsics, CameraMount]:
    """The camera's intrinsics and mount; :class:`ConfigError` for a calibration file that
    cannot be read or that describes another image size."""
    geometry = geometry_of(detector_settings(device))
    if geometry is None:  # both are always set by detector_settings
        raise ConfigError("camera intrinsics or mount missing")
    intr, mount = geometry
    if (intr.width, intr.height) != (device.width, device.height):
        raise ConfigError(
            f"calibration is for {intr.width}×{intr.height} pixels, the camera sends "
            f"{device.width}×{device.height}",
            path=device.intrinsics.calibration_file,
        )
    return intr, mount


def site_pose(site: CameraSiteSettings, frame: LocalFrame) -> PlatformPose:
    """A fixed camera's pose in the fusion frame."""
    en = frame.to_enu(np.array([site.lat_deg]), np.array([site.lon_deg]))[0]
    return PlatformPose(
        float(en[0]), float(en[1]), site.heading_deg, site.sigma_pos_m, site.sigma_heading_deg
    )


class CameraStage:
    """One camera's frames to detections in a worker thread. See the module docstring.

    Args:
        device: the camera's settings.
        sensor_index: the camera's index in the node's sensor table (provenance of rows).
        frame: the fusion frame.
        detector: a detector to use instead of the one the settings describe (tests, bench).
    """

    def __init__(
        self,
        device: AnyCamera,
        sensor_index: int,
        frame: LocalFrame,
        *,
        detector: FrameDetector | None = None,
    ) -> None:
        self.device = device
        self.sensor_id = device.sensor_id
        self.sensor_index = sensor_index
        self.frame = frame
        self.mount_offset_m = device.mount.offset_m
        self._logs = LogLimiter(log, LOG_INTERVAL_S, time.monotonic)
        #: Why the camera cannot work (counter key, detail), or None.
        self.fault: tuple[str, str] | None = None
        self.intrinsics: CameraIntrinsics | None = None
        self.mount = CameraMount(**device.mount.geometry())
        self.detector: FrameDetector | None = detector
        try:
            self.intrinsics, self.mount = camera_geometry(device)
        except ConfigError as exc:
            self._set_fault("bad_calibration", str(exc))
        if self.fault is None and self.detector is None:
            try:
                self.detector = make_detector(detector_settings(device))
            except (ConfigError, OSError, ValueError) as exc:
                self._set_fault("no_detector", str(exc))
        self._site = None if device.site is None else site_pose(device.site, frame)
        self._lock = threading.Lock()
        self._jobs: deque[_Job] = deque()
        self._results: list[DetectionBatch] = []
        self._working = False
        self._seconds: deque[float] = deque(maxlen=TIMING_WINDOW)
        self._delays: deque[float] = deque(maxlen=TIMING_WINDOW)
        #: Frames submitted, detected, and the pixel detections they gave.
        self.frames = 0
        self.processed = 0
        self.pixel_detections = 0

    def _set_fault(self, reason: str, detail: str) -> None:
        self.fault = (reason, detail)
        log.error(
            "camera %s cannot detect (%s): %s; its frames are dropped",
            self.sensor_id,
            reason,
            detail,
        )

    def pose(self, nav: NavState | None) -> PlatformPose | str:
        """The platform pose for a frame (the fixed site, or ``nav`` moved by the lever arm),
        or why there is none: ``no_position``, ``no_heading``."""
        if self._site is not None:
            return self._site
        if nav is None or not nav.valid:
            return "no_position"
        pose = PlatformPose.from_sensor_pose(sensor_pose(nav, self.mount_offset_m, 0.0, self.frame))
        return "no_heading" if pose is None else pose

    # ------------------------------------------------------------------ event loop side

    def submit(self, t: float, data: dict[str, Any], nav: NavState | None) -> str | None:
        """Queue a frame reading's data for detection at time ``t`` (node axis, s) with the
        platform state ``nav`` at ``t``; returns why the frame gives nothing, else None (its
        detections come later from :meth:`take`). Never blocks."""
        ticket = data.get("ticket")
        image = data.get("image")
        if not isinstance(ticket, FrameTicket) or not isinstance(image, np.ndarray):
            return "malformed"
        self.frames += 1
        if self.fault is not None:
            ticket.done(*self.fault)
            return self.fault[0]
        pose = self.pose(nav)
        if isinstance(pose, str):
            ticket.done(pose)
            return pose
        with self._lock:
            if len(self._jobs) >= self.device.max_frames_in_flight:
                ticket.done("frames_dropped", "detection is behind")
                return "frames_dropped"
            self._jobs.append(_Job(t, image, pose, ticket, time.perf_counter()))
            if not self._working:
                self._working = True
                threading.Thread(
                    target=self._work, name=f"detect {self.sensor_id}", daemon=True
                ).start()
        return None

    def has_results(self) -> bool:
        """Whether detections are waiting for :meth:`take`."""
        with self._lock:
            return bool(self._results)

    def take(self) -> list[DetectionBatch]:
        """The detection batches finished since the last call, in frame order."""
        with self._lock:
            results, self._results = self._results, []
        return results

    def idle(self) -> bool:
        """No frame waiting or being detected."""
        with self._lock:
            return not self._working

    def stats(self) -> dict[str, float]:
        """Frames in, detected, pixel detections; detection time per frame and the delay from
        :meth:`submit` to the frame's rows being ready (mean and 95th percentile, ms) over the
        last :data:`TIMING_WINDOW` frames."""
        with self._lock:
            seconds = np.array(self._seconds)
            delays = np.array(self._delays)
        out: dict[str, float] = {
            "frames": self.frames,
            "processed": self.processed,
            "pixel_detections": self.pixel_detections,
        }
        for name, values in (("detect", seconds), ("delay", delays)):
            out[f"{name}_ms_mean"] = float(values.mean() * 1e3) if values.size else 0.0
            out[f"{name}_ms_p95"] = float(np.percentile(values, 95) * 1e3) if values.size else 0.0
        return out

    # ------------------------------------------------------------------ worker thread

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    self._working = False
                    return
                job = self._jobs.popleft()
            self._detect(job)

    def _detect(self, job: _Job) -> None:
        assert self.detector is not None
        assert self.intrinsics is not None
        started = time.perf_counter()
        try:
            pixels = self.detector.detect(job.image)
            batch = camera_detections(
                pixels,
                self.intrinsics,
                self.mount,
                job.pose,
                job.t,
                self.sensor_index,
                pixel_sigma=self.device.pixel_sigma,
                max_range_m=self.device.max_range_m,
            )
        except Exception as exc:  # a detector failure loses this frame, not the camera
            self._logs.log(
                logging.ERROR,
                "detect_error",
                "camera %s: detection failed on a frame: %s: %s",
                self.sensor_id,
                type(exc).__name__,
                exc,
            )
            job.ticket.done("detect_error", f"{type(exc).__name__}: {exc}")
            return
        with self._lock:
            now = time.perf_counter()
            self._seconds.append(now - started)
            self._delays.append(now - job.submitted)
            self.processed += 1
            self.pixel_detections += len(pixels)
            if len(batch):
                self._results.append(batch)
        job.ticket.done()


# ---------------------------------------------------------------------------- bearing pairs

#: Longest time between two bearings paired into one position, s (frames of two cameras).
PAIR_MAX_DT_S = 0.2
#: Smallest angle between two paired rays, degrees (shallower crossings give no range).
PAIR_MIN_ANGLE_DEG = 5.0
#: Farthest intersection kept, m.
PAIR_MAX_RANGE_M = 5000.0
#: Speed allowed for the target between the two bearings' times (noise added), m/s.
PAIR_SPEED_MPS = 10.0


def triangulate_bearings(
    batch: DetectionBatch,
    max_dt_s: float = PAIR_MAX_DT_S,
    min_angle_deg: float = PAIR_MIN_ANGLE_DEG,
    max_range_m: float = PAIR_MAX_RANGE_M,
) -> DetectionBatch:
    """Bearing-only rows of two sensors that see one target, replaced by its position.

    The tracker starts tracks only from rows with a position (a bearing alone says nothing of
    the range), so two cameras that see a target only as bearings (low on the water, far off)
    could never start its track. Two bearings ``b₁``, ``b₂`` (clockwise from north) from
    sensors at ``p₁``, ``p₂`` meet where ``nᵢ·x = nᵢ·pᵢ`` with ``nᵢ = (cos bᵢ, −sin bᵢ)``;
    turning ray ``i`` by ``δbᵢ`` moves that line by ``rᵢ·δbᵢ`` (``rᵢ`` the range along it),
    so ``x`` has covariance ``J·diag(σ²_b₁, σ²_b₂)·Jᵀ`` with ``J = A⁻¹·diag(r₁, r₂)``, ``A``
    the matrix of the normals; plus ``(PAIR_SPEED_MPS·Δt)²`` per axis for the time between
    the bearings.

    A pair is made of rows of different sensors at most ``max_dt_s`` apart whose rays cross in
    front of both sensors at ``min_angle_deg`` or more, within ``max_range_m``. Only rows that
    belong to exactly one such pair are replaced (several targets in view give ambiguous
    crossings, ghosts: those bearings go on as they are). Each bearing is used once, either in
    a position or as itself. The position row takes the later time and sensor of the pair and
    the more confident class hint.
    """
    bo = np.flatnonzero(batch.kind == MeasurementKind.BEARING_ONLY)
    if bo.size < 2:
        return batch
    i, j = np.triu_indices(bo.size, k=1)
    i, j = bo[i], bo[j]
    keep = (batch.sensor[i] != batch.sensor[j]) & (np.abs(batch.t[i] - batch.t[j]) <= max_dt_s)
    i, j = i[keep], j[keep]
    if i.size == 0:
        return batch
    b1, b2 = batch.z[i, 0], batch.z[j, 0]
    p1, p2 = batch.sensor_xy[i], batch.sensor_xy[j]
    n1 = np.column_stack([np.cos(b1), -np.sin(b1)])
    n2 = np.column_stack([np.cos(b2), -np.sin(b2)])
    A = np.stack([n1, n2], axis=1)  # (k, 2, 2), rows the normals
    det = np.linalg.det(A)  # = sin(b₂ − b₁) up to sign
    crossing = np.abs(det) >= math.sin(math.radians(min_angle_deg))
    A_safe = np.where(crossing[:, None, None], A, np.eye(2))
    rhs = np.column_stack([np.sum(n1 * p1, axis=1), np.sum(n2 * p2, axis=1)])
    x = np.linalg.solve(A_safe, rhs[:, :, None])[:, :, 0]
    r1 = np.sum((x - p1) * np.column_stack([np.sin(b1), np.cos(b1)]), axis=1)
    r2 = np.sum((x - p2) * np.column_stack([np.sin(b2), np.cos(b2)]), axis=1)
    ok = crossing & (r1 > 0) & (r2 > 0) & (r1 <= max_range_m) & (r2 <= max_range_m)
    # Rows in exactly one good pair.
    counts = np.bincount(np.concatenate([i[ok], j[ok]]), minlength=len(batch))
    ok &= (counts[i] == 1) & (counts[j] == 1)
    if not np.any(ok):
        return batch
    i, j, x, r1, r2, A_safe = i[ok], j[ok], x[ok], r1[ok], r2[ok], A_safe[ok]
    J = np.linalg.inv(A_safe) * np.stack([r1, r2], axis=1)[:, None, :]
    var_b = np.stack([batch.R[i, 0, 0], batch.R[j, 0, 0]], axis=1)
    R = np.einsum("kab,kb,kcb->kac", J, var_b, J)
    dt = np.abs(batch.t[i] - batch.t[j])
    R += ((PAIR_SPEED_MPS * dt) ** 2)[:, None, None] * np.eye(2)
    later = np.where(batch.t[j] >= batch.t[i], j, i)
    surer = np.where(batch.cls_conf[j] > batch.cls_conf[i], j, i)
    n = i.size
    positions = DetectionBatch(
        t=batch.t[later],
        kind=np.full(n, MeasurementKind.POSITION, dtype=np.int64),
        z=x,
        R=R,
        sensor_xy=np.zeros((n, 2)),
        sensor=batch.sensor[later],
        cls=batch.cls[surer],
        cls_conf=batch.cls_conf[surer],
        identity=np.zeros(n, dtype=np.int64),
    )
    used = np.zeros(len(batch), dtype=bool)
    used[i] = True
    used[j] = True
    return DetectionBatch.concat([batch.take(~used), positions])


class BearingPairer:
    """Holds cameras' bearing-only rows up to ``max_dt_s`` so that a partner camera's rows of the
    same moment, finished by its own worker a little later, can be paired with them
    (:func:`triangulate_bearings`). Rows with a position pass at once; a bearing that finds no
    partner in time goes on as a bearing. At most ``max_dt_s`` of bearings are held, so the
    tracker's ``reorder_lag_s`` should cover that plus the detection delay.
    """

    def __init__(self, max_dt_s: float = PAIR_MAX_DT_S) -> None:
        self.max_dt_s = max_dt_s
        self._held = DetectionBatch.empty()

    def holding(self) -> bool:
        """Whether bearings wait for a partner."""
        return len(self._held) > 0

    def take(self, new: DetectionBatch, now: float | None) -> DetectionBatch:
        """``new`` and the held rows, paired where they can be; bearings younger than
        ``max_dt_s`` at ``now`` (node time, s) that found no partner are held back (all are
        released when ``now`` is None)."""
        rows = triangulate_bearings(DetectionBatch.concat([self._held, new]), self.max_dt_s)
        wait = rows.kind == MeasurementKind.BEARING_ONLY
        if now is None:
            wait[:] = False
        else:
            wait &= now - rows.t < self.max_dt_s
        self._held = rows.take(wait)
        return rows.take(~wait)
