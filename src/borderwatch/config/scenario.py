"""Scenario files for the simulator: border, targets, generators, platforms, sensors and devices.

All positions are metres east (``x``) and north (``y``) in the scenario's local ENU frame, whose
WGS-84 origin is ``origin``. Headings and azimuths are degrees clockwise from north (the
convention of compasses and radars); a positive turn rate turns right (clockwise). Times are
seconds from the start of the scenario. ``docs/scenarios.md`` explains every field with examples;
``docs/simulator-devices.md`` the device streams (``devices``, ``inspections``, AIS and GPS).

Load a file with :func:`load_scenario`: errors name the file and the line of the offending key.
"""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

#: A point in the local frame: ``[x_m, y_m]``.
Point = tuple[FiniteFloat, FiniteFloat]

TargetClassName = Literal["person", "boat", "vehicle"]


def _range_from_scalar(value: object) -> object:
    """Accept a single number for a range and read it as ``[value, value]``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (value, value)
    return value


def _ordered(value: tuple[float, float]) -> tuple[float, float]:
    if value[0] > value[1]:
        raise ValueError(f"range minimum {value[0]:g} is greater than its maximum {value[1]:g}")
    return value


def _non_negative(value: tuple[float, float]) -> tuple[float, float]:
    if value[0] < 0:
        raise ValueError(f"range must not be negative, got minimum {value[0]:g}")
    return value


def _positive(value: tuple[float, float]) -> tuple[float, float]:
    if value[0] <= 0:
        raise ValueError(f"range must be positive, got minimum {value[0]:g}")
    return value


#: ``[min, max]`` (or one number for both); values are drawn uniformly from it.
Range = Annotated[
    tuple[FiniteFloat, FiniteFloat],
    BeforeValidator(_range_from_scalar),
    AfterValidator(_ordered),
]
NonNegativeRange = Annotated[Range, AfterValidator(_non_negative)]
PositiveRange = Annotated[Range, AfterValidator(_positive)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _fail(loc: tuple[int | str, ...], message: str, value: object) -> ValidationError:
    """A validation error located at ``loc`` (relative to the model being validated)."""
    error = InitErrorDetails(
        type=PydanticCustomError("scenario_reference", message),
        loc=loc,
        input=value,
    )
    return ValidationError.from_exception_data("Scenario", [error])


def _check_path(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    for i in range(1, len(points)):
        if points[i] == points[i - 1]:
            raise ValueError(f"point {i} repeats point {i - 1} (zero-length segment)")
    return points


#: A polyline of at least two points without repeated consecutive points.
Polyline = Annotated[list[Point], Field(min_length=2), AfterValidator(_check_path)]


# --------------------------------------------------------------------------------- frame, border
class Origin(_Model):
    """The WGS-84 origin of the scenario's local east-north-up frame."""

    lat_deg: float = Field(ge=-90, le=90, description="Latitude of the origin, degrees.")
    lon_deg: float = Field(ge=-180, le=180, description="Longitude of the origin, degrees.")
    alt_m: FiniteFloat = Field(
        default=0.0, description="Height of the origin above the WGS-84 ellipsoid, metres."
    )


class BorderLine(_Model):
    """One border polyline. Its left side is on the left when walking from first to last point."""

    name: str = Field(min_length=1, description="Name of the line, e.g. 'drina-north'.")
    kind: Literal["green", "blue"] = Field(
        description="'green' for a land border, 'blue' for a river or lake border."
    )
    points: Polyline = Field(
        description="Vertices [x_m, y_m] in the local frame, at least two, in order along the line."
    )


# --------------------------------------------------------------------------------------- motion
class ManoeuvreSettings(_Model):
    """Random manoeuvres of a nearly-constant-velocity target.

    Motion alternates between cruise legs (constant speed, with a slight random curvature) and
    manoeuvres: a coordinated turn at constant speed, or a straight speed change.
    """

    cruise_s: PositiveRange = Field(
        default=(20.0, 60.0), description="Duration of a cruise leg between manoeuvres, s."
    )
    turn_rate_dps: NonNegativeRange = Field(
        default=(3.0, 10.0),
        description="Magnitude of the turn rate of a coordinated turn, degrees/s; the sign "
        "(left or right) is random.",
    )
    turn_s: PositiveRange = Field(default=(3.0, 12.0), description="Duration of a turn, s.")
    speed_change_probability: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Probability that a manoeuvre is a speed change instead of a turn.",
    )
    accel_mps2: float = Field(
        default=0.5, gt=0, description="Magnitude of the acceleration of a speed change, m/s²."
    )
    heading_wander_dps: float = Field(
        default=0.3,
        ge=0,
        description="1-σ turn rate of a cruise leg (drawn once per leg), degrees/s; 0 gives "
        "straight cruise legs.",
    )


class WaypointMotion(_Model):
    """Motion along a polyline at a set speed (walkers on paths, boats on a river, vehicles)."""

    type: Literal["waypoints"] = Field(description="Motion kind discriminator.")
    points: Polyline = Field(description="Waypoints [x_m, y_m], visited in order.")
    speed_mps: Annotated[float, Field(gt=0)] | list[Annotated[float, Field(gt=0)]] = Field(
        description="Speed over ground, m/s: one value, or one per leg (len(points) - 1)."
    )
    after_last: Literal["end", "hold", "loop", "reverse"] = Field(
        default="end",
        description="At the last waypoint: 'end' (the target disappears), 'hold' (it stays "
        "there), 'loop' (back to the first point and round again) or 'reverse' (back along "
        "the path, to and fro).",
    )

    @model_validator(mode="after")
    def _check_speeds(self) -> WaypointMotion:
        legs = len(self.points) - 1
        if isinstance(self.speed_mps, list) and len(self.speed_mps) != legs:
            raise _fail(
                ("speed_mps",),
                f"needs one speed per leg: {legs} value(s), got {len(self.speed_mps)}",
                self.speed_mps,
            )
        return self

    def leg_speeds_mps(self) -> list[float]:
        """Speed of each leg, m/s."""
        if isinstance(self.speed_mps, list):
            return list(self.speed_mps)
        return [self.speed_mps] * (len(self.points) - 1)


class ManoeuvringMotion(_Model):
    """Nearly-constant velocity with random coordinated turns and speed changes."""

    type: Literal["manoeuvring"] = Field(description="Motion kind discriminator.")
    start_xy: Point = Field(description="Position at birth [x_m, y_m].")
    heading_deg: FiniteFloat = Field(description="Heading at birth, degrees clockwise from north.")
    speed_mps: float = Field(gt=0, description="Speed at birth, m/s.")
    speed_range_mps: PositiveRange | None = Field(
        default=None,
        description="Speeds a speed change may pick, m/s; default: the birth speed only.",
    )
    manoeuvre: ManoeuvreSettings = Field(
        default_factory=ManoeuvreSettings, description="How the target manoeuvres."
    )


Motion = Annotated[WaypointMotion | ManoeuvringMotion, Field(discriminator="type")]


# ------------------------------------------------------------------------------ AIS transponders
#: Characters AIS can carry in names and call signs (its six-bit ASCII subset, upper case).
_AIS_TEXT = r"^[A-Z0-9 @\[\]^_!\"#$%&'()*+,\-./:;<=>?]*$"


class AisTransponder(_Model):
    """An AIS transponder: the vessel reports its true position and its static data by radio.

    Class A (SOLAS ships, ferries) sends position reports of type 1 and static and voyage data
    of type 5; class B (small craft) sends type 18 and static data of type 24 (parts A and B).
    """

    mmsi: int = Field(ge=1, le=999_999_999, description="Maritime Mobile Service Identity.")
    ais_class: Literal["A", "B"] = Field(
        alias="class", description="Transponder class: 'A' (types 1 and 5) or 'B' (18 and 24)."
    )
    interval_s: float = Field(default=10.0, gt=0, description="Time between position reports, s.")
    name: str = Field(
        default="",
        max_length=20,
        pattern=_AIS_TEXT,
        description="Vessel name, up to 20 characters of AIS text (upper case).",
    )
    callsign: str = Field(
        default="", max_length=7, pattern=_AIS_TEXT, description="Radio call sign, AIS text."
    )
    ship_type: int = Field(
        default=0, ge=0, le=99, description="AIS ship and cargo type (0: not available)."
    )
    static_interval_s: float = Field(
        default=360.0,
        gt=0,
        description="Time between static data messages (type 5, or type 24 parts A and B), s.",
    )


class TargetConfig(_Model):
    """One scripted target."""

    id: str | None = Field(
        default=None,
        min_length=1,
        description="Truth id written to truth.csv; default 'target-<index>'.",
    )
    target_class: TargetClassName = Field(
        alias="class", description="What the target is: person, boat or vehicle."
    )
    start_s: float = Field(default=0.0, ge=0, description="Birth time, s.")
    end_s: float | None = Field(
        default=None, gt=0, description="Death time, s; default: the end of the scenario."
    )
    motion: Motion = Field(description="How the target moves (type: waypoints | manoeuvring).")
    ais: AisTransponder | None = Field(
        default=None, description="AIS transponder the target carries; default none."
    )

    @model_validator(mode="after")
    def _check_life(self) -> TargetConfig:
        if self.end_s is not None and self.end_s <= self.start_s:
            raise _fail(("end_s",), "end_s must be later than start_s", self.end_s)
        return self


# ------------------------------------------------------------------------------------ generators
class _GeneratorBase(_Model):
    name: str = Field(
        min_length=1, description="Prefix of the generated truth ids: '<name>-<k>', k from 0."
    )
    count: int = Field(ge=0, description="How many targets to generate.")
    target_class: TargetClassName = Field(
        alias="class", description="Class of the generated targets."
    )
    speed_mps: PositiveRange = Field(description="Cruise speed drawn per target, m/s.")


class _FreeGenerator(_GeneratorBase):
    region: tuple[FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat] = Field(
        description="Box [x_min, y_min, x_max, y_max] (m) in which start positions are drawn."
    )
    min_border_distance_m: float = Field(
        default=0.0,
        ge=0,
        description="Start positions closer than this to the border are drawn again, m (keeps "
        "targets from crossing before a sensor has seen them for a while).",
    )
    start_s: NonNegativeRange = Field(default=(0.0, 0.0), description="Birth time range, s.")
    lifetime_s: PositiveRange | None = Field(
        default=None, description="Lifetime range, s; default: alive until the scenario ends."
    )
    manoeuvre: ManoeuvreSettings = Field(
        default_factory=ManoeuvreSettings, description="How the targets manoeuvre."
    )

    @model_validator(mode="after")
    def _check_region(self) -> _FreeGenerator:
        x0, y0, x1, y1 = self.region
        if x1 <= x0 or y1 <= y0:
            raise _fail(("region",), "region must have x_min < x_max and y_min < y_max", None)
        return self


class RandomGenerator(_FreeGenerator):
    """Targets starting uniformly in a box with a uniformly random heading."""

    heading: Literal["random"] = Field(description="Heading rule discriminator.")


class TowardBorderGenerator(_FreeGenerator):
    """Targets starting in a box and heading for the nearest point of the border.

    They manoeuvre freely afterwards, so some cross and some do not.
    """

    heading: Literal["toward_border"] = Field(description="Heading rule discriminator.")


class _BorderGenerator(_GeneratorBase):
    border_line: str | None = Field(
        default=None, description="Name of the border line used; default: the first line."
    )
    span: tuple[float, float] = Field(
        default=(0.0, 1.0),
        description="Part of the line used, as fractions [from, to] of its length.",
    )

    @model_validator(mode="after")
    def _check_span(self) -> _BorderGenerator:
        a, b = self.span
        if not 0.0 <= a < b <= 1.0:
            raise _fail(("span",), "span must satisfy 0 <= from < to <= 1", list(self.span))
        return self


class AlongBorderGenerator(_BorderGenerator):
    """Targets moving to and fro parallel to the border without crossing it (patrols, chatter)."""

    heading: Literal["along_border"] = Field(description="Heading rule discriminator.")
    offset_m: PositiveRange = Field(
        description="Distance from the border line at which a target moves, m."
    )
    side: Literal["left", "right", "random"] = Field(
        default="random", description="Side of the line the targets stay on."
    )
    start_s: NonNegativeRange = Field(default=(0.0, 0.0), description="Birth time range, s.")
    lifetime_s: PositiveRange | None = Field(
        default=None, description="Lifetime range, s; default: alive until the scenario ends."
    )


class AcrossBorderGenerator(_BorderGenerator):
    """Targets that each cross the border exactly once, at crossing points spread along it.

    The span is cut into ``count`` equal slots and each target crosses near the middle of its
    own slot (within its central fifth), so crossing points are at least ``0.8 · span length /
    count`` apart. Crossing times are likewise stratified over ``cross_at_s``, and crossings
    that are neighbours along the border are given times far apart.
    """

    heading: Literal["across_border"] = Field(description="Heading rule discriminator.")
    cross_at_s: NonNegativeRange = Field(description="Times at which the crossings happen, s.")
    before_s: PositiveRange = Field(
        default=(40.0, 90.0),
        description="How long before its crossing a target is born (is observable), s.",
    )
    after_s: PositiveRange = Field(
        default=(30.0, 60.0), description="How long after its crossing a target lives, s."
    )
    approach: Literal["manoeuvring", "along_border"] = Field(
        default="manoeuvring",
        description="'manoeuvring': random manoeuvres, then a straight final approach; "
        "'along_border': move along the line at offset_m (a boat on a river), then cross to "
        "the same offset on the far side and continue along it.",
    )
    final_approach_s: float = Field(
        default=20.0,
        ge=0,
        description="Straight, unmanoeuvred run just before the crossing, s (manoeuvring).",
    )
    max_angle_deg: float = Field(
        default=30.0,
        ge=0,
        lt=80,
        description="Largest deviation of the crossing heading from the border normal, degrees.",
    )
    offset_m: PositiveRange = Field(
        default=(20.0, 30.0),
        description="Distance from the line of the along-border approach and departure, m.",
    )
    clearance_m: float = Field(
        default=10.0,
        gt=0,
        description="Except while crossing, a target keeps at least this far from the border, m.",
    )
    manoeuvre: ManoeuvreSettings = Field(
        default_factory=ManoeuvreSettings,
        description="Manoeuvres before the final approach (manoeuvring approach).",
    )

    @model_validator(mode="after")
    def _check_times(self) -> AcrossBorderGenerator:
        if self.approach == "manoeuvring" and self.final_approach_s > self.before_s[0]:
            raise _fail(
                ("final_approach_s",),
                "final_approach_s must not exceed the smallest before_s",
                self.final_approach_s,
            )
        return self


TargetGenerator = Annotated[
    RandomGenerator | TowardBorderGenerator | AlongBorderGenerator | AcrossBorderGenerator,
    Field(discriminator="heading"),
]


# -------------------------------------------------------------------------------------- sensors
class PlatformGps(_Model):
    """A GNSS receiver (and optionally a heading sensor) on a platform.

    The position error is a first-order Gauss-Markov process per axis (east, north, up) with
    standard deviation ``sigma_m`` and correlation time ``correlation_s``: receiver errors wander
    slowly rather than jump from fix to fix.
    """

    rate_hz: float = Field(default=1.0, gt=0, le=20, description="Fixes per second, Hz.")
    sigma_m: float = Field(
        default=2.0, gt=0, description="1-σ horizontal position error per axis, m."
    )
    correlation_s: float = Field(
        default=30.0, ge=0, description="Correlation time of the position error, s (0: white)."
    )
    sigma_speed_mps: float = Field(
        default=0.05, ge=0, description="1-σ velocity error per axis, m/s."
    )
    heading_sensor: bool = Field(
        default=False, description="Whether a heading sensor sends HDT (true heading)."
    )
    sigma_heading_deg: float = Field(
        default=0.5, ge=0, description="1-σ error of the heading sensor, degrees."
    )
    fix_quality: Literal[1, 2] = Field(
        default=2, description="GGA fix quality: 1 autonomous GPS, 2 differential (SBAS, DGPS)."
    )
    satellites: int = Field(default=10, ge=4, le=64, description="Satellites in use.")
    hdop: float = Field(default=0.9, gt=0, description="Horizontal dilution of precision.")
    geoid_sep_m: FiniteFloat = Field(
        default=45.0,
        description="Geoid height above the ellipsoid, m (GGA altitude is above mean sea level).",
    )


class PlatformConfig(_Model):
    """A moving sensor platform (a patrol boat or vehicle) following a path at constant speed."""

    name: str = Field(min_length=1, description="Name sensors use to refer to the platform.")
    points: Polyline = Field(description="Path [x_m, y_m] waypoints.")
    speed_mps: float = Field(gt=0, description="Speed over ground, m/s.")
    repeat: Literal["hold", "loop", "reverse"] = Field(
        default="reverse",
        description="At the last waypoint: 'hold' (stop there), 'loop' (back to the first "
        "point) or 'reverse' (patrol to and fro).",
    )
    gps: PlatformGps | None = Field(
        default=None, description="GNSS receiver (and heading sensor) on board; default none."
    )
    ais: AisTransponder | None = Field(
        default=None, description="The platform's own AIS transponder; default none."
    )


class Mount(_Model):
    """Where a sensor is: a fixed position, or a named platform (exactly one of them)."""

    xy: Point | None = Field(default=None, description="Fixed position [x_m, y_m].")
    platform: str | None = Field(
        default=None, description="Name of the platform (under 'platforms') carrying the sensor."
    )

    @model_validator(mode="after")
    def _one_of(self) -> Mount:
        if (self.xy is None) == (self.platform is None):
            raise ValueError("give exactly one of 'xy' (fixed) or 'platform' (moving)")
        return self


class FieldOfView(_Model):
    """The area a sensor sees: a sector (or a full circle) up to a maximum range."""

    max_range_m: float = Field(gt=0, description="Largest detection range, m.")
    centre_azimuth_deg: FiniteFloat = Field(
        default=0.0,
        description="Centre of the sector, degrees clockwise from north (or from the platform "
        "heading when heading_relative).",
    )
    width_deg: float = Field(
        default=360.0, gt=0, le=360, description="Angular width of the sector, degrees."
    )
    heading_relative: bool = Field(
        default=False,
        description="Azimuth measured from the platform's heading instead of north (moving "
        "mounts only).",
    )


class _SensorBase(_Model):
    id: str = Field(min_length=1, description="Sensor id, unique in the scenario.")
    mount: Mount = Field(description="Fixed position or platform.")
    fov: FieldOfView = Field(description="Field of view.")
    pd: float = Field(ge=0, le=1, description="Probability of detecting a target in view per scan.")
    clutter_rate: float = Field(
        default=0.0,
        ge=0,
        description="Mean number of false detections per scan (Poisson), uniform over the "
        "field of view.",
    )
    update_interval_s: float = Field(gt=0, description="Time between scans, s.")
    phase_s: float = Field(default=0.0, ge=0, description="Time of the first scan, s.")


class PositionSensorConfig(_SensorBase):
    """A sensor reporting positions (a thermal camera with a rangefinder, a tower system)."""

    type: Literal["position"] = Field(description="Sensor type discriminator.")
    sigma_m: float = Field(gt=0, description="1-σ position noise per axis (isotropic), m.")
    class_confidence: float = Field(
        default=0.8, ge=0, le=1, description="Confidence of the class hint of a target detection."
    )


class RadarSensorConfig(_SensorBase):
    """A radar reporting range and bearing from its own position."""

    type: Literal["radar"] = Field(description="Sensor type discriminator.")
    sigma_range_m: float = Field(gt=0, description="1-σ range noise, m.")
    sigma_bearing_deg: float = Field(gt=0, description="1-σ bearing noise, degrees.")
    class_confidence: float = Field(
        default=0.4, ge=0, le=1, description="Confidence of the class hint of a target detection."
    )


class CameraSensorConfig(_SensorBase):
    """A camera without a rangefinder, reporting bearings only."""

    type: Literal["camera"] = Field(description="Sensor type discriminator.")
    sigma_bearing_deg: float = Field(gt=0, description="1-σ bearing noise, degrees.")
    class_confidence: float = Field(
        default=0.7, ge=0, le=1, description="Confidence of the class hint of a target detection."
    )


SensorConfig = Annotated[
    PositionSensorConfig | RadarSensorConfig | CameraSensorConfig,
    Field(discriminator="type"),
]


# ------------------------------------------------------------------------------- CO2 inspections
class Inspection(_Model):
    """A CO2 inspection of a vehicle's cargo space at a checkpoint.

    The probe is switched on at ``start_s`` in the outside air, goes into the cargo space at
    ``start_s + baseline_s`` and is withdrawn ``sample_s`` later. Readings come from
    :func:`borderwatch.simulator.co2.co2_series` (a well-mixed cargo space filling with the CO2
    the hidden people exhale since the doors closed).
    """

    vehicle_id: str = Field(
        min_length=1, description="The inspected vehicle (a plate, or a vehicle target's id)."
    )
    persons: int = Field(ge=0, description="People hidden in the cargo space (truth).")
    start_s: float = Field(ge=0, description="Time the probe starts reading outside air, s.")
    baseline_s: float = Field(
        default=30.0, ge=0, description="Outside-air readings before the probe goes in, s."
    )
    sample_s: float = Field(default=120.0, gt=0, description="Time the probe stays inside, s.")
    probe: str | None = Field(
        default=None,
        description="sensor_id of the gmp343/senseair device that takes the readings; "
        "default: every CO2 device.",
    )
    volume_m3: float = Field(default=67.0, gt=0, description="Free air volume of the cargo, m³.")
    closed_for_s: float = Field(
        default=1800.0, ge=0, description="How long the cargo had been closed when sampled, s."
    )
    air_changes_per_h: float = Field(
        default=0.5, ge=0, description="Air exchange of the closed cargo with the outside, 1/h."
    )
    exhale_l_per_h: float = Field(
        default=18.0, ge=0, description="CO2 each person exhales, L/h (18: an adult at rest)."
    )

    @property
    def sample_start_s(self) -> float:
        """Time the probe goes into the cargo space, s."""
        return self.start_s + self.baseline_s

    @property
    def sample_end_s(self) -> float:
        """Time the probe is withdrawn, s."""
        return self.sample_start_s + self.sample_s


# --------------------------------------------------------------------------------------- devices
class DeviceFaults(_Model):
    """Faults injected into a device's byte stream, drawn from the scenario seed.

    The rates are per line (per response for SenseAir): a line is dropped, garbled (some bytes
    replaced by line noise), or sent with a wrong checksum, at most one of them.
    """

    garble_rate: float = Field(default=0.0, ge=0, le=1, description="Share of garbled lines.")
    bad_checksum_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share of lines with a wrong checksum (or CRC)."
    )
    drop_rate: float = Field(default=0.0, ge=0, le=1, description="Share of lines never sent.")
    unplug_at_s: float | None = Field(
        default=None, ge=0, description="Time the device is unplugged, s; default never."
    )
    unplug_for_s: float = Field(default=10.0, gt=0, description="How long it stays unplugged, s.")

    @model_validator(mode="after")
    def _check_rates(self) -> DeviceFaults:
        total = self.garble_rate + self.bad_checksum_rate + self.drop_rate
        if total > 1.0:
            raise ValueError(f"fault rates add up to {total:g}, more than 1")
        return self


class _DeviceBase(_Model):
    sensor_id: str = Field(
        min_length=1,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Device id, unique among devices; also the name of its pty link.",
    )
    transport: Literal["pty", "udp"] = Field(
        default="pty", description="'pty' (a pseudo-terminal, like a serial port) or 'udp'."
    )
    udp_port: int | None = Field(
        default=None, ge=1, le=65535, description="Port on 127.0.0.1 (udp transport only)."
    )
    faults: DeviceFaults = Field(default_factory=DeviceFaults, description="Injected faults.")

    @model_validator(mode="after")
    def _check_transport(self) -> _DeviceBase:
        if (self.transport == "udp") != (self.udp_port is not None):
            raise _fail(("udp_port",), "udp_port is needed with, and only with, udp", None)
        return self


class GpsDevice(_DeviceBase):
    """NMEA 0183 GGA, RMC, VTG, GST (and HDT) of a platform's GNSS receiver."""

    type: Literal["gps"] = Field(description="Device type discriminator.")
    platform: str = Field(description="Platform whose 'gps' the device is.")


class AisDevice(_DeviceBase):
    """An AIS receiver: !AIVDM of the AIS-carrying targets, !AIVDO of its platform's transponder."""

    type: Literal["ais"] = Field(description="Device type discriminator.")
    platform: str | None = Field(
        default=None, description="Platform carrying the receiver (and its own transponder)."
    )
    range_m: float | None = Field(
        default=None,
        gt=0,
        description="Reception range from the platform, m; default: every vessel is heard.",
    )


class RadarDevice(_DeviceBase):
    """A radar's target tracking output: one TTM per target it detects, at its scan rate."""

    type: Literal["radar"] = Field(description="Device type discriminator.")
    platform: str = Field(description="Platform carrying the radar.")
    radar: str | None = Field(
        default=None,
        description="id of the 'type: radar' sensor on the platform whose scans are reported; "
        "default: the platform's only radar.",
    )
    bearing: Literal["true", "relative"] = Field(
        default="true", description="Bearings from north ('true') or from the bow ('relative')."
    )


class _Co2DeviceBase(_DeviceBase):
    interval_s: float = Field(default=2.0, gt=0, description="Time between measurements, s.")
    response_tau_s: float = Field(
        default=8.0, ge=0, description="Time constant of the sensor's response, s."
    )
    noise_ppm: float = Field(default=5.0, ge=0, description="1-σ reading noise, ppm.")
    ambient_ppm: float = Field(
        default=420.0, ge=0, description="Outside air CO2 at the probe's checkpoint, ppm."
    )


class Gmp343Device(_Co2DeviceBase):
    """A Vaisala GMP343-style probe streaming ASCII lines ``CO2=  2501.9 ppm  21.5 'C``."""

    type: Literal["gmp343"] = Field(description="Device type discriminator.")
    temperature_c: FiniteFloat = Field(default=21.5, description="Probe temperature, °C.")

    @model_validator(mode="after")
    def _no_checksum(self) -> Gmp343Device:
        if self.faults.bad_checksum_rate:
            raise _fail(("faults", "bad_checksum_rate"), "GMP343 lines carry no checksum", None)
        return self


class SenseAirDevice(_Co2DeviceBase):
    """A SenseAir K30/S8-style sensor answering Modbus RTU requests (polled, pty only)."""

    type: Literal["senseair"] = Field(description="Device type discriminator.")
    slave: int = Field(
        default=0x68, ge=1, le=247, description="Modbus address (it also answers 0xFE)."
    )
    range_ppm: int = Field(
        default=10_000,
        gt=0,
        lt=0x8000,
        description="Top of the measuring range, ppm; above it the out-of-range bit is set.",
    )

    @model_validator(mode="after")
    def _polled(self) -> SenseAirDevice:
        if self.transport != "pty":
            raise _fail(("transport",), "a polled Modbus sensor needs a pty", self.transport)
        return self


DeviceConfig = Annotated[
    GpsDevice | AisDevice | RadarDevice | Gmp343Device | SenseAirDevice,
    Field(discriminator="type"),
]
CO2_DEVICE_TYPES = ("gmp343", "senseair")


# ------------------------------------------------------------------------------------- scenario
class Scenario(_Model):
    """A complete simulation scenario."""

    name: str = Field(min_length=1, description="Scenario name.")
    description: str = Field(default="", description="Free text describing the scenario.")
    seed: int = Field(default=0, ge=0, description="Seed of all random draws.")
    duration_s: float = Field(gt=0, description="Length of the simulated run, s.")
    origin: Origin = Field(description="WGS-84 origin of the local frame.")
    border: list[BorderLine] = Field(min_length=1, description="Border lines.")
    targets: list[TargetConfig] = Field(default_factory=list, description="Scripted targets.")
    generate: list[TargetGenerator] = Field(
        default_factory=list,
        description="Generators of many targets (heading: random | toward_border | "
        "along_border | across_border).",
    )
    platforms: list[PlatformConfig] = Field(
        default_factory=list, description="Moving platforms carrying sensors."
    )
    sensors: list[SensorConfig] = Field(min_length=1, description="Sensors.")
    start_utc: datetime | None = Field(
        default=None,
        description="UTC date and time of t = 0 in device timestamps; default: when the "
        "devices start serving.",
    )
    inspections: list[Inspection] = Field(
        default_factory=list, description="CO2 inspections of vehicles at checkpoints."
    )
    devices: list[DeviceConfig] = Field(
        default_factory=list,
        description="Byte streams to emit (type: gps | ais | radar | gmp343 | senseair).",
    )

    @model_validator(mode="after")
    def _check_references(self) -> Scenario:
        _unique([b.name for b in self.border], "border", "name")
        _unique([p.name for p in self.platforms], "platforms", "name")
        _unique([s.id for s in self.sensors], "sensors", "id")
        _unique([g.name for g in self.generate], "generate", "name")
        _unique([t.id or f"target-{i}" for i, t in enumerate(self.targets)], "targets", "id")
        scripted = {t.id or f"target-{i}" for i, t in enumerate(self.targets)}
        for i, g in enumerate(self.generate):
            clash = sorted(scripted & {f"{g.name}-{k}" for k in range(g.count)})
            if clash:
                message = f"generated id {clash[0]!r} is also a target id"
                raise _fail(("generate", i, "name"), message, g.name)
        lines = {b.name for b in self.border}
        for i, g in enumerate(self.generate):
            name = g.border_line if isinstance(g, _BorderGenerator) else None
            if name is not None and name not in lines:
                raise _fail(("generate", i, "border_line"), f"no border line named {name!r}", name)
        platforms = {p.name for p in self.platforms}
        for i, s in enumerate(self.sensors):
            name = s.mount.platform
            if name is not None and name not in platforms:
                raise _fail(
                    ("sensors", i, "mount", "platform"), f"no platform named {name!r}", name
                )
            if name is None and s.fov.heading_relative:
                raise _fail(
                    ("sensors", i, "fov", "heading_relative"),
                    "heading_relative needs a platform mount",
                    True,
                )
        return self

    @model_validator(mode="after")
    def _check_devices(self) -> Scenario:
        _unique([d.sensor_id for d in self.devices], "devices", "sensor_id")
        ports = [str(d.udp_port) for d in self.devices if d.udp_port is not None]
        _unique(ports, "devices", "udp_port")
        self._check_mmsis()
        platforms = {p.name: p for p in self.platforms}
        for i, d in enumerate(self.devices):
            name = getattr(d, "platform", None)
            if name is not None and name not in platforms:
                raise _fail(("devices", i, "platform"), f"no platform named {name!r}", name)
            if isinstance(d, GpsDevice) and platforms[d.platform].gps is None:
                raise _fail(("devices", i, "platform"), f"platform {d.platform!r} has no gps", None)
            if isinstance(d, RadarDevice):
                self.radar_of(d, i)
        self._check_inspections()
        return self

    def _check_mmsis(self) -> None:
        carriers: list[tuple[str, int, AisTransponder | None]] = [
            *(("targets", i, t.ais) for i, t in enumerate(self.targets)),
            *(("platforms", i, p.ais) for i, p in enumerate(self.platforms)),
        ]
        seen: set[int] = set()
        for field, i, ais in carriers:
            if ais is not None:
                if ais.mmsi in seen:
                    raise _fail((field, i, "ais", "mmsi"), f"duplicate mmsi {ais.mmsi}", ais.mmsi)
                seen.add(ais.mmsi)

    def _check_inspections(self) -> None:
        probes = [d.sensor_id for d in self.devices if d.type in CO2_DEVICE_TYPES]
        for i, ins in enumerate(self.inspections):
            if ins.probe is not None and ins.probe not in probes:
                message = f"no gmp343 or senseair device with sensor_id {ins.probe!r}"
                raise _fail(("inspections", i, "probe"), message, ins.probe)
        for probe in probes:
            mine = sorted(
                (ins.start_s, ins.sample_end_s, i)
                for i, ins in enumerate(self.inspections)
                if ins.probe in (None, probe)
            )
            for (_s0, end, _i), (start, _e1, i) in pairwise(mine):
                if start < end:
                    message = f"starts before the previous inspection with probe {probe!r} ends"
                    raise _fail(("inspections", i, "start_s"), message, start)

    def radar_of(self, device: RadarDevice, index: int = 0) -> RadarSensorConfig:
        """The radar sensor whose scans a radar device reports."""
        radars = [
            s
            for s in self.sensors
            if isinstance(s, RadarSensorConfig) and s.mount.platform == device.platform
        ]
        chosen = [s for s in radars if device.radar in (None, s.id)]
        if len(chosen) != 1:
            which = f"radar {device.radar!r}" if device.radar else "exactly one radar"
            message = f"platform {device.platform!r} carries no {which}"
            if len(chosen) > 1:
                message = f"platform {device.platform!r} carries several radars: name one"
            raise _fail(("devices", index, "radar"), message, device.radar)
        return chosen[0]

    def target_ids(self) -> list[str]:
        """Truth ids of the scripted targets, then of each generator's targets, in order."""
        ids = [t.id or f"target-{i}" for i, t in enumerate(self.targets)]
        for g in self.generate:
            ids.extend(f"{g.name}-{k}" for k in range(g.count))
        return ids


def _unique(values: list[str], field: str, key: str) -> None:
    seen: dict[str, int] = {}
    for i, value in enumerate(values):
        if value in seen:
            raise _fail((field, i, key), f"duplicate {key} {value!r}", value)
        seen[value] = i


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file; raises ConfigError with the file and line."""
    from borderwatch.config.yamlload import load_yaml_model

    return load_yaml_model(path, Scenario)


__all__ = [
    "CO2_DEVICE_TYPES",
    "AcrossBorderGenerator",
    "AisDevice",
    "AisTransponder",
    "AlongBorderGenerator",
    "BorderLine",
    "CameraSensorConfig",
    "DeviceConfig",
    "DeviceFaults",
    "FieldOfView",
    "Gmp343Device",
    "GpsDevice",
    "Inspection",
    "ManoeuvreSettings",
    "ManoeuvringMotion",
    "Mount",
    "Origin",
    "PlatformConfig",
    "PlatformGps",
    "PositionSensorConfig",
    "RadarDevice",
    "RadarSensorConfig",
    "RandomGenerator",
    "Scenario",
    "SenseAirDevice",
    "SensorConfig",
    "TargetConfig",
    "TargetGenerator",
    "TowardBorderGenerator",
    "WaypointMotion",
    "load_scenario",
]
