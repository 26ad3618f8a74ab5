"""Interacting multiple model (IMM) filtering, batched over tracks with numpy.

Shapes: ``N`` tracks, ``M`` modes, state dimension 4.

* ``x``: mode-conditioned means ``(N, M, 4)``
* ``P``: mode-conditioned covariances ``(N, M, 4, 4)``
* ``mu``: mode probabilities ``(N, M)``

The cycle (Blom & Bar-Shalom 1988; Bar-Shalom, Li & Kirubarajan, *Estimation with Applications
to Tracking and Navigation*, §11.6):

1. mixing: ``c_j = Σ_i Π_ij μ_i``, ``μ_{i|j} = Π_ij μ_i / c_j``,
   ``x0_j = Σ_i μ_{i|j} x_i``, ``P0_j = Σ_i μ_{i|j} (P_i + (x_i - x0_j)(x_i - x0_j)ᵀ)``;
2. mode-matched prediction ``x_j ← F_j x0_j``, ``P_j ← F_j P0_j F_jᵀ + Q_j``, ``μ ← c``;
3. mode-matched EKF update with likelihoods ``Λ_j = N(y_j; 0, S_j)``, ``μ_j ∝ Λ_j c_j``;
4. combination for output: ``x = Σ μ_j x_j``, ``P = Σ μ_j (P_j + (x_j - x)(x_j - x)ᵀ)``.

With one mode this reduces exactly to the (extended) Kalman filter; the test-suite checks that
against filterpy's ``KalmanFilter``. Every function is pure: it returns new arrays.
"""

from __future__ import annotations

import numpy as np

from borderwatch.fusion.detections import FloatArray, IntArray, MeasurementKind
from borderwatch.fusion.models import innovation, measure


def symmetrize(P: FloatArray) -> FloatArray:
    """``(P + Pᵀ) / 2`` over the last two axes: rounding must not make covariances asymmetric."""
    return np.asarray(0.5 * (P + np.swapaxes(P, -1, -2)), dtype=np.float64)


def inv2(S: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Inverse and determinant of symmetric 2×2 matrices ``(..., 2, 2)``, in closed form.

    Several times faster than ``numpy.linalg.inv`` on thousands of tiny matrices.
    """
    a, b, d = S[..., 0, 0], S[..., 0, 1], S[..., 1, 1]
    det = a * d - b * b
    inv = np.empty_like(S)
    inv[..., 0, 0] = d / det
    inv[..., 1, 1] = a / det
    inv[..., 0, 1] = inv[..., 1, 0] = -b / det
    return inv, det


def max_eig2(C: FloatArray) -> FloatArray:
    """Largest eigenvalue of symmetric 2×2 matrices ``(..., 2, 2)``, in closed form."""
    a, b, d = C[..., 0, 0], C[..., 0, 1], C[..., 1, 1]
    half = 0.5 * (a - d)
    return np.asarray(0.5 * (a + d) + np.sqrt(half * half + b * b), dtype=np.float64)


def predict(
    x: FloatArray,
    P: FloatArray,
    mu: FloatArray,
    F: FloatArray,
    Q: FloatArray,
    Pi: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """IMM mixing and mode-matched prediction of all tracks over one interval.

    Args:
        x, P, mu: current mode-conditioned estimates (see module docstring).
        F, Q: per-mode transition and process noise, ``(M, 4, 4)``.
        Pi: mode transition probabilities ``(M, M)`` for this interval.

    Returns:
        Predicted ``x, P, mu``.
    """
    c = mu @ Pi  # (N, M): predicted mode probabilities
    c_safe = np.maximum(c, 1e-300)
    w = Pi[None, :, :] * mu[:, :, None] / c_safe[:, None, :]  # (N, i, j): μ_{i|j}
    wt = np.swapaxes(w, 1, 2)  # (N, j, i)
    n, m = x.shape[0], x.shape[1]
    x0 = wt @ x  # (N, j, 4)
    dx = x[:, None, :, :] - x0[:, :, None, :]  # (N, j, i, 4)
    wdx = wt[..., None] * dx
    P0 = (wt @ P.reshape(n, m, 16)).reshape(n, m, 4, 4) + np.swapaxes(wdx, -1, -2) @ dx
    xp = np.einsum("jab,njb->nja", F, x0)
    Pp = F[None] @ P0 @ np.swapaxes(F, -1, -2)[None] + Q[None]
    return xp, symmetrize(Pp), c


def combine(x: FloatArray, P: FloatArray, mu: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Moment-matched single Gaussian ``(N, 4)``, ``(N, 4, 4)`` of the mode mixture."""
    xc = np.einsum("nj,njd->nd", mu, x)
    if x.shape[1] == 1:
        return xc, P[:, 0].copy()
    dx = x - xc[:, None, :]
    wdx = mu[..., None] * dx
    Pc = np.einsum("nj,njab->nab", mu, P) + np.swapaxes(wdx, -1, -2) @ dx
    return xc, symmetrize(Pc)


def update(
    x: FloatArray,
    P: FloatArray,
    mu: FloatArray,
    z: FloatArray,
    R: FloatArray,
    kind: IntArray,
    sensor_xy: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mode-matched update of ``K`` tracks, each with one detection, and new mode probabilities.

    Args:
        x, P, mu: predicted estimates of the updated tracks, ``(K, M, 4)`` etc.
        z: measurements ``(K, 2)``; R: their (padded) noise ``(K, 2, 2)``.
        kind: measurement kinds ``(K,)``; sensor_xy: sensor positions ``(K, 2)``.

    Returns:
        Updated ``x, P, mu``. Position detections (linear, ``H = [I 0]``) take a direct path;
        range-bearing and bearing-only detections an EKF update in Joseph form.
    """
    xu = np.empty_like(x)
    Pu = np.empty_like(P)
    loglik = np.empty(x.shape[:2])
    linear = kind == MeasurementKind.POSITION
    for rows, step in ((linear, _update_linear), (~linear, _update_ekf)):
        if np.any(rows):
            xu[rows], Pu[rows], loglik[rows] = step(
                x[rows], P[rows], z[rows], R[rows], kind[rows], sensor_xy[rows]
            )
    loglik -= loglik.max(axis=1, keepdims=True)
    w = mu * np.exp(loglik)
    mu_u = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-300)
    return xu, symmetrize(Pu), mu_u


def _update_linear(
    x: FloatArray,
    P: FloatArray,
    z: FloatArray,
    R: FloatArray,
    _kind: IntArray,
    _sensor_xy: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Kalman update for position measurements: ``S = P_pp + R``, ``P⁺ = P - G P_p·``."""
    PHt = P[..., :, :2]
    S = symmetrize(P[..., :2, :2] + R[:, None])
    S_inv, det = inv2(S)
    G = PHt @ S_inv
    y = z[:, None, :] - x[..., :2]
    xu = x + np.einsum("kmab,kmb->kma", G, y)
    Pu = P - G @ P[..., :2, :]
    d2 = np.einsum("kma,kmab,kmb->km", y, S_inv, y)
    return xu, Pu, -0.5 * (d2 + np.log(det))


def _update_ekf(
    x: FloatArray,
    P: FloatArray,
    z: FloatArray,
    R: FloatArray,
    kind: IntArray,
    sensor_xy: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """EKF update for range-bearing and bearing-only measurements (Joseph form)."""
    K_, M = x.shape[0], x.shape[1]
    kind_km = np.broadcast_to(kind[:, None], (K_, M))
    zhat, H = measure(x, kind_km, sensor_xy[:, None, :])
    y = innovation(z[:, None, :], zhat, kind_km)
    Ht = np.swapaxes(H, -1, -2)
    PHt = P @ Ht
    S = symmetrize(H @ PHt + R[:, None])
    S_inv, det = inv2(S)
    G = PHt @ S_inv  # Kalman gain (K, M, 4, 2)
    xu = x + (G @ y[..., None])[..., 0]
    I_GH = np.eye(4) - G @ H
    Pu = I_GH @ P @ np.swapaxes(I_GH, -1, -2) + G @ R[:, None] @ np.swapaxes(G, -1, -2)
    d2 = (y[..., None, :] @ S_inv @ y[..., :, None])[..., 0, 0]
    return xu, Pu, -0.5 * (d2 + np.log(det))


def gate_statistics(
    xc: FloatArray,
    Pc: FloatArray,
    z: FloatArray,
    R: FloatArray,
    kind: IntArray,
    sensor_xy: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Mahalanobis distance² and ``ln det S`` for (track, detection) pairs.

    All arguments are per pair: combined track state ``(K, 4)``, covariance ``(K, 4, 4)``, and the
    detection's ``z``, padded ``R``, ``kind``, ``sensor_xy``.
    """
    zhat, H = measure(xc, kind, sensor_xy)
    y = innovation(z, zhat, kind)
    S = symmetrize(H @ Pc @ np.swapaxes(H, -1, -2) + R)
    S_inv, det = inv2(S)
    d2 = (y[:, None, :] @ S_inv @ y[:, :, None])[:, 0, 0]
    return d2, np.log(det)
