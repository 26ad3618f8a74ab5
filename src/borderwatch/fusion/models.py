"""Motion and measurement models, evaluated for many tracks at once.

State: ``x = [x_m, y_m, vx_mps, vy_mps]`` in the local ENU frame. Arrays carry leading batch
dimensions; the last one or two are the state/measurement dimensions.

Motion: each IMM mode is a coordinated turn at a fixed rate ω (ω = 0 is constant velocity) with
continuous white acceleration noise of spectral density ``q`` per axis. For ω = 0 the discrete
process noise is filterpy's ``Q_continuous_white_noise``; for ω ≠ 0 the same matrix is used, a
standard approximation at the turn rates (≤ 20°/s) and intervals (≤ a few s) of interest.

Measurements (see :mod:`borderwatch.fusion.detections`): position ``h(x) = (x, y)``;
range-bearing ``h(x) = (r, β)`` with ``r = |p - s|`` and ``β = atan2(Δx, Δy)`` measured clockwise
from north; bearing-only ``h(x) = β``, carried as a 2-vector whose second component has a zero
Jacobian row, so it takes no part in the update but keeps every batch the same shape.
"""

from __future__ import annotations

import math

import numpy as np
from filterpy.common import Q_continuous_white_noise
from scipy.linalg import expm

from borderwatch.config.tracker import MotionMode
from borderwatch.fusion.detections import FloatArray, IntArray, MeasurementKind


def transition_matrices(modes: list[MotionMode], dt: float) -> tuple[FloatArray, FloatArray]:
    """State transition ``F`` and process noise ``Q`` per mode for a step of ``dt`` seconds.

    Returns arrays of shape ``(M, 4, 4)``.
    """
    F = np.empty((len(modes), 4, 4))
    Q = np.empty((len(modes), 4, 4))
    for j, mode in enumerate(modes):
        F[j] = _turn_matrix(math.radians(mode.turn_rate_dps), dt)
        if dt > 0:
            Q[j] = Q_continuous_white_noise(
                dim=2, dt=dt, spectral_density=mode.q_m2ps3, block_size=2, order_by_dim=False
            )
        else:
            Q[j] = 0.0
    return F, Q


def _turn_matrix(omega: float, dt: float) -> FloatArray:
    if abs(omega * dt) < 1e-9:
        return np.array(
            [[1.0, 0.0, dt, 0.0], [0.0, 1.0, 0.0, dt], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
        )
    s, c = math.sin(omega * dt), math.cos(omega * dt)
    return np.array(
        [
            [1.0, 0.0, s / omega, -(1.0 - c) / omega],
            [0.0, 1.0, (1.0 - c) / omega, s / omega],
            [0.0, 0.0, c, -s],
            [0.0, 0.0, s, c],
        ]
    )


def mode_transition(modes: list[MotionMode], dt: float) -> FloatArray:
    """Markov mode-switch probabilities ``Π[i, j] = P(mode j at t+dt | mode i at t)``.

    A continuous-time chain: mode ``i`` is left at rate ``1/sojourn_i`` to the others uniformly,
    so scans at irregular times get consistent switching probabilities.
    """
    m = len(modes)
    if m == 1:
        return np.ones((1, 1))
    rate = np.array([1.0 / mode.sojourn_s for mode in modes])
    G = np.repeat((rate / (m - 1))[:, None], m, axis=1)
    np.fill_diagonal(G, -rate)
    P = expm(G * max(dt, 0.0))
    P = np.clip(P, 0.0, 1.0)
    return np.asarray(P / P.sum(axis=1, keepdims=True), dtype=np.float64)


def wrap_angle(a: FloatArray) -> FloatArray:
    """Angles wrapped to ``[-π, π)``."""
    return np.asarray((a + np.pi) % (2.0 * np.pi) - np.pi, dtype=np.float64)


def measure(x: FloatArray, kind: IntArray, sensor_xy: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Predicted measurement ``h(x)`` and Jacobian ``H`` for each (state, detection) pair.

    Args:
        x: states ``(..., 4)``.
        kind: :class:`MeasurementKind` per pair, broadcastable to ``x.shape[:-1]``.
        sensor_xy: sensor positions ``(..., 2)``, broadcastable likewise.

    Returns:
        ``zhat (..., 2)`` and ``H (..., 2, 4)``.
    """
    lead = x.shape[:-1]
    kind = np.broadcast_to(kind, lead)
    sensor_xy = np.broadcast_to(sensor_xy, (*lead, 2))
    zhat = x[..., :2].copy()
    H = np.zeros((*lead, 2, 4))
    H[..., 0, 0] = 1.0
    H[..., 1, 1] = 1.0
    polar = kind != MeasurementKind.POSITION
    if np.any(polar):
        d = x[..., :2] - sensor_xy
        dx, dy = d[..., 0], d[..., 1]
        r2 = np.maximum(dx * dx + dy * dy, 1e-6)
        r = np.sqrt(r2)
        bearing = np.arctan2(dx, dy)
        rb = kind == MeasurementKind.RANGE_BEARING
        bo = kind == MeasurementKind.BEARING_ONLY
        # Range-bearing rows.
        zhat[..., 0] = np.where(rb, r, np.where(bo, bearing, zhat[..., 0]))
        zhat[..., 1] = np.where(rb, bearing, np.where(bo, 0.0, zhat[..., 1]))
        h00 = np.where(rb, dx / r, np.where(bo, dy / r2, 1.0))
        h01 = np.where(rb, dy / r, np.where(bo, -dx / r2, 0.0))
        h10 = np.where(rb, dy / r2, 0.0)
        h11 = np.where(rb, -dx / r2, np.where(bo, 0.0, 1.0))
        H[..., 0, 0], H[..., 0, 1] = h00, h01
        H[..., 1, 0], H[..., 1, 1] = h10, h11
    return zhat, H


def innovation(z: FloatArray, zhat: FloatArray, kind: IntArray) -> FloatArray:
    """``z - h(x)`` with bearing components wrapped; bearing-only's padding component is 0."""
    kind = np.broadcast_to(kind, zhat.shape[:-1])
    y = np.broadcast_to(z, zhat.shape) - zhat
    y = np.where(np.isfinite(y), y, 0.0)  # only the unused padding can be non-finite
    rb = kind == MeasurementKind.RANGE_BEARING
    bo = kind == MeasurementKind.BEARING_ONLY
    y[..., 1] = np.where(rb, wrap_angle(y[..., 1]), np.where(bo, 0.0, y[..., 1]))
    y[..., 0] = np.where(bo, wrap_angle(y[..., 0]), y[..., 0])
    return np.asarray(y, dtype=np.float64)


def padded_noise(R: FloatArray, kind: IntArray) -> FloatArray:
    """Measurement covariances with bearing-only's unused component set to a unit variance."""
    R = R.copy()
    bo = kind == MeasurementKind.BEARING_ONLY
    R[bo, 0, 1] = R[bo, 1, 0] = 0.0
    R[bo, 1, 1] = 1.0
    return R


def measurement_dof(kind: IntArray) -> IntArray:
    """Degrees of freedom of each detection's measurement (2, or 1 for bearing-only)."""
    return np.where(kind == MeasurementKind.BEARING_ONLY, 1, 2).astype(np.int64)


def to_cartesian(
    z: FloatArray, R: FloatArray, kind: IntArray, sensor_xy: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Position and 2×2 covariance of position and range-bearing detections.

    Range-bearing is converted by the first-order (Jacobian) transform, adequate when the
    bearing noise times range is small against the range noise scale it is used for
    (initiation and gating pre-filter). Bearing-only rows are returned as NaN.
    """
    xy = z.copy()
    C = R.copy()
    rb = kind == MeasurementKind.RANGE_BEARING
    if np.any(rb):
        r, b = z[rb, 0], z[rb, 1]
        sb, cb = np.sin(b), np.cos(b)
        xy[rb] = sensor_xy[rb] + np.column_stack([r * sb, r * cb])
        J = np.zeros((int(rb.sum()), 2, 2))
        J[:, 0, 0], J[:, 0, 1] = sb, r * cb
        J[:, 1, 0], J[:, 1, 1] = cb, -r * sb
        C[rb] = J @ R[rb] @ np.swapaxes(J, -1, -2)
    bo = kind == MeasurementKind.BEARING_ONLY
    xy[bo] = np.nan
    C[bo] = np.nan
    return xy, C
