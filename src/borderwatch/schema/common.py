"""Pieces every wire message shares: the envelope, identifiers, time, positions, covariance,
velocity, class hints and provenance.

Conventions (see ``docs/schema.md``):

* Times are timezone-aware and normalised to UTC; naive datetimes and bare numbers are refused.
* Positions are WGS-84 (``lat_deg``, ``lon_deg``, optional ``alt_m`` above the ellipsoid), plus
  local east/north metres (``x_m``, ``y_m``) when the sender has them. Local metres are only
  meaningful with the plane's origin, so a message that carries them also carries
  ``enu_origin``, and the two descriptions must agree.
* Covariances are nested arrays in the east/north axes (then east/north velocity for a state),
  symmetric and positive semi-definite.
* Numbers must be finite JSON numbers: strings, booleans, NaN and infinities are refused.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, Self

import numpy as np
import pymap3d
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.types import AllowInfNan, Strict
from ulid import ULID

from borderwatch.errors import InputError
from borderwatch.fusion.borders import BorderKind
from borderwatch.fusion.detections import FloatArray, TargetClass
from borderwatch.fusion.frames import LocalFrame

#: Major version of the wire schema this code writes and reads.
SCHEMA_VERSION: Final = "1"

#: Local metres must match the WGS-84 position within this, plus :data:`ENU_TOLERANCE_REL` of
#: the distance from the origin (the flat plane and the Earth part ways slowly with distance).
ENU_TOLERANCE_M: Final = 1.0
ENU_TOLERANCE_REL: Final = 1e-4

#: Relative tolerance of the symmetry and positive semi-definiteness checks of covariances.
COV_TOLERANCE: Final = 1e-9


class MessageError(InputError):
    """A payload that is not a valid message of this schema; the text says which field and why."""


# --------------------------------------------------------------------------------------- types


def _refuse_numbers(value: Any) -> Any:
    # Lax datetime parsing would read a bare number as a Unix time; a wire timestamp must say
    # its time zone, so only RFC 3339 strings (or datetime objects in Python) are accepted.
    if isinstance(value, int | float):
        raise ValueError("timestamps must be RFC 3339 strings with a time zone, not numbers")
    return value


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_refuse_numbers), AfterValidator(_to_utc)]
"""A timezone-aware instant, normalised to UTC; naive datetimes are refused."""

FiniteFloat = Annotated[float, Strict(), AllowInfNan(False)]
"""A finite JSON number (integers are accepted as floats, strings and booleans are not)."""

Matrix2 = tuple[tuple[FiniteFloat, FiniteFloat], tuple[FiniteFloat, FiniteFloat]]
_Row4 = tuple[FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat]
Matrix4 = tuple[_Row4, _Row4, _Row4, _Row4]

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"

MsgId = Annotated[
    str,
    BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v),
    StringConstraints(strict=True, pattern=r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$"),
]
"""A ULID in canonical Crockford base32 (26 characters, upper case; lower case is normalised)."""

NodeId = Annotated[str, StringConstraints(strict=True, pattern=rf"^{_NAME}$")]
"""A node id from configuration: letters, digits, ``_.-``; no ``:`` (it separates track ids)."""

SensorId = Annotated[
    str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")
]
"""A sensor id from configuration; ``:`` and ``/`` allowed to qualify it with a node id."""

NodePrefixedId = Annotated[str, StringConstraints(strict=True, pattern=rf"^{_NAME}:[0-9]{{1,19}}$")]
"""An id made unique across nodes by the node id: ``boat-2:417``."""

SoftwareVersion = Annotated[str, StringConstraints(strict=True, pattern=r"^\S{1,64}$")]
"""A software version string without white space, e.g. ``0.3.1`` or ``0.3.1+g1a2b3c``."""

Probability = Annotated[float, Strict(), AllowInfNan(False), Field(ge=0.0, le=1.0)]
"""A number in [0, 1]."""

Count = Annotated[StrictInt, Field(ge=0)]
"""A non-negative integer counter."""


def new_msg_id() -> str:
    """A fresh ULID (current time in milliseconds + 80 random bits) for ``msg_id``."""
    return str(ULID())


def msg_id_time(msg_id: str) -> datetime:
    """The creation time encoded in a ULID message id (millisecond resolution, UTC)."""
    return ULID.from_str(msg_id.upper()).datetime


# --------------------------------------------------------------------------------- covariance


def covariance_problem(matrix: FloatArray) -> str | None:
    """Why ``matrix`` is not a covariance (square, symmetric, positive semi-definite), or None.

    The checks are scale-free: the matrix is first normalised by its standard deviations, so a
    state covariance mixing m² and (m/s)² is judged like a correlation matrix.
    """
    a = np.asarray(matrix, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        return f"covariance must be a square matrix, got shape {a.shape}"
    if not np.all(np.isfinite(a)):
        return "covariance entries must be finite"
    diag = np.diag(a)
    if np.any(diag < 0):
        return "covariance diagonal (variances) must be non-negative"
    sd = np.sqrt(diag)
    scale = np.where(sd > 0, sd, 1.0)
    c = a / np.outer(scale, scale)
    if np.max(np.abs(c - c.T)) > COV_TOLERANCE * max(1.0, float(np.max(np.abs(c)))):
        return "covariance must be symmetric"
    if float(np.linalg.eigvalsh((c + c.T) / 2.0).min()) < -COV_TOLERANCE * a.shape[0]:
        return "covariance must be positive semi-definite"
    return None


def _problem2(m: Matrix2) -> str | None:
    # Closed form of covariance_problem for 2×2: this runs on every detection received.
    (a, b), (c, d) = m
    if a < 0 or d < 0:
        return "covariance diagonal (variances) must be non-negative"
    sa, sd = math.sqrt(a) or 1.0, math.sqrt(d) or 1.0
    if abs(b - c) / (sa * sd) > COV_TOLERANCE * max(1.0, abs(b) / (sa * sd)):
        return "covariance must be symmetric"
    if (a / sa**2) * (d / sd**2) - (b / (sa * sd)) ** 2 < -COV_TOLERANCE * 2:
        return "covariance must be positive semi-definite"
    return None


def _check_cov2(value: Matrix2) -> Matrix2:
    problem = _problem2(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def small_covariance_problem(m: Sequence[Sequence[float]]) -> str | None:
    """:func:`covariance_problem` of a small square matrix of finite floats, in plain Python.

    Same verdicts (up to rounding at the tolerance): the semi-definiteness test is a Cholesky
    factorisation of the normalised, symmetrised matrix plus ``COV_TOLERANCE · n`` on its
    diagonal, which succeeds exactly when its least eigenvalue is above ``-COV_TOLERANCE · n``.
    Every track message carries a 4×4 state covariance; numpy's per-call overhead made this
    check the largest cost of building or reading one.
    """
    n = len(m)
    if any(m[i][i] < 0 for i in range(n)):
        return "covariance diagonal (variances) must be non-negative"
    scale = [math.sqrt(m[i][i]) or 1.0 for i in range(n)]
    c = [[m[i][j] / (scale[i] * scale[j]) for j in range(n)] for i in range(n)]
    largest = max(abs(x) for row in c for x in row)
    skew = max(abs(c[i][j] - c[j][i]) for i in range(n) for j in range(i + 1, n))
    if skew > COV_TOLERANCE * max(1.0, largest):
        return "covariance must be symmetric"
    shift = COV_TOLERANCE * n
    low: list[list[float]] = [[0.0] * n for _ in range(n)]
    for j in range(n):
        pivot = (c[j][j] + shift) - sum(low[j][k] ** 2 for k in range(j))
        if not pivot > 0.0:
            return "covariance must be positive semi-definite"
        low[j][j] = math.sqrt(pivot)
        for i in range(j + 1, n):
            cij = (c[i][j] + c[j][i]) / 2.0
            low[i][j] = (cij - sum(low[i][k] * low[j][k] for k in range(j))) / low[j][j]
    return None


def _check_cov4(value: Matrix4) -> Matrix4:
    problem = small_covariance_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Cov2 = Annotated[Matrix2, AfterValidator(_check_cov2)]
"""2×2 covariance ``[[ee, en], [ne, nn]]``."""

Cov4 = Annotated[Matrix4, AfterValidator(_check_cov4)]
"""4×4 covariance over ``[x_m, y_m, vx_mps, vy_mps]``."""


def matrix2(a: FloatArray) -> Matrix2:
    """A 2×2 array as the nested tuples of a :data:`Cov2` field."""
    return ((float(a[0, 0]), float(a[0, 1])), (float(a[1, 0]), float(a[1, 1])))


def matrix4(a: FloatArray) -> Matrix4:
    """A 4×4 array as the nested tuples of a :data:`Cov4` field."""
    r = [(float(a[i, 0]), float(a[i, 1]), float(a[i, 2]), float(a[i, 3])) for i in range(4)]
    return (r[0], r[1], r[2], r[3])


# ---------------------------------------------------------------------------------- enums


class TargetClassName(StrEnum):
    """Class hint on the wire: the name form of the core's ``TargetClass``."""

    UNKNOWN = "unknown"
    PERSON = "person"
    BOAT = "boat"
    VEHICLE = "vehicle"

    @classmethod
    def from_core(cls, value: int) -> TargetClassName:
        """The wire name of a core class index (raises ValueError for an unknown index)."""
        return cls[TargetClass(value).name]

    def to_core(self) -> TargetClass:
        """The core class index."""
        return TargetClass[self.name]


class BorderKindName(StrEnum):
    """Border type on the wire: the name form of the core's ``BorderKind``."""

    GREEN = "green"
    BLUE = "blue"

    @classmethod
    def from_core(cls, value: int) -> BorderKindName:
        """The wire name of a core border kind."""
        return cls[BorderKind(value).name]

    def to_core(self) -> BorderKind:
        """The core border kind."""
        return BorderKind[self.name]


# ---------------------------------------------------------------------------------- parts


class WireModel(BaseModel):
    """Base of every wire model: unknown fields refused, immutable, finite numbers only."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EnuOrigin(WireModel):
    """Origin of the local east-north-up plane that ``x_m`` / ``y_m`` fields are measured in."""

    lat_deg: FiniteFloat = Field(ge=-90.0, le=90.0, description="Latitude of the origin, degrees.")
    lon_deg: FiniteFloat = Field(
        ge=-180.0, le=180.0, description="Longitude of the origin, degrees."
    )
    alt_m: FiniteFloat = Field(
        default=0.0, description="Height of the origin above the WGS-84 ellipsoid, m."
    )

    @classmethod
    def from_frame(cls, frame: LocalFrame) -> EnuOrigin:
        """The origin of a fusion frame."""
        return cls(lat_deg=frame.lat_deg, lon_deg=frame.lon_deg, alt_m=frame.alt_m)

    def to_frame(self) -> LocalFrame:
        """The fusion frame with this origin."""
        return LocalFrame(self.lat_deg, self.lon_deg, self.alt_m)

    def is_frame(self, frame: LocalFrame) -> bool:
        """True when this is exactly the origin of ``frame``."""
        return (self.lat_deg, self.lon_deg, self.alt_m) == (
            frame.lat_deg,
            frame.lon_deg,
            frame.alt_m,
        )


class GeoPoint(WireModel):
    """A WGS-84 position, with local plane metres when the sender has them."""

    lat_deg: FiniteFloat = Field(ge=-90.0, le=90.0, description="WGS-84 latitude, degrees north.")
    lon_deg: FiniteFloat = Field(ge=-180.0, le=180.0, description="WGS-84 longitude, degrees east.")
    alt_m: FiniteFloat | None = Field(
        default=None, description="Height above the WGS-84 ellipsoid, m; null when unknown."
    )
    x_m: FiniteFloat | None = Field(
        default=None,
        description="East of the message's enu_origin, m; null when the sender has no plane.",
    )
    y_m: FiniteFloat | None = Field(
        default=None, description="North of the message's enu_origin, m; set with x_m."
    )

    @model_validator(mode="after")
    def _xy_together(self) -> Self:
        if (self.x_m is None) != (self.y_m is None):
            raise ValueError("x_m and y_m must be given together")
        return self


@functools.lru_cache(maxsize=64)
def _origin_ecef(lat_deg: float, lon_deg: float, alt_m: float) -> tuple[float, float, float]:
    """ECEF position (m) of a plane's origin: a deployment has a handful of origins."""
    x, y, z = pymap3d.geodetic2ecef(lat_deg, lon_deg, alt_m)
    return float(x), float(y), float(z)


#: Validation context key: a caller that validates many messages at once and then checks their
#: local positions together with :func:`local_position_problems` sets it to skip the
#: one-by-one check (``TypeAdapter(list[Detection]).validate_json(data, context={KEY: True})``).
DEFER_POSITION_CHECK: Final = "borderwatch.defer_position_check"


def local_position_problems(
    messages: Sequence[tuple[EnuOrigin | None, Sequence[GeoPoint]]],
) -> list[str | None]:
    """:func:`check_local_positions` of many messages at once, vectorised per origin: for each
    ``(origin, points)`` None, or the problem :func:`check_local_positions` would raise."""
    problems: list[str | None] = [None] * len(messages)
    by_origin: dict[tuple[float, float, float], list[tuple[int, GeoPoint]]] = {}
    for k, (origin, points) in enumerate(messages):
        for p in points:
            if p.x_m is None or p.y_m is None:
                continue
            if origin is None:
                problems[k] = "positions with x_m/y_m need enu_origin"
                break
            key = (origin.lat_deg, origin.lon_deg, origin.alt_m)
            by_origin.setdefault(key, []).append((k, p))
    for (lat0, lon0, alt0), rows in by_origin.items():
        lat = np.array([p.lat_deg for _, p in rows])
        lon = np.array([p.lon_deg for _, p in rows])
        alt = np.array([alt0 if p.alt_m is None else p.alt_m for _, p in rows])
        local = np.array([(p.x_m, p.y_m) for _, p in rows], dtype=np.float64)
        x, y, z = pymap3d.geodetic2ecef(lat, lon, alt)
        x0, y0, z0 = _origin_ecef(lat0, lon0, alt0)
        e, n, _u = pymap3d.uvw2enu(x - x0, y - y0, z - z0, lat0, lon0)
        error = np.hypot(local[:, 0] - e, local[:, 1] - n)
        bad = error > ENU_TOLERANCE_M + ENU_TOLERANCE_REL * np.hypot(e, n)
        for i in np.flatnonzero(bad).tolist():
            k, p = rows[i]
            if problems[k] is None:
                problems[k] = (
                    f"x_m/y_m ({p.x_m:.2f}, {p.y_m:.2f}) disagree with lat/lon by "
                    f"{error[i]:.1f} m as seen from enu_origin ({lat0}, {lon0}); wrong origin?"
                )
    return problems


def check_local_positions(origin: EnuOrigin | None, points: Sequence[GeoPoint]) -> None:
    """Raise ValueError unless every point's ``x_m``/``y_m`` is explained by ``origin``.

    Points with local metres need an origin, and their metres must be the WGS-84 position seen
    from that origin within ``ENU_TOLERANCE_M + ENU_TOLERANCE_REL · distance``: a message with
    local coordinates of the wrong origin is refused instead of being plotted in the wrong place.
    """
    for p in points:
        if p.x_m is None or p.y_m is None:
            continue
        if origin is None:
            raise ValueError("positions with x_m/y_m need enu_origin")
        # pymap3d.geodetic2enu step by step, with the origin's ECEF position cached: every
        # message of a node has the same origin, so this halves the cost (same results).
        alt = origin.alt_m if p.alt_m is None else p.alt_m
        x, y, z = pymap3d.geodetic2ecef(p.lat_deg, p.lon_deg, alt)
        x0, y0, z0 = _origin_ecef(origin.lat_deg, origin.lon_deg, origin.alt_m)
        e, n, _u = pymap3d.uvw2enu(x - x0, y - y0, z - z0, origin.lat_deg, origin.lon_deg)
        error = math.hypot(p.x_m - e, p.y_m - n)
        if error > ENU_TOLERANCE_M + ENU_TOLERANCE_REL * math.hypot(e, n):
            raise ValueError(
                f"x_m/y_m ({p.x_m:.2f}, {p.y_m:.2f}) disagree with lat/lon by {error:.1f} m as "
                f"seen from enu_origin ({origin.lat_deg}, {origin.lon_deg}); wrong origin?"
            )


class Velocity(WireModel):
    """Velocity over ground, as east/north components and as speed and course.

    Both forms are carried because consumers want either; they must agree:
    ``speed_mps · (sin course, cos course) = (vx_mps, vy_mps)`` within 1 mm/s (+ 1 ppm).
    The axes are those of the local plane (within a fraction of a degree of true north at the
    distances a node watches).
    """

    vx_mps: FiniteFloat = Field(description="East component, m/s.")
    vy_mps: FiniteFloat = Field(description="North component, m/s.")
    speed_mps: FiniteFloat = Field(ge=0.0, description="Speed over ground, m/s.")
    course_deg: FiniteFloat = Field(
        ge=0.0,
        lt=360.0,
        description="Course over ground, degrees clockwise from north in [0, 360); 0 when the "
        "speed is 0.",
    )

    @model_validator(mode="after")
    def _forms_agree(self) -> Self:
        c = math.radians(self.course_deg)
        ex = self.speed_mps * math.sin(c) - self.vx_mps
        ey = self.speed_mps * math.cos(c) - self.vy_mps
        if math.hypot(ex, ey) > 1e-3 + 1e-6 * self.speed_mps:
            raise ValueError("speed_mps/course_deg disagree with vx_mps/vy_mps")
        return self

    @classmethod
    def from_enu(cls, vx_mps: float, vy_mps: float) -> Velocity:
        """Velocity from east/north components, with speed and course derived."""
        return cls(
            vx_mps=vx_mps,
            vy_mps=vy_mps,
            speed_mps=math.hypot(vx_mps, vy_mps),
            course_deg=compass_deg(math.degrees(math.atan2(vx_mps, vy_mps))),
        )


def compass_deg(angle_deg: float) -> float:
    """An angle in degrees wrapped to [0, 360) (never 360.0 from rounding)."""
    wrapped = angle_deg % 360.0
    return 0.0 if wrapped >= 360.0 else wrapped


class ClassHint(WireModel):
    """What the target is thought to be, and how sure the sender is."""

    label: TargetClassName = Field(description="unknown, person, boat or vehicle.")
    confidence: Probability = Field(description="Confidence of the label, in [0, 1].")


class Provenance(WireModel):
    """Where a message comes from and whether it describes the real world.

    ``simulated`` and ``exercise`` are independent: a simulator run outside any exercise is
    ``simulated`` only; real sensors during a declared exercise or joint operation are
    ``exercise`` only (the crossings may still be real); a simulated inject into an exercise
    is both.
    """

    node_id: NodeId = Field(description="Node that produced this message.")
    sensor_ids: tuple[SensorId, ...] = Field(
        default=(),
        description="Sensors whose data contributed, as named in configuration (unique).",
    )
    contributing_node_ids: tuple[NodeId, ...] = Field(
        default=(),
        description="Other nodes whose messages contributed (a centre's fused output); empty "
        "for a node's own output.",
    )
    software_version: SoftwareVersion = Field(
        description="borderwatch (or partner software) version that produced the message."
    )
    simulated: StrictBool = Field(
        description="True when the content comes from a simulator, not from the real world."
    )
    exercise: StrictBool = Field(
        description="True when produced during a declared exercise or joint operation."
    )

    @field_validator("sensor_ids", "contributing_node_ids")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("ids must be unique")
        return value


# ------------------------------------------------------------------------------- envelope


def check_schema_version(data: Any) -> Any:
    """Raise ValueError when a payload (a dict) states a schema version other than ours.

    Run before anything else, so a payload of another major version gets one clear error
    instead of a list of field errors from a schema it was never written against.
    """
    if isinstance(data, dict) and "schema_version" in data:
        version = data["schema_version"]
        if version != SCHEMA_VERSION:
            major = str(version).split(".", 1)[0]
            if major == SCHEMA_VERSION:
                raise ValueError(
                    f"schema_version must be the major version only: "
                    f"{SCHEMA_VERSION!r}, got {version!r}"
                )
            raise ValueError(
                f"unsupported schema_version {version!r}: this receiver reads major "
                f"version {SCHEMA_VERSION!r} only"
            )
    return data


class Envelope(WireModel):
    """Fields every message has; subclasses fix ``type`` and list their positions."""

    schema_version: Literal["1"] = Field(
        default=SCHEMA_VERSION,
        description='Major version of this schema: "1". Other major versions are refused.',
    )
    type: str = Field(
        description='Message type, which selects the model: "detection", "track", "alert", '
        '"node_state" or "concealment".'
    )
    msg_id: MsgId = Field(
        description="ULID of this message (26 characters, Crockford base32), unique across "
        "nodes; receivers de-duplicate on it."
    )
    time: UtcDatetime = Field(
        description="Measurement (or estimate, event, report) time, RFC 3339 in UTC."
    )
    received_at: UtcDatetime | None = Field(
        default=None,
        description="When the producing node received the underlying data, UTC; null when "
        "unknown. received_at - time is the sensing latency.",
    )
    provenance: Provenance = Field(description="Where the message comes from.")
    enu_origin: EnuOrigin | None = Field(
        default=None,
        description="Origin of the local plane of every x_m/y_m in the message; required "
        "when any is given.",
    )

    @field_validator("schema_version", mode="before")
    @classmethod
    def _known_version(cls, version: Any) -> Any:
        # A field validator, not a model one: a model "before" validator would make
        # pydantic-core hand the whole payload to Python first, which doubled the cost of
        # reading a detection. parse_message() checks the version before anything else, so
        # a payload of another major version still gets that one clear error there.
        check_schema_version({"schema_version": version})
        return version

    @model_validator(mode="after")
    def _local_positions_agree(self, info: ValidationInfo) -> Self:
        if not (info.context and info.context.get(DEFER_POSITION_CHECK)):
            check_local_positions(self.enu_origin, self.geo_points())
        return self

    def geo_points(self) -> list[GeoPoint]:
        """Every position in the message (for the ``enu_origin`` check)."""
        return []
