"""Motion/measurement models and the batched IMM filter, checked against independent maths."""

from __future__ import annotations

import math

import numpy as np
import pytest
from filterpy.kalman import KalmanFilter
from hypothesis import given, settings
from hypothesis import strategies as st

from borderwatch.config.tracker import MotionMode
from borderwatch.fusion import imm
from borderwatch.fusion.detections import MeasurementKind
from borderwatch.fusion.models import (
    measure,
    mode_transition,
    to_cartesian,
    transition_matrices,
    wrap_angle,
)

CV = MotionMode(name="cv", q_m2ps3=0.1, sojourn_s=10.0)


def test_constant_velocity_transition_moves_by_velocity_times_dt():
    F, Q = transition_matrices([CV], 2.5)
    x = np.array([10.0, -4.0, 1.5, -2.0])
    np.testing.assert_allclose(F[0] @ x, [13.75, -9.0, 1.5, -2.0])
    # Continuous white-noise acceleration: var(position) = q dt³/3, var(velocity) = q dt.
    assert Q[0, 0, 0] == pytest.approx(0.1 * 2.5**3 / 3)
    assert Q[0, 2, 2] == pytest.approx(0.1 * 2.5)
    assert Q[0, 0, 2] == pytest.approx(0.1 * 2.5**2 / 2)
    assert Q[0, 0, 1] == 0.0


def test_turn_model_rotates_velocity_and_tends_to_cv():
    turn = MotionMode(name="left", q_m2ps3=0.1, turn_rate_dps=90.0, sojourn_s=5.0)
    F, _ = transition_matrices([turn], 1.0)
    x = np.array([0.0, 0.0, 1.0, 0.0])
    moved = F[0] @ x
    # A quarter turn counter-clockwise: heading east becomes heading north, on a circle of
    # radius v/ω = 2/π around (0, 2/π).
    np.testing.assert_allclose(moved[2:], [0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(moved[:2], [2 / math.pi, 2 / math.pi], atol=1e-12)
    slow = MotionMode(name="slow", q_m2ps3=0.1, turn_rate_dps=1e-9, sojourn_s=5.0)
    np.testing.assert_allclose(
        transition_matrices([slow], 3.0)[0], transition_matrices([CV], 3.0)[0]
    )


@given(st.floats(0.0, 100.0), st.floats(0.5, 100.0), st.floats(0.5, 100.0))
def test_mode_transition_is_a_stochastic_matrix(dt, s1, s2):
    modes = [
        MotionMode(name="a", q_m2ps3=0.1, sojourn_s=s1),
        MotionMode(name="b", q_m2ps3=1.0, sojourn_s=s2),
        MotionMode(name="c", q_m2ps3=2.0, sojourn_s=s1 + s2),
    ]
    Pi = mode_transition(modes, dt)
    assert np.all(Pi >= 0)
    np.testing.assert_allclose(Pi.sum(axis=1), 1.0)
    # Staying is at least as likely as under a pure exponential sojourn (returns add mass).
    assert Pi[0, 0] >= math.exp(-dt / s1) - 1e-9


def _numeric_jacobian(x, kind, sensor):
    eps = 1e-6
    J = np.zeros((2, 4))
    for k in range(4):
        dx = np.zeros(4)
        dx[k] = eps
        hp, _ = measure((x + dx)[None], np.array([kind]), sensor[None])
        hm, _ = measure((x - dx)[None], np.array([kind]), sensor[None])
        diff = hp[0] - hm[0]
        if kind != MeasurementKind.POSITION:
            diff[1 if kind == MeasurementKind.RANGE_BEARING else 0] = wrap_angle(
                diff[1 if kind == MeasurementKind.RANGE_BEARING else 0]
            )
        J[:, k] = diff / (2 * eps)
    return J


coord = st.floats(-5000, 5000, allow_nan=False)


@given(coord, coord, st.floats(-20, 20), st.floats(-20, 20), coord, coord)
def test_measurement_jacobians_match_finite_differences(px, py, vx, vy, sx, sy):
    x = np.array([px, py, vx, vy])
    sensor = np.array([sx, sy])
    if math.hypot(px - sx, py - sy) < 5.0:
        return  # the polar models are singular at the sensor itself
    for kind in MeasurementKind:
        _, H = measure(x[None], np.array([kind]), sensor[None])
        np.testing.assert_allclose(H[0], _numeric_jacobian(x, kind, sensor), atol=1e-5)


def test_bearing_is_clockwise_from_north():
    x = np.array([[0.0, 100.0, 0, 0], [100.0, 0.0, 0, 0], [0.0, -100.0, 0, 0]])
    kind = np.full(3, MeasurementKind.RANGE_BEARING)
    zhat, _ = measure(x, kind, np.zeros((3, 2)))
    np.testing.assert_allclose(zhat[:, 0], 100.0)
    np.testing.assert_allclose(np.abs(zhat[:, 1]), [0.0, math.pi / 2, math.pi])


def test_range_bearing_to_cartesian_and_back():
    z = np.array([[500.0, math.radians(30.0)]])
    R = np.diag([4.0, math.radians(1.0) ** 2])[None]
    sensor = np.array([[100.0, -50.0]])
    xy, C = to_cartesian(z, R, np.array([MeasurementKind.RANGE_BEARING]), sensor)
    np.testing.assert_allclose(xy[0], [100 + 250.0, -50 + 500 * math.cos(math.radians(30))])
    # Cross-range variance is (r σ_β)², range variance stays along the line of sight.
    eig = np.linalg.eigvalsh(C[0])
    np.testing.assert_allclose(sorted(eig), sorted([4.0, (500 * math.radians(1.0)) ** 2]))


def _single_mode_run(seed: int):
    """The batched IMM with one mode and filterpy's KalmanFilter on the same data."""
    rng = np.random.default_rng(seed)
    kf = KalmanFilter(dim_x=4, dim_z=2)
    kf.x = np.array([0.0, 0.0, 1.0, 0.5])
    kf.P = np.diag([25.0, 25.0, 4.0, 4.0])
    kf.H = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    kf.R = np.eye(2) * 9.0
    x = kf.x.copy()[None, None]
    P = kf.P.copy()[None, None]
    mu = np.ones((1, 1))
    for _ in range(30):
        dt = float(rng.uniform(0.2, 3.0))
        F, Q = transition_matrices([CV], dt)
        kf.F, kf.Q = F[0], Q[0]
        kf.predict()
        x, P, mu = imm.predict(x, P, mu, F, Q, np.ones((1, 1)))
        z = rng.normal(0, 20, 2)
        kf.update(z)
        x, P, mu = imm.update(
            x, P, mu, z[None], kf.R[None], np.array([MeasurementKind.POSITION]), np.zeros((1, 2))
        )
    return kf, x, P


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_single_mode_imm_equals_filterpy_kalman_filter(seed):
    kf, x, P = _single_mode_run(seed)
    np.testing.assert_allclose(x[0, 0], kf.x, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(P[0, 0], kf.P, rtol=1e-9, atol=1e-9)


def _random_spd(rng, n, scale):
    A = rng.normal(0, 1, (n, 4, 4))
    return A @ np.swapaxes(A, -1, -2) * scale + np.eye(4) * 0.1


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.01, 30.0), st.sampled_from(list(MeasurementKind)))
def test_imm_cycle_keeps_covariances_spd_and_probabilities_normalised(seed, dt, kind):
    rng = np.random.default_rng(seed)
    modes = [
        MotionMode(name="steady", q_m2ps3=0.01, sojourn_s=60),
        MotionMode(name="turn", q_m2ps3=0.5, turn_rate_dps=15, sojourn_s=5),
        MotionMode(name="jink", q_m2ps3=3.0, sojourn_s=3),
    ]
    n, m = 16, len(modes)
    x = rng.normal(0, 300, (n, m, 4))
    P = np.stack([_random_spd(rng, m, s) for s in rng.uniform(0.1, 50, n)])
    mu = rng.dirichlet(np.ones(m), n)
    F, Q = transition_matrices(modes, dt)
    x, P, mu = imm.predict(x, P, mu, F, Q, mode_transition(modes, dt))
    sensor = rng.normal(0, 2000, (n, 2))
    z = np.column_stack([rng.uniform(50, 3000, n), rng.uniform(-math.pi, math.pi, n)])
    if kind == MeasurementKind.POSITION:
        z = rng.normal(0, 300, (n, 2))
    R = np.tile(np.diag([25.0, 1e-4]), (n, 1, 1))
    kinds = np.full(n, kind)
    from borderwatch.fusion.models import padded_noise

    x, P, mu = imm.update(x, P, mu, z, padded_noise(R, kinds), kinds, sensor)
    for Pn in (P.reshape(-1, 4, 4), imm.combine(x, P, mu)[1]):
        np.testing.assert_allclose(Pn, np.swapaxes(Pn, -1, -2), atol=1e-9)
        assert np.all(np.linalg.eigvalsh(Pn) > 0)
    np.testing.assert_allclose(mu.sum(axis=1), 1.0)
    assert np.all(np.isfinite(x))


def test_imm_mode_probability_follows_a_manoeuvre():
    """After a sharp turn the manoeuvre mode must take over, and hand back when steady."""
    modes = [
        MotionMode(name="steady", q_m2ps3=0.01, sojourn_s=60),
        MotionMode(name="manoeuvre", q_m2ps3=2.0, sojourn_s=5),
    ]
    rng = np.random.default_rng(5)
    x = np.tile(np.array([0.0, 0.0, 5.0, 0.0]), (1, 2, 1))
    P = np.tile(np.diag([4.0, 4.0, 1.0, 1.0]), (1, 2, 1, 1))
    mu = np.array([[0.9, 0.1]])
    F, Q = transition_matrices(modes, 1.0)
    Pi = mode_transition(modes, 1.0)
    pos, vel = np.zeros(2), np.array([5.0, 0.0])
    history = []
    for k in range(60):
        if k == 30:
            vel = np.array([0.0, 5.0])  # a 90° turn in one second
        pos = pos + vel
        x, P, mu = imm.predict(x, P, mu, F, Q, Pi)
        z = pos + rng.normal(0, 1.0, 2)
        x, P, mu = imm.update(
            x,
            P,
            mu,
            z[None],
            np.eye(2)[None],
            np.array([MeasurementKind.POSITION]),
            np.zeros((1, 2)),
        )
        history.append(mu[0, 1])
    assert max(history[30:34]) > 0.8
    assert history[29] < 0.3
    assert history[-1] < 0.3
