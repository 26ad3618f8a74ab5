"""Simulated CO2 probe readings during a cargo inspection, with people hidden or not.

Physical model (single well-mixed zone, first-order mass balance):

    V dC/dt = G + Q (C_amb - C),   G = n * e,   Q = ACH * V

with ``C`` the cargo concentration, ``V`` the cargo volume (m³), ``n`` the number of people,
``e`` the CO2 each exhales (m³/h; 18 L/h is an adult at rest), ``Q`` the air exchanged with the
outside (m³/h, ``ACH`` air changes per hour) and ``C_amb`` the outside (ambient) concentration.
Starting at ambient when the doors closed, the closed-form solution after ``c`` seconds is

    C(c) = C_amb + g (1 - exp(-λ c)) / λ,   g = 1e6 G / (3600 V) ppm/s,   λ = ACH / 3600 1/s

(``C_amb + g c`` when ``λ = 0``), rising towards the steady state ``C_amb + 1e6 G / Q``.

The probe reads the ambient air before ``sample_start_s`` and after ``sample_end_s`` and the cargo
air in between, when the space has been closed for ``closed_for_s + (t - sample_start_s)``
seconds. Its sensor follows the air it samples with a first-order lag (time constant
``response_tau_s``), computed in closed form for each input piece, and each reading carries
independent Gaussian noise. The probe's own sample flow is neglected: it is tiny against the
cargo volume.

Times are seconds on any axis the caller chooses (the same as ``sample_start_s``); they need not
be sorted or evenly spaced, because every reading is computed directly from its time.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

#: Seconds per hour.
_S_PER_H = 3600.0


def co2_series(
    times_s: FloatArray,
    *,
    persons: int,
    volume_m3: float = 67.0,
    ambient_ppm: float = 420.0,
    air_changes_per_h: float = 0.5,
    sample_start_s: float,
    sample_end_s: float | None = None,
    closed_for_s: float = 1800.0,
    exhale_l_per_h: float = 18.0,
    response_tau_s: float = 8.0,
    noise_ppm: float = 5.0,
    rng: np.random.Generator,
) -> FloatArray:
    """CO2 readings of a probe put into a closed cargo space, ppm, one per time in ``times_s``.

    Args:
        times_s: reading times, s.
        persons: people in the cargo space (0 for an empty one).
        volume_m3: free air volume of the cargo space, m³ (67 m³: a 40 ft container).
        ambient_ppm: outside air concentration, ppm.
        air_changes_per_h: air exchange of the closed space with the outside, 1/h.
        sample_start_s: time the probe enters the cargo space, s.
        sample_end_s: time it is withdrawn, s; None when it stays in to the end.
        closed_for_s: how long the space had been closed at ``sample_start_s``, s.
        exhale_l_per_h: CO2 exhaled per person, L/h (about 18 L/h at rest, more when active).
        response_tau_s: time constant of the sensor's first-order response, s (0: none).
        noise_ppm: standard deviation of the Gaussian reading noise, ppm.
        rng: random generator for the noise; the result is a function of it and the arguments.

    Returns:
        Readings in ppm, same shape as ``times_s``.

    Raises:
        ValueError: on a negative count, rate, time constant or noise, a volume that is not
            positive, or a sample that ends before it starts.
    """
    _check_arguments(
        persons=persons,
        volume_m3=volume_m3,
        air_changes_per_h=air_changes_per_h,
        sample_start_s=sample_start_s,
        sample_end_s=sample_end_s,
        closed_for_s=closed_for_s,
        exhale_l_per_h=exhale_l_per_h,
        response_tau_s=response_tau_s,
        noise_ppm=noise_ppm,
    )
    t = np.asarray(times_s, dtype=np.float64)
    g = 1e6 * persons * exhale_l_per_h / 1000.0 / (_S_PER_H * volume_m3)
    lam = air_changes_per_h / _S_PER_H
    end = math.inf if sample_end_s is None else sample_end_s

    excess = np.zeros_like(t)
    inside = (t >= sample_start_s) & (t < end)
    excess[inside] = _lagged_cargo_excess(
        t[inside] - sample_start_s, g, lam, closed_for_s, response_tau_s
    )
    if sample_end_s is not None:
        after = t >= end
        at_end = _lagged_cargo_excess(
            np.array([end - sample_start_s]), g, lam, closed_for_s, response_tau_s
        )[0]
        excess[after] = at_end * _decay(t[after] - end, response_tau_s)
    return ambient_ppm + excess + noise_ppm * rng.standard_normal(t.shape)


def transient_ppm(
    times_s: FloatArray,
    *,
    start_s: float,
    duration_s: float,
    peak_ppm: float,
    response_tau_s: float = 8.0,
) -> FloatArray:
    """A short plume the probe passes through (exhaust, an officer's breath), ppm above ambient.

    The air the probe samples carries ``peak_ppm`` extra CO2 from ``start_s`` for ``duration_s``
    seconds and none otherwise; the sensor follows it with the same first-order lag as
    :func:`co2_series`, so the reading rises towards ``peak_ppm`` and decays after. Add the
    result to a series from :func:`co2_series`.

    Args:
        times_s: reading times, s.
        start_s: time the plume reaches the probe, s.
        duration_s: how long it lasts, s (not negative).
        peak_ppm: its CO2 above the air around it, ppm.
        response_tau_s: time constant of the sensor's first-order response, s (0: none).

    Returns:
        The extra reading in ppm, same shape as ``times_s``.
    """
    if duration_s < 0.0 or response_tau_s < 0.0:
        raise ValueError("duration_s and response_tau_s must not be negative")
    t = np.asarray(times_s, dtype=np.float64)
    end = start_s + duration_s
    out = np.zeros_like(t)
    during = (t >= start_s) & (t < end)
    out[during] = peak_ppm * (1.0 - _decay(t[during] - start_s, response_tau_s))
    after = t >= end
    at_end = peak_ppm * (1.0 - _decay(np.array([duration_s]), response_tau_s)[0])
    out[after] = at_end * _decay(t[after] - end, response_tau_s)
    return out


def _check_arguments(
    *,
    persons: int,
    volume_m3: float,
    air_changes_per_h: float,
    sample_start_s: float,
    sample_end_s: float | None,
    closed_for_s: float,
    exhale_l_per_h: float,
    response_tau_s: float,
    noise_ppm: float,
) -> None:
    """Raise ValueError on arguments that describe no physical inspection."""
    if persons < 0:
        raise ValueError(f"persons must not be negative, got {persons}")
    if not volume_m3 > 0.0:
        raise ValueError(f"volume_m3 must be positive, got {volume_m3}")
    for name, value in (
        ("air_changes_per_h", air_changes_per_h),
        ("closed_for_s", closed_for_s),
        ("exhale_l_per_h", exhale_l_per_h),
        ("response_tau_s", response_tau_s),
        ("noise_ppm", noise_ppm),
    ):
        if not value >= 0.0:
            raise ValueError(f"{name} must not be negative, got {value}")
    if sample_end_s is not None and sample_end_s < sample_start_s:
        raise ValueError("sample_end_s is before sample_start_s")


def _decay(dt_s: FloatArray, tau_s: float) -> FloatArray:
    """exp(-dt/τ): what remains of a step ``dt_s`` seconds after it, for a first-order sensor."""
    if tau_s == 0.0:
        return np.where(dt_s > 0.0, 0.0, 1.0)
    return np.exp(-dt_s / tau_s)


def _lagged_cargo_excess(
    s: FloatArray, g: float, lam: float, closed_for_s: float, tau_s: float
) -> FloatArray:
    """Sensor reading above ambient ``s`` seconds after the probe entered the cargo space, ppm.

    The cargo excess is ``E(c) = g (1 - exp(-λ c)) / λ`` after ``c`` seconds closed, and
    ``E(c0 + s) = E(c0) + exp(-λ c0) E(s)``: a step of ``E(c0)`` when the probe goes in plus a
    scaled copy of the growth from zero. Each passes through the first-order sensor (rate
    ``k = 1/τ``, starting at ambient) in closed form:

    * step ``E0``: ``E0 (1 - exp(-k s))``;
    * growth ``E(s)``: ``g/λ [(1 - exp(-k s)) - k/(k - λ) (exp(-λ s) - exp(-k s))]``, which tends
      to the ramp response ``g (s - τ (1 - exp(-k s)))`` as ``λ → 0``.
    """
    e0 = float(_cargo_excess(np.float64(closed_for_s), g, lam))
    if tau_s == 0.0:
        return e0 + math.exp(-lam * closed_for_s) * _cargo_excess(s, g, lam)
    k = 1.0 / tau_s
    lagged_step = 1.0 - np.exp(-k * s)
    if lam == 0.0:
        growth = g * (s - tau_s * lagged_step)
    elif math.isclose(k, lam, rel_tol=1e-9):
        # k/(k-λ) (e^{-λs} - e^{-ks}) tends to k s e^{-ks} when the two rates meet.
        growth = g / lam * (lagged_step - k * s * np.exp(-k * s))
    else:
        growth = g / lam * (lagged_step - k / (k - lam) * (np.exp(-lam * s) - np.exp(-k * s)))
    return e0 * lagged_step + math.exp(-lam * closed_for_s) * growth


def _cargo_excess(c_s: FloatArray | np.float64, g: float, lam: float) -> FloatArray:
    """Cargo concentration above ambient after ``c_s`` seconds closed, ppm."""
    if lam == 0.0:
        return np.asarray(g * c_s, dtype=np.float64)
    return np.asarray(g * -np.expm1(-lam * c_s) / lam, dtype=np.float64)
