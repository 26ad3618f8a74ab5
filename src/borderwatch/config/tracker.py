"""Tracker settings: motion modes, gating, track management and border alerts.

Defaults are tuned for the mix border police watch (walkers at 1-2 m/s, boats up to ~10 m/s,
vehicles on tracks) with sensors of a few metres' noise at about 1 Hz; ``docs/fusion.md``
explains each choice and how the figures in the README were measured.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Largest identity: AIS MMSIs have nine decimal digits.
MAX_IDENTITY = 999_999_999


class MotionMode(BaseModel):
    """One IMM mode: a (coordinated-turn or constant-velocity) white-noise-acceleration model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Label of the mode, for logs and mode probabilities.")
    q_m2ps3: float = Field(
        gt=0,
        description="Spectral density of the white acceleration noise per axis, m²/s³.",
    )
    turn_rate_dps: float = Field(
        default=0.0,
        description="Fixed turn rate, degrees/s, counter-clockwise positive; 0 is constant "
        "velocity.",
    )
    sojourn_s: float = Field(
        gt=0, description="Mean time the target stays in this mode before switching, s."
    )


def _default_modes() -> list[MotionMode]:
    # Chosen by measurement (borderwatch bench): against constant-velocity trackers tuned per
    # scenario, these tie on steady walkers and win on walkers who keep turning.
    return [
        MotionMode(name="steady", q_m2ps3=0.005, sojourn_s=45.0),
        MotionMode(name="manoeuvre", q_m2ps3=0.3, sojourn_s=10.0),
        MotionMode(name="turn-left", q_m2ps3=0.03, turn_rate_dps=20.0, sojourn_s=6.0),
        MotionMode(name="turn-right", q_m2ps3=0.03, turn_rate_dps=-20.0, sojourn_s=6.0),
    ]


class CrossingSettings(BaseModel):
    """When a track's position distribution makes a border crossing an alert."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    p_establish: float = Field(
        default=0.9,
        gt=0.5,
        lt=1,
        description="P(side) a track must reach before it is considered to be on that side.",
    )
    p_new: float = Field(
        default=0.6,
        gt=0.5,
        lt=1,
        description="P(far side) at which a crossing alert is raised (event new).",
    )
    p_confirm: float = Field(
        default=0.97,
        gt=0.5,
        lt=1,
        description="P(far side) at which the crossing is confirmed (event update).",
    )
    min_normal_speed_mps: float = Field(
        default=0.2,
        ge=0,
        description="Speed across the border, towards the far side, a track needs for a "
        "crossing or approach alert (suppresses chatter from tracks walking along the line).",
    )
    normal_speed_sigmas: float = Field(
        default=1.5,
        ge=0,
        description="The speed towards the far side must also exceed this many standard "
        "deviations of its estimate: a track whose motion across the line is not significant "
        "raises no crossing.",
    )
    handover_radius_m: float = Field(
        default=50.0,
        ge=0,
        description="A new track born this close to a confirmed track that missed the current "
        "scan inherits its border side (0 disables), m.",
    )
    approach_horizon_s: float = Field(
        default=60.0,
        ge=0,
        description="Raise an 'about to cross' alert when the predicted time to cross is "
        "below this, s (0 disables approach alerts).",
    )
    approach_min_age_s: float = Field(
        default=10.0,
        ge=0,
        description="A track must be this old before it can raise an approach alert, s: a "
        "young track's velocity is too uncertain to predict a crossing time.",
    )
    approach_max_distance_m: float = Field(
        default=300.0, gt=0, description="Only tracks closer than this to the border, m."
    )
    hold_s: float = Field(
        default=30.0,
        gt=0,
        description="A confirmed crossing alert ends after the track has stayed this long on "
        "the far side, s.",
    )
    update_interval_s: float = Field(
        default=10.0, gt=0, description="Minimum time between update events of one alert, s."
    )
    suppress_own_alerts: bool = Field(
        default=True,
        description="Raise no crossing or approach alert for a track carrying one of "
        "own_identities (patrol boats cross the line on duty); an alert already open when the "
        "track is recognised as an own vessel ends as retracted.",
    )


class TrackerConfig(BaseModel):
    """Settings of :class:`borderwatch.fusion.tracker.Tracker`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modes: list[MotionMode] = Field(
        default_factory=_default_modes,
        min_length=1,
        description="IMM motion modes; one mode gives a plain (E)KF.",
    )
    initial_speed_sigma_mps: float = Field(
        default=8.0, gt=0, description="1-σ speed uncertainty of a new track, per axis, m/s."
    )
    gate_probability: float = Field(
        default=0.999,
        gt=0.5,
        lt=1,
        description="Probability mass of the Mahalanobis (chi-square) validation gate.",
    )
    max_gate_m: float = Field(
        default=250.0, gt=0, description="Upper bound on a track's gate radius, m."
    )
    confirm_hits: int = Field(
        default=3,
        ge=1,
        description="M of M-of-N confirmation: detections a tentative track needs.",
    )
    confirm_window_s: float = Field(
        default=3.5,
        gt=0,
        description="N of M-of-N, in time: a tentative track must collect confirm_hits within "
        "this long after its first detection, or it is deleted, s. 3.5 s is 3 of 4 scans at 1 Hz; "
        "set it to about (N - 0.5) revisit periods of the slowest sensor.",
    )
    tentative_coast_s: float = Field(
        default=2.5,
        gt=0,
        description="Delete a tentative track not updated for this long, s.",
    )
    coast_s: float = Field(
        default=5.0,
        gt=0,
        description="Delete a confirmed track not updated for this long, s (missed detections "
        "are counted in time, so sensors of different rates and fields of view mix freely).",
    )
    nominal_revisit_s: float = Field(
        default=1.0,
        gt=0,
        description="Revisit interval the time thresholds above are written for, s. When the "
        "sensors scan more slowly (learnt from the data: the slowest sensor's smoothed interval), "
        "confirm_window_s, tentative_coast_s and coast_s stretch in proportion.",
    )
    max_position_sigma_m: float = Field(
        default=80.0, gt=0, description="Delete a track whose position 1-σ grows beyond this, m."
    )
    reorder_lag_s: float = Field(
        default=0.0,
        ge=0,
        description="Hold detections this long so late ones are processed in time order, s. "
        "Detections older than already processed time are rejected and counted as 'late'.",
    )
    own_identities: frozenset[int] = Field(
        default_factory=frozenset,
        description="Identities (AIS MMSIs) of the deployment's own vessels: their tracks are "
        "marked own.",
    )
    identified_coast_s: float = Field(
        default=200.0,
        gt=0,
        description="Delete an identified track (one that an AIS report has named) not updated "
        "for this long, s; it is also how long a track's identity may stay silent before the "
        "track, still seen by other sensors, counts as dark. AIS reports every 2-10 s under "
        "way (class A), 30 s (class B) and every 3 min at anchor or below 2-3 knots: 200 s "
        "covers the slowest with margin.",
    )
    identity_gate_probability: float = Field(
        default=0.999999,
        gt=0.5,
        lt=1,
        description="Probability mass of the (wider) validation gate between an identified "
        "detection and a track holding the same identity. Such a pair is also sought beyond "
        "max_gate_m and is preferred in the assignment; a detection never goes to a track "
        "holding a different identity.",
    )
    dark_after_s: float = Field(
        default=30.0,
        gt=0,
        description="A confirmed track of a boat (class boat, an identity, or within "
        "dark_water_distance_m of a blue border) is dark when anonymous sensors (radar, camera) "
        "have seen it over at least this long and it has no identity, or its identity has been "
        "silent for identified_coast_s, s.",
    )
    dark_water_distance_m: float = Field(
        default=500.0,
        ge=0,
        description="A track this close to a blue (river, lake) border segment counts as a boat "
        "for the dark rule whatever its class, m.",
    )
    crossing: CrossingSettings = Field(
        default_factory=CrossingSettings, description="Border crossing and approach alerts."
    )

    @field_validator("own_identities")
    @classmethod
    def _identities_are_mmsis(cls, value: frozenset[int]) -> frozenset[int]:
        bad = sorted(v for v in value if not 0 < v <= MAX_IDENTITY)
        if bad:
            raise ValueError(f"identities must be in 1..{MAX_IDENTITY} (AIS MMSIs): {bad}")
        return value

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrackerConfig:
        """Load and validate settings from YAML; errors name the file and line."""
        from borderwatch.config.yamlload import load_yaml_model

        return load_yaml_model(path, cls)
