"""CO2 inspection sessions: the real probe recording, simulated inspections, bad input."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path

import numpy as np
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from borderwatch.sensors.base import Accepted
from borderwatch.sensors.co2 import Gmp343Parser
from borderwatch.sensors.co2session import (
    MAX_PPM,
    Co2SessionDetector,
    Co2SessionSettings,
    ConcealmentEvent,
)
from borderwatch.simulator.co2 import co2_series, transient_ppm

SAMPLE = Path(__file__).parent / "data" / "co2" / "gmp343_truck_inspection.txt"
VERDICTS = {"persons_likely", "clear", "inconclusive"}

#: The inspection the simulated sessions follow: readings at 1 Hz, ambient baseline from 0 s,
#: probe in at MARK_S, session ended HOLD_S later.
MARK_S = 40.0
HOLD_S = 180.0


def recording_ppm() -> list[float]:
    """CO2 readings of the GMP343 sample recording, in order, as the real parser gives them."""
    parser = Gmp343Parser()
    items = parser.feed(SAMPLE.read_bytes()) + parser.close()
    return [float(i.data["ppm"]) for i in items if isinstance(i, Accepted)]


def run_session(
    times: Iterable[float],
    ppm: Iterable[float],
    *,
    mark_s: float | None,
    finish_s: float,
    detector: Co2SessionDetector | None = None,
) -> list[ConcealmentEvent]:
    """Every event of one session: started at 0 s, probe marked in at ``mark_s`` (None: never)."""
    det = detector or Co2SessionDetector("co2-probe-1")
    det.start(0.0, "TIR-ABC123", officer="officer-7")
    events: list[ConcealmentEvent] = []
    for t, v in zip(times, ppm, strict=True):
        if mark_s is not None and t >= mark_s and not events and det.active:
            det.mark_sample(mark_s)
            mark_s = None
        events += det.update(float(t), float(v))
    return events + det.finish(finish_s)


def simulated(seed: int, persons: int, *, hard: bool, hold_s: float = HOLD_S) -> ConcealmentEvent:
    """The single event of one simulated inspection of a 67 m³ container.

    Nominal: closed 30 min, 0.5 air changes/h, 5 ppm noise. Hard: closed 10-60 min, 0.2-3 air
    changes/h (soft-top trailers leak), 12-25 L/h of CO2 per person, 3-15 ppm noise, ambient
    380-600 ppm, and in half the sessions a plume of exhaust or breath (200-2000 ppm for 2-10 s)
    while the probe is in.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, MARK_S + hold_s + 0.5, 1.0)
    model: dict[str, float] = {}
    if hard:
        model = {
            "closed_for_s": rng.uniform(600.0, 3600.0),
            "air_changes_per_h": rng.uniform(0.2, 3.0),
            "exhale_l_per_h": rng.uniform(12.0, 25.0),
            "noise_ppm": rng.uniform(3.0, 15.0),
            "ambient_ppm": rng.uniform(380.0, 600.0),
        }
    ppm = co2_series(t, persons=persons, sample_start_s=MARK_S, rng=rng, **model)
    if hard and rng.random() < 0.5:
        ppm = ppm + transient_ppm(
            t,
            start_s=rng.uniform(MARK_S, MARK_S + hold_s - 20.0),
            duration_s=rng.uniform(2.0, 10.0),
            peak_ppm=rng.uniform(200.0, 2000.0),
        )
    events = run_session(t, ppm, mark_s=MARK_S, finish_s=float(t[-1]))
    assert len(events) == 1
    return events[0]


def empty_inspection(seed: int, **model: float) -> tuple[np.ndarray, np.ndarray]:
    """Times and readings of a nominal inspection of an empty container (probe in at MARK_S)."""
    t = np.arange(0.0, MARK_S + HOLD_S + 0.5, 1.0)
    ppm = co2_series(t, persons=0, sample_start_s=MARK_S, rng=np.random.default_rng(seed), **model)
    return t, ppm


def verdict_counts(persons: int, *, hard: bool, seeds: int = 200) -> dict[str, int]:
    """How many of ``seeds`` simulated inspections end in each verdict."""
    counts = dict.fromkeys(sorted(VERDICTS), 0)
    for seed in range(seeds):
        counts[simulated(seed, persons, hard=hard).verdict] += 1
    return counts


def assert_well_formed(event: ConcealmentEvent) -> None:
    assert event.verdict in VERDICTS
    assert 0.0 <= event.confidence <= 1.0
    for f in fields(event):
        value = getattr(event, f.name)
        if isinstance(value, float):
            assert math.isfinite(value), f.name
    assert event.samples >= 0
    assert event.persisted_s >= 0.0
    assert event.reason


# -- the real recording ------------------------------------------------------------------------


@pytest.mark.parametrize("mark_s", [None, 60.0])
def test_recorded_truck_inspection_finds_people(mark_s):
    ppm = recording_ppm()
    assert len(ppm) == 200
    events = run_session(range(len(ppm)), ppm, mark_s=mark_s, finish_s=float(len(ppm)))
    assert len(events) == 1
    event = events[0]
    assert event.verdict == "persons_likely"
    assert event.confidence > 0.95
    assert event.vehicle_id == "TIR-ABC123"
    assert event.officer == "officer-7"
    assert event.sensor_id == "co2-probe-1"
    assert abs(event.baseline_ppm - 420.0) < 5.0
    assert event.rise_ppm > 1000.0
    # Raised early, while the probe was still in: after the rise has persisted 30 s, not at the
    # end of the recording.
    first_high = next(i for i, v in enumerate(ppm) if v > 500.0)
    assert first_high + 30 <= event.t < first_high + 60
    assert event.persisted_s >= 30.0


# -- simulated inspections ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_empty_container_is_clear(seed):
    event = simulated(seed, 0, hard=False)
    assert event.verdict == "clear", event.reason
    assert event.confidence > 0.8
    assert abs(event.rise_ppm) < 20.0


@pytest.mark.parametrize("persons", [1, 2, 5])
@pytest.mark.parametrize("seed", range(3))
def test_people_in_closed_container_are_found(persons, seed):
    event = simulated(seed, persons, hard=False)
    assert event.verdict == "persons_likely", event.reason
    assert MARK_S + 30.0 <= event.t < MARK_S + HOLD_S
    assert event.confidence > 0.5


def test_confidence_grows_with_the_number_of_people():
    confidence = [simulated(1, n, hard=False).confidence for n in (1, 2, 5)]
    assert confidence == sorted(confidence)
    assert confidence[0] < confidence[2]


@pytest.mark.parametrize(
    ("peak_ppm", "duration_s"), [(1500.0, 5.0), (3000.0, 2.0), (2000.0, 10.0), (3000.0, 20.0)]
)
def test_short_exhaust_or_breath_plume_is_not_people(peak_ppm, duration_s):
    # The longer plumes stay above the release level for more than persistence_s as they
    # decay; the plateau test is what tells them from an occupied space.
    t, ppm = empty_inspection(3)
    ppm = ppm + transient_ppm(t, start_s=100.0, duration_s=duration_s, peak_ppm=peak_ppm)
    assert ppm.max() > 420.0 + 400.0  # the plume is well above the threshold
    (event,) = run_session(t, ppm, mark_s=MARK_S, finish_s=float(t[-1]))
    assert event.verdict == "clear", event.reason
    assert event.peak_ppm > 800.0


def test_short_sample_is_inconclusive():
    t = np.arange(0.0, MARK_S + 60.5, 1.0)
    ppm = co2_series(t, persons=0, sample_start_s=MARK_S, rng=np.random.default_rng(4))
    (event,) = run_session(t, ppm, mark_s=MARK_S, finish_s=float(t[-1]))
    assert event.verdict == "inconclusive"
    assert event.confidence == 0.0
    assert "probe in for 60 s" in event.reason


def test_without_a_mark_the_sample_starts_after_the_baseline():
    t = np.arange(0.0, 200.5, 1.0)
    ppm = co2_series(t, persons=0, sample_start_s=MARK_S, rng=np.random.default_rng(5))
    (event,) = run_session(t, ppm, mark_s=None, finish_s=200.0)
    assert event.verdict == "clear", event.reason
    assert event.samples == 200 - 30 + 1  # the first 30 s are baseline


def test_unstable_baseline_is_inconclusive():
    t, ppm = empty_inspection(6)
    ppm = ppm + transient_ppm(t, start_s=10.0, duration_s=5.0, peak_ppm=600.0)  # breath
    (event,) = run_session(t, ppm, mark_s=MARK_S, finish_s=float(t[-1]))
    assert event.verdict == "inconclusive"
    assert event.reason.startswith("baseline unstable")
    assert event.baseline_sigma_ppm > 20.0


def test_too_short_baseline_is_inconclusive():
    t = np.arange(0.0, 200.5, 1.0)
    ppm = co2_series(t, persons=0, sample_start_s=5.0, rng=np.random.default_rng(7))
    (event,) = run_session(t, ppm, mark_s=5.0, finish_s=200.0)
    assert event.verdict == "inconclusive"
    assert event.reason.startswith("baseline too short")


def test_noisy_sensor_is_inconclusive():
    t, ppm = empty_inspection(8)
    rng = np.random.default_rng(9)
    ppm[t >= MARK_S] += rng.normal(0.0, 60.0, int((t >= MARK_S).sum()))
    (event,) = run_session(t, ppm, mark_s=MARK_S, finish_s=float(t[-1]))
    assert event.verdict == "inconclusive"
    assert event.reason.startswith("sensor noisy")


def test_outdoor_air_check_on_the_baseline():
    t, ppm = empty_inspection(10, ambient_ppm=1500.0)
    (event,) = run_session(t, ppm, mark_s=MARK_S, finish_s=float(t[-1]))
    assert event.verdict == "inconclusive"
    assert "not outdoor air" in event.reason


def test_rise_still_building_at_the_end_is_inconclusive():
    t, ppm = empty_inspection(11)
    ppm[t >= t[-1] - 15.0] += 300.0  # the last 15 s: too short to persist
    (event,) = run_session(t, ppm, mark_s=MARK_S, finish_s=float(t[-1]))
    assert event.verdict == "inconclusive"
    assert "did not persist" in event.reason


# -- measured rates (the table in docs/co2.md) -------------------------------------------------


def test_false_alarm_rate_on_empty_containers():
    # A false alarm opens an empty truck: costly, so at most 1 % (2 of 200) even in the hard
    # conditions with plumes of exhaust and breath.
    for hard in (False, True):
        counts = verdict_counts(0, hard=hard)
        assert counts["persons_likely"] <= 2, counts
        assert counts["clear"] >= 180, counts


def test_detection_rate_with_people_inside():
    # A closed 40 ft container 30 min after the doors closed: every person must count.
    for persons in (1, 2, 5):
        counts = verdict_counts(persons, hard=False)
        assert counts["persons_likely"] >= 196, (persons, counts)
    # Leaky trailers closed only 10 min, noisy sensors, plumes: one person can stay below the
    # threshold, but a clear verdict on people must stay rare and two or more are found.
    one = verdict_counts(1, hard=True)
    assert one["persons_likely"] >= 140, one
    assert one["clear"] <= 10, one
    for persons in (2, 5):
        counts = verdict_counts(persons, hard=True)
        assert counts["persons_likely"] >= 190, (persons, counts)
        assert counts["clear"] == 0, (persons, counts)


# -- session bookkeeping and bad input ---------------------------------------------------------


def test_refused_readings_are_counted_not_raised():
    det = Co2SessionDetector("p")
    assert det.update(0.0, 420.0) == []
    assert det.counters["no_session"] == 1
    det.start(0.0, "V1")
    assert det.active
    det.update(5.0, 420.0)
    for t, ppm in [(4.0, 420.0), (math.nan, 420.0), (math.inf, 420.0)]:
        assert det.update(t, ppm) == []
    assert det.counters["out_of_order"] == 3
    for ppm in [math.nan, -1.0, MAX_PPM + 1.0, math.inf]:
        assert det.update(6.0, ppm) == []
    assert det.counters["out_of_range"] == 4


def test_session_times_out_with_a_verdict():
    det = Co2SessionDetector("p", Co2SessionSettings(max_session_s=200.0))
    det.start(10.0, "V1")
    for t in range(10, 211):
        assert det.update(float(t), 420.0 + t % 3) == []
    (event,) = det.update(211.0, 420.0)
    assert event.t == 210.0
    assert event.verdict == "clear", event.reason
    assert not det.active
    assert det.counters["timed_out"] == 1
    assert det.finish(200.0) == []


def test_new_session_ends_the_open_one():
    det = Co2SessionDetector("p")
    first = det.start(0.0, "V1")
    for t in range(100):
        det.update(float(t), 420.0)
    second = det.start(100.0, "V2", session_id="s-2")
    assert second == "s-2" != first
    (event,) = det.update(101.0, 420.0)
    assert (event.session_id, event.vehicle_id, event.verdict) == (first, "V1", "inconclusive")
    (event,) = det.finish(101.0)
    assert (event.session_id, event.vehicle_id) == ("s-2", "V2")


def test_marks_outside_a_session_or_repeated_are_ignored():
    det = Co2SessionDetector("p")
    det.mark_sample(1.0)
    det.start(0.0, "V1")
    det.mark_sample(math.nan)
    det.mark_sample(20.0)
    det.mark_sample(30.0)
    assert det.counters["mark_ignored"] == 3


def test_one_event_per_session():
    ppm = recording_ppm()
    det = Co2SessionDetector("p")
    det.start(0.0, "V1")
    events = [e for i, v in enumerate(ppm) for e in det.update(float(i), v)]
    assert len(events) == 1
    assert det.finish(float(len(ppm))) == []


def test_start_needs_a_vehicle_and_a_finite_time():
    det = Co2SessionDetector("p")
    with pytest.raises(ValueError, match="vehicle"):
        det.start(0.0, "  ")
    with pytest.raises(ValueError, match="finite"):
        det.start(math.nan, "V1")


def test_settings_refuse_unknown_and_bad_fields():
    with pytest.raises(pydantic.ValidationError):
        Co2SessionSettings(rise_threshold=50.0)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        Co2SessionSettings(persistence_s=0.0)
    assert all(f.description for f in Co2SessionSettings.model_fields.values())


def test_sessions_are_deterministic():
    first = [simulated(12, n, hard=True) for n in (0, 1, 5)]
    again = [simulated(12, n, hard=True) for n in (0, 1, 5)]
    assert first == again


readings = st.lists(
    st.tuples(
        st.one_of(st.floats(allow_nan=True), st.floats(-10.0, 2000.0)),
        st.one_of(st.floats(allow_nan=True), st.floats(300.0, 5000.0)),
        st.sampled_from(["read", "read", "read", "mark", "finish", "start"]),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(readings)
def test_arbitrary_readings_never_raise_and_events_are_well_formed(steps):
    det = Co2SessionDetector("p", Co2SessionSettings(baseline_s=5.0, min_baseline_samples=2))
    events: list[ConcealmentEvent] = []
    started = 0
    for t, ppm, action in steps:
        if action == "start" and math.isfinite(t):
            det.start(t, "V")
            started += 1
        elif action == "mark":
            det.mark_sample(t)
        elif action == "finish":
            events += det.finish(t)
        else:
            events += det.update(t, ppm)
    events += det.finish(2000.0)
    assert not det.active
    for event in events:
        assert_well_formed(event)
    ids = [e.session_id for e in events]
    assert len(ids) == len(set(ids)) <= started


# -- the simulator -----------------------------------------------------------------------------


def test_simulated_probe_follows_the_mass_balance():
    # Integrate the cargo balance and the sensor lag numerically and compare with the closed
    # form: doors closed 1800 s before the probe goes in at 60 s, withdrawn at 240 s.
    persons, volume, ach, tau, ambient = 5, 67.0, 0.5, 8.0, 420.0
    g = 1e6 * persons * 0.018 / (3600.0 * volume)
    lam = ach / 3600.0

    def rates(t, z):
        cargo, reading = z
        seen = cargo if 60.0 <= t < 240.0 else ambient
        return [g + lam * (ambient - cargo), (seen - reading) / tau]

    t = np.arange(0.0, 300.0, 1.0)
    ode = solve_ivp(
        rates, (-1740.0, 299.0), [ambient, ambient], t_eval=t, max_step=0.5, rtol=1e-9, atol=1e-9
    )
    model = co2_series(
        t,
        persons=persons,
        sample_start_s=60.0,
        sample_end_s=240.0,
        noise_ppm=0.0,
        rng=np.random.default_rng(0),
    )
    np.testing.assert_allclose(model, ode.y[1], atol=0.05)
    assert model[239] > ambient + 500.0


def test_simulator_noise_and_determinism():
    t = np.arange(0.0, 2000.0)
    a = co2_series(t, persons=0, sample_start_s=0.0, rng=np.random.default_rng(1))
    b = co2_series(t, persons=0, sample_start_s=0.0, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert abs(a.mean() - 420.0) < 0.5
    assert abs(a.std() - 5.0) < 0.3


@pytest.mark.parametrize(
    "bad",
    [
        {"persons": -1},
        {"volume_m3": 0.0},
        {"noise_ppm": -1.0},
        {"sample_end_s": 10.0},
        {"response_tau_s": math.nan},
    ],
)
def test_simulator_refuses_impossible_inspections(bad):
    args = {"persons": 1, "sample_start_s": 20.0} | bad
    with pytest.raises(ValueError, match=r"must|before"):
        co2_series(np.arange(5.0), rng=np.random.default_rng(0), **args)
