"""CO2 inspection sessions: is anyone hidden in this truck, van or container?

An officer screens a closed cargo space by its CO2: people breathing inside raise it above the
outside air, an empty space stays at the outside level. One session is one inspection:

1. **start** — the officer enters the vehicle or container id; the probe, still outside, reads
   the ambient air for ``baseline_s`` seconds (mean and noise of the baseline).
2. **probe in** — the probe goes into the cargo space through a vent or between the door seals.
   The officer marks it (:meth:`Co2SessionDetector.mark_sample`); without a mark, the sample phase
   starts by itself when the baseline time is over.
3. **hold** — every reading's rise above the baseline is tested against a threshold that is the
   larger of a fixed rise (``rise_threshold_ppm``) and ``noise_k`` times the baseline noise. A
   rise that stays up for ``persistence_s`` seconds, and has not decayed like a passing plume of
   exhaust or breath, raises ``persons_likely`` at once (one event per session).
4. **result** — when the officer ends the session (:meth:`Co2SessionDetector.finish`) without such
   a rise, the verdict is ``clear``, or ``inconclusive`` when the evidence cannot support a clear
   (baseline too short, unstable or not outdoor air, probe in for less than ``min_sample_s``, a
   noisy sensor, or a rise still building when the session ended).

Confidence, in [0, 1], is a logistic score of the sustained rise ``x`` in units of the
threshold: ``1 / (1 + 9 ** (1 - x))`` for ``persons_likely`` (0.5 at the threshold, 0.9 at twice
it), one minus that for ``clear`` (0.9 when the level is at the baseline), 0 for
``inconclusive``. It orders verdicts by the strength of their evidence; it is not a calibrated
probability (docs/co2.md gives measured detection and false-alarm rates).

Times are seconds on the node's time axis, from the arguments only (no clock is read);
concentrations are ppm. Readings must come in time order; out-of-order, non-finite, negative or
implausibly high readings are refused and counted in :attr:`Co2SessionDetector.counters`, never
raised. The detector is deterministic: the same calls give the same events.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import median_abs_deviation

log = logging.getLogger(__name__)

#: Highest reading accepted, ppm (10 % CO2: far above any breathable cargo space).
MAX_PPM = 100_000.0

Verdict = Literal["persons_likely", "clear", "inconclusive"]

#: Logistic base of the confidence score: 9 makes twice the threshold score 0.9.
_CONFIDENCE_BASE = 9.0
#: Bounds on the readings a session keeps, so memory stays bounded at any reading rate.
_MAX_BASELINE_READINGS = 10_000
_MAX_SAMPLE_READINGS = 20_000
#: Fewest sample readings from which the sensor's noise is estimated.
_MIN_NOISE_READINGS = 6


class Co2SessionSettings(BaseModel):
    """How a CO2 inspection session turns readings into a verdict (docs/co2.md explains each)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baseline_s: float = Field(
        default=30.0,
        gt=0,
        description="Time the probe reads outside air after the session starts, s; the "
        "baseline ends earlier if the officer marks the probe in.",
    )
    min_baseline_samples: int = Field(
        default=10,
        ge=2,
        description="Fewest baseline readings for any verdict but inconclusive.",
    )
    max_baseline_sigma_ppm: float = Field(
        default=20.0,
        gt=0,
        description="Baseline standard deviation above which the ambient air is unstable "
        "(exhaust, people nearby) and a clear verdict is refused, ppm.",
    )
    min_baseline_ppm: float = Field(
        default=300.0,
        ge=0,
        description="Lowest baseline taken as outdoor air, ppm (outdoor CO2 is about 400).",
    )
    max_baseline_ppm: float = Field(
        default=1000.0,
        gt=0,
        description="Highest baseline taken as outdoor air, ppm; above it the probe was not in "
        "clean outside air (or already in the cargo space).",
    )
    rise_threshold_ppm: float = Field(
        default=80.0,
        gt=0,
        description="Smallest rise above the baseline that counts as evidence, ppm.",
    )
    noise_k: float = Field(
        default=5.0,
        ge=0,
        description="The rise must also exceed this many baseline standard deviations.",
    )
    release_fraction: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="A rise that has passed the threshold stays counted until it falls to this "
        "fraction of the threshold (hysteresis: noise does not break a real rise).",
    )
    persistence_s: float = Field(
        default=30.0,
        gt=0,
        description="How long a rise must stay up before persons_likely, s; a plume of exhaust "
        "or breath passes in seconds.",
    )
    min_persist_samples: int = Field(
        default=3,
        ge=1,
        description="Fewest readings of a persisting rise.",
    )
    plateau_fraction: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="The rise over the last third of the persistence window must be at least "
        "this fraction of the highest rise in the window: a passing plume decays, the air of an "
        "occupied space does not.",
    )
    max_gap_s: float = Field(
        default=15.0,
        gt=0,
        description="Longest time between readings within a persisting rise, s.",
    )
    min_sample_s: float = Field(
        default=120.0,
        ge=0,
        description="Shortest time with the probe in the cargo space for a clear verdict, s.",
    )
    max_sample_noise_ppm: float = Field(
        default=25.0,
        gt=0,
        description="Reading-to-reading noise of the sample (robust estimate) above which the "
        "sensor is too noisy for a clear verdict, ppm.",
    )
    max_session_s: float = Field(
        default=900.0,
        gt=0,
        description="A session still open this long after its start is ended with a verdict, s.",
    )


#: The settings used when none are given (frozen, so one instance serves every detector).
DEFAULT_SETTINGS = Co2SessionSettings()


@dataclass(frozen=True, slots=True)
class ConcealmentEvent:
    """The outcome of one CO2 inspection session.

    Attributes:
        session_id: the session's id.
        vehicle_id: vehicle or container id the officer entered.
        sensor_id: CO2 probe that took the readings.
        officer: officer who ran the session, if given.
        t: decision time, s (node time axis).
        verdict: ``persons_likely``, ``clear`` or ``inconclusive``.
        confidence: strength of the verdict's evidence in [0, 1] (module docstring).
        baseline_ppm: mean of the baseline readings, ppm (0 without any).
        baseline_sigma_ppm: their standard deviation, ppm.
        peak_ppm: highest sample reading, ppm (0 without any).
        rise_ppm: the sustained rise the verdict rests on, ppm above the baseline: the median
            over the last third of the persistence window for ``persons_likely``, over the last
            ``persistence_s`` of the sample otherwise (0 without sample readings).
        persisted_s: how long the rise stayed up, s (the longest such run for other verdicts).
        samples: readings in the sample phase.
        reason: short explanation for the officer.
    """

    session_id: str
    vehicle_id: str
    sensor_id: str
    officer: str | None
    t: float
    verdict: Verdict
    confidence: float
    baseline_ppm: float
    baseline_sigma_ppm: float
    peak_ppm: float
    rise_ppm: float
    persisted_s: float
    samples: int
    reason: str


@dataclass(slots=True)
class _Session:
    """Mutable state of the session in progress."""

    session_id: str
    vehicle_id: str
    officer: str | None
    start_t: float
    baseline: list[float] = field(default_factory=list)
    baseline_ppm: float = 0.0
    baseline_sigma_ppm: float = 0.0
    threshold_ppm: float = math.inf
    sample_start_t: float | None = None
    marked: bool = False
    sample: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=_MAX_SAMPLE_READINGS)
    )
    samples: int = 0
    peak_ppm: float = 0.0
    run_start_t: float | None = None
    run_readings: int = 0
    longest_run_s: float = 0.0
    decided: bool = False

    @property
    def sampling(self) -> bool:
        """True once the baseline is frozen and readings count as sample."""
        return self.sample_start_t is not None


class Co2SessionDetector:
    """One CO2 probe's inspection sessions, one at a time (module docstring: the procedure).

    Args:
        sensor_id: id of the probe, copied into every event.
        settings: detection settings.
    """

    def __init__(self, sensor_id: str, settings: Co2SessionSettings = DEFAULT_SETTINGS) -> None:
        self.sensor_id = sensor_id
        self.settings = settings
        self.counters: dict[str, int] = {
            "no_session": 0,
            "out_of_order": 0,
            "out_of_range": 0,
            "mark_ignored": 0,
            "timed_out": 0,
        }
        self._session: _Session | None = None
        self._last_t = -math.inf
        self._sequence = 0
        self._pending: list[ConcealmentEvent] = []

    @property
    def active(self) -> bool:
        """True while a session is open."""
        return self._session is not None

    def start(
        self,
        t: float,
        vehicle_id: str,
        *,
        officer: str | None = None,
        session_id: str | None = None,
    ) -> str:
        """Open a session for ``vehicle_id`` at time ``t`` (s) and return its id.

        A session still open is ended at ``t`` first; its event is returned by the next
        :meth:`update` or :meth:`finish` call.

        Raises:
            ValueError: when ``t`` is not finite or ``vehicle_id`` is blank.
        """
        if not math.isfinite(t):
            raise ValueError(f"session start time must be finite, got {t}")
        if not vehicle_id.strip():
            raise ValueError("a session needs the vehicle or container id")
        if self._session is not None:
            log.warning(
                "co2 session %s on %s ended by a new session",
                self._session.session_id,
                self._session.vehicle_id,
            )
            self._pending.extend(self._close(max(t, self._last_t)))
        self._sequence += 1
        sid = session_id or f"{self.sensor_id}/{self._sequence}/{t:.3f}"
        self._session = _Session(sid, vehicle_id.strip(), officer, t)
        log.info("co2 session %s started for %s", sid, vehicle_id)
        return sid

    def mark_sample(self, t: float) -> None:
        """The officer puts the probe into the cargo space at time ``t`` (s).

        Ends the baseline; if it had already ended by itself, only the sample's start moves.
        A mark without a session, a second mark or a non-finite time is ignored and counted
        (``mark_ignored``). A mark earlier than the readings already received counts from the
        last of them, since those were taken before the officer's mark reached the detector.
        """
        s = self._session
        if s is None or s.marked or not math.isfinite(t):
            self.counters["mark_ignored"] += 1
            return
        t = max(t, s.start_t, self._last_t)
        s.marked = True
        if s.sampling:
            s.sample_start_t = t
        else:
            self._freeze_baseline(s, t)

    def update(self, t: float, ppm: float) -> list[ConcealmentEvent]:
        """One reading of ``ppm`` at time ``t`` (s); returns the events it completes.

        Refused and counted, never raised: readings without a session (``no_session``), with a
        time that is not finite, earlier than the previous reading or than the session's start
        (``out_of_order``), and non-finite, negative or above :data:`MAX_PPM` values
        (``out_of_range``). A reading past ``max_session_s`` ends the session first.
        """
        events, self._pending = self._pending, []
        s = self._session
        if s is None:
            self.counters["no_session"] += 1
            return events
        if not (math.isfinite(t) and t >= self._last_t and t >= s.start_t):
            self.counters["out_of_order"] += 1
            return events
        if not (math.isfinite(ppm) and 0.0 <= ppm <= MAX_PPM):
            self.counters["out_of_range"] += 1
            return events
        end_t = s.start_t + self.settings.max_session_s
        if t > end_t:
            self.counters["timed_out"] += 1
            self.counters["no_session"] += 1
            log.warning("co2 session %s timed out", s.session_id)
            return events + self._close(end_t)
        self._last_t = t
        if not s.sampling:
            if t < s.start_t + self.settings.baseline_s:
                if len(s.baseline) < _MAX_BASELINE_READINGS:
                    s.baseline.append(ppm)
                return events
            self._freeze_baseline(s, s.start_t + self.settings.baseline_s)
        event = self._sample_reading(s, t, ppm)
        if event is not None:
            events.append(event)
        return events

    def finish(self, t: float) -> list[ConcealmentEvent]:
        """The officer ends the session at time ``t`` (s); returns its verdict if none was given.

        Without a session this returns only events left from a session ended by :meth:`start`.
        """
        events, self._pending = self._pending, []
        if self._session is None:
            return events
        t = max(t, self._last_t) if math.isfinite(t) else self._last_t
        return events + self._close(max(t, self._session.start_t))

    # -- internals --------------------------------------------------------------------------

    def _freeze_baseline(self, s: _Session, sample_start_t: float) -> None:
        """End the baseline: its statistics and the rise threshold are fixed from now on."""
        s.sample_start_t = sample_start_t
        if s.baseline:
            values = np.asarray(s.baseline, dtype=np.float64)
            s.baseline_ppm = float(values.mean())
            s.baseline_sigma_ppm = float(values.std(ddof=1)) if values.size > 1 else 0.0
        if len(s.baseline) >= self.settings.min_baseline_samples:
            s.threshold_ppm = max(
                self.settings.rise_threshold_ppm, self.settings.noise_k * s.baseline_sigma_ppm
            )

    def _sample_reading(self, s: _Session, t: float, ppm: float) -> ConcealmentEvent | None:
        """Account one sample reading; the persons_likely event once the rise has persisted."""
        cfg = self.settings
        previous_t = s.sample[-1][0] if s.sample else None
        s.sample.append((t, ppm))
        s.samples += 1
        s.peak_ppm = max(s.peak_ppm, ppm)
        rise = ppm - s.baseline_ppm
        thr = s.threshold_ppm
        if s.run_start_t is not None and (
            rise <= cfg.release_fraction * thr
            or (previous_t is not None and t - previous_t > cfg.max_gap_s)
        ):
            s.run_start_t = None
        if s.run_start_t is None and rise > thr:
            s.run_start_t, s.run_readings = t, 0
        if s.run_start_t is None:
            return None
        s.run_readings += 1
        run_s = t - s.run_start_t
        s.longest_run_s = max(s.longest_run_s, run_s)
        if s.decided or run_s < cfg.persistence_s or s.run_readings < cfg.min_persist_samples:
            return None
        window = self._recent_rises(s, t - cfg.persistence_s)
        level = float(np.median(window[window[:, 0] >= t - cfg.persistence_s / 3.0, 1]))
        if level <= thr or level < cfg.plateau_fraction * float(window[:, 1].max()):
            return None
        s.decided = True
        reason = (
            f"CO2 {level:.0f} ppm above ambient {s.baseline_ppm:.0f} ppm for {run_s:.0f} s "
            f"(threshold {thr:.0f} ppm)"
        )
        return self._event(s, t, "persons_likely", _score(level / thr), level, run_s, reason)

    def _recent_rises(self, s: _Session, since_t: float) -> np.ndarray:
        """(time, rise) rows of the sample readings at or after ``since_t``, oldest first."""
        rows: list[tuple[float, float]] = []
        for t, ppm in reversed(s.sample):
            if t < since_t:
                break
            rows.append((t, ppm - s.baseline_ppm))
        rows.reverse()
        return np.asarray(rows, dtype=np.float64).reshape(-1, 2)

    def _close(self, t: float) -> list[ConcealmentEvent]:
        """End the session at ``t`` (s) with its verdict, unless one was already given."""
        s = self._session
        self._session = None
        if s is None:
            return []
        log.info("co2 session %s ended", s.session_id)
        if s.decided:
            return []
        if not s.sampling:
            self._freeze_baseline(s, t)
        recent = self._recent_rises(s, t - self.settings.persistence_s)
        level = float(np.median(recent[:, 1])) if recent.size else 0.0
        verdict, reason = self._final_verdict(s, t, level)
        confidence = 1.0 - _score(level / s.threshold_ppm) if verdict == "clear" else 0.0
        return [self._event(s, t, verdict, confidence, level, s.longest_run_s, reason)]

    def _final_verdict(self, s: _Session, t: float, level: float) -> tuple[Verdict, str]:
        """clear or inconclusive (with the reason) for a session without persons_likely."""
        cfg = self.settings
        sample_s = t - s.sample_start_t if s.sample_start_t is not None else 0.0
        noise = _reading_noise(s.sample)
        if len(s.baseline) < cfg.min_baseline_samples:
            why = f"baseline too short: {len(s.baseline)} readings, need {cfg.min_baseline_samples}"
        elif s.baseline_sigma_ppm > cfg.max_baseline_sigma_ppm:
            why = (
                f"baseline unstable: sigma {s.baseline_sigma_ppm:.0f} ppm, "
                f"limit {cfg.max_baseline_sigma_ppm:.0f}"
            )
        elif not cfg.min_baseline_ppm <= s.baseline_ppm <= cfg.max_baseline_ppm:
            why = (
                f"baseline {s.baseline_ppm:.0f} ppm is not outdoor air "
                f"({cfg.min_baseline_ppm:.0f}-{cfg.max_baseline_ppm:.0f} ppm)"
            )
        elif sample_s < cfg.min_sample_s:
            why = f"probe in for {sample_s:.0f} s, need {cfg.min_sample_s:.0f} s"
        elif noise > cfg.max_sample_noise_ppm:
            why = f"sensor noisy: {noise:.0f} ppm, limit {cfg.max_sample_noise_ppm:.0f}"
        elif level > cfg.release_fraction * s.threshold_ppm:
            why = (
                f"CO2 {level:.0f} ppm above ambient did not persist as a steady rise "
                f"(threshold {s.threshold_ppm:.0f} ppm for {cfg.persistence_s:.0f} s)"
            )
        else:
            return "clear", (
                f"no sustained rise: {level:+.0f} ppm after {sample_s:.0f} s with the probe in "
                f"(threshold {s.threshold_ppm:.0f} ppm)"
            )
        return "inconclusive", why

    def _event(
        self,
        s: _Session,
        t: float,
        verdict: Verdict,
        confidence: float,
        rise_ppm: float,
        persisted_s: float,
        reason: str,
    ) -> ConcealmentEvent:
        """Build the session's event and log it."""
        event = ConcealmentEvent(
            session_id=s.session_id,
            vehicle_id=s.vehicle_id,
            sensor_id=self.sensor_id,
            officer=s.officer,
            t=t,
            verdict=verdict,
            confidence=confidence,
            baseline_ppm=s.baseline_ppm,
            baseline_sigma_ppm=s.baseline_sigma_ppm,
            peak_ppm=s.peak_ppm,
            rise_ppm=rise_ppm,
            persisted_s=persisted_s,
            samples=s.samples,
            reason=reason,
        )
        log.info(
            "co2 session %s vehicle %s: %s (%.2f) %s",
            s.session_id,
            s.vehicle_id,
            verdict,
            confidence,
            reason,
        )
        return event


def _score(x: float) -> float:
    """Logistic evidence score of a rise ``x`` thresholds high: 0.5 at 1, 0.9 at 2."""
    if math.isnan(x):
        return 0.0
    exponent = min(1.0 - x, 700.0 / math.log(_CONFIDENCE_BASE))
    return 1.0 / (1.0 + math.pow(_CONFIDENCE_BASE, exponent))


def _reading_noise(sample: deque[tuple[float, float]]) -> float:
    """Reading-to-reading noise of the sample, ppm: robust σ of first differences over √2.

    The median absolute deviation ignores the step when the probe goes in and a few spikes;
    differencing removes the slow trend of an occupied space.
    """
    if len(sample) < _MIN_NOISE_READINGS:
        return 0.0
    ppm = np.fromiter((v for _, v in sample), dtype=np.float64, count=len(sample))
    mad: float = float(median_abs_deviation(np.diff(ppm), scale="normal"))
    return mad / math.sqrt(2.0)
