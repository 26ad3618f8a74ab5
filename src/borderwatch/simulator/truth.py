"""Ground-truth target motion: piecewise-analytic trajectories and the targets of a scenario.

A :class:`Trajectory` is a sequence of legs, each starting at a time ``t0`` with a position,
heading, speed, turn rate and acceleration. Within a leg the motion has a closed form, so a
trajectory can be evaluated at any times (the scan times of whichever sensors a scenario has)
without integrating on a grid: adding a sensor never changes where a target is.

Conventions: positions are metres east/north in the scenario's local ENU frame; headings are
radians clockwise from north (unit vector ``(sin h, cos h)``); a positive turn rate turns right.

Randomness: every scripted target, every generated target and every generator has its own
``numpy.random.Generator`` (PCG64) seeded from ``SeedSequence(seed, spawn_key=...)`` with a
stable key (see :func:`stream`), so the draws of one never depend on how many others there are.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely import ops

from borderwatch.config.scenario import (
    AcrossBorderGenerator,
    AlongBorderGenerator,
    ManoeuvreSettings,
    ManoeuvringMotion,
    RandomGenerator,
    Scenario,
    TargetConfig,
    TowardBorderGenerator,
    WaypointMotion,
)
from borderwatch.errors import ConfigError
from borderwatch.fusion.borders import Border
from borderwatch.fusion.detections import FloatArray, IntArray, TargetClass

log = logging.getLogger(__name__)

#: ``spawn_key`` domains of the random streams (first element of the key).
TARGET_STREAM = 0
SENSOR_STREAM = 1
GENERATED_TARGET_STREAM = 2
GENERATOR_STREAM = 3

#: Trajectories longer than this many legs are refused (a path too short for its duration).
MAX_LEGS = 200_000
#: Sampling step used to check that a generated crossing crosses once, s.
CHECK_STEP_S = 0.5
#: Attempts at drawing a generated crossing that meets its constraints before falling back.
CROSSING_ATTEMPTS = 30
#: Attempts at drawing a start position far enough from the border.
START_ATTEMPTS = 1000

CLASS_BY_NAME = {
    "person": TargetClass.PERSON,
    "boat": TargetClass.BOAT,
    "vehicle": TargetClass.VEHICLE,
}


def stream(seed: int, *key: int) -> np.random.Generator:
    """The random generator of one simulation entity, keyed by stable indices."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def unit(heading_rad: FloatArray | float) -> FloatArray:
    """Unit vectors ``(..., 2)`` of headings clockwise from north."""
    h = np.asarray(heading_rad, dtype=np.float64)
    return np.stack([np.sin(h), np.cos(h)], axis=-1)


def heading_of(vector: FloatArray) -> float:
    """Heading (radians clockwise from north) of a 2-vector."""
    return math.atan2(float(vector[0]), float(vector[1]))


# ----------------------------------------------------------------------------------- trajectory
def advance(
    p0: FloatArray,
    heading_rad: FloatArray,
    speed_mps: FloatArray,
    turn_rate_rps: FloatArray,
    accel_mps2: FloatArray,
    dt: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Position ``(n, 2)``, heading and speed after ``dt`` seconds of one leg each.

    A leg either turns at constant speed (a coordinated turn) or accelerates along a straight
    line. The chord form ``s·sinc(ω·dt/2)`` towards the mid-leg heading is exact for both and
    numerically stable as the turn rate ``ω`` goes to zero.
    """
    distance = (speed_mps + 0.5 * accel_mps2 * dt) * dt
    half = 0.5 * turn_rate_rps * dt
    chord = distance * np.sinc(half / np.pi)
    p = p0 + chord[:, None] * unit(heading_rad + half)
    return p, heading_rad + 2.0 * half, speed_mps + accel_mps2 * dt


@dataclass(frozen=True, slots=True)
class Trajectory:
    """Piecewise-analytic motion: ``m`` legs, leg ``i`` valid from ``t0[i]`` to ``t0[i + 1]``.

    The last leg continues indefinitely; a target's life (birth, death) is kept separately.
    Arrays: ``t0`` (s, increasing), ``p0`` (m, ``(m, 2)``), ``heading_rad`` (clockwise from
    north), ``speed_mps``, ``turn_rate_rps`` (clockwise positive), ``accel_mps2``.
    """

    t0: FloatArray
    p0: FloatArray
    heading_rad: FloatArray
    speed_mps: FloatArray
    turn_rate_rps: FloatArray
    accel_mps2: FloatArray

    def evaluate(self, t: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Position ``(n, 2)`` m, velocity ``(n, 2)`` m/s and heading (rad) at times ``t`` (s).

        Times before the first leg are evaluated on the first leg, extrapolated backwards.
        """
        t = np.asarray(t, dtype=np.float64)
        leg = np.clip(np.searchsorted(self.t0, t, side="right") - 1, 0, len(self.t0) - 1)
        p, h, s = advance(
            self.p0[leg],
            self.heading_rad[leg],
            self.speed_mps[leg],
            self.turn_rate_rps[leg],
            self.accel_mps2[leg],
            t - self.t0[leg],
        )
        return p, s[:, None] * unit(h), h


@dataclass(slots=True)
class TrajectoryBuilder:
    """Appends legs to a trajectory, keeping the state (time, position, heading, speed)."""

    t: float
    xy: FloatArray
    heading_rad: float
    speed_mps: float
    _legs: list[tuple[float, float, float, float, float, float, float]] = field(
        default_factory=list
    )

    def leg(self, duration_s: float, turn_rate_rps: float = 0.0, accel_mps2: float = 0.0) -> None:
        """A leg of ``duration_s`` seconds turning (rad/s, right positive) or accelerating."""
        if len(self._legs) >= MAX_LEGS:
            raise ConfigError(f"a trajectory needs more than {MAX_LEGS} legs; is a path too short?")
        x, y = float(self.xy[0]), float(self.xy[1])
        self._legs.append(
            (self.t, x, y, self.heading_rad, self.speed_mps, turn_rate_rps, accel_mps2)
        )
        p, h, s = advance(
            self.xy[None, :],
            np.array([self.heading_rad]),
            np.array([self.speed_mps]),
            np.array([turn_rate_rps]),
            np.array([accel_mps2]),
            np.array([duration_s]),
        )
        self.t += duration_s
        self.xy = p[0]
        self.heading_rad = float(h[0])
        self.speed_mps = max(float(s[0]), 0.0)

    def goto(self, xy: FloatArray, speed_mps: float) -> None:
        """A straight leg at ``speed_mps`` to ``xy``, ending exactly there."""
        d = np.asarray(xy, dtype=np.float64) - self.xy
        length = float(np.hypot(d[0], d[1]))
        if length <= 0.0:
            return
        self.heading_rad = heading_of(d)
        self.speed_mps = speed_mps
        self.leg(length / speed_mps)
        self.xy = np.asarray(xy, dtype=np.float64).copy()

    def hold(self) -> None:
        """Stop where the builder is (a leg at zero speed that lasts until the end)."""
        self.speed_mps = 0.0
        self.leg(0.0)

    def build(self) -> Trajectory:
        """The trajectory of the legs so far (a single stationary leg if there are none)."""
        if not self._legs:
            self.leg(0.0)
        a = np.array(self._legs, dtype=np.float64)
        return Trajectory(
            t0=a[:, 0].copy(),
            p0=a[:, 1:3].copy(),
            heading_rad=a[:, 3].copy(),
            speed_mps=a[:, 4].copy(),
            turn_rate_rps=a[:, 5].copy(),
            accel_mps2=a[:, 6].copy(),
        )


def follow_path(
    points: FloatArray,
    speeds_mps: Sequence[float],
    start_s: float,
    until_s: float,
    after_last: str,
) -> tuple[Trajectory, float]:
    """A trajectory along waypoints from ``start_s``, and the time it ends (s).

    ``after_last`` is what happens at the last point: ``end`` (the returned end time is the
    arrival), ``hold``, ``loop`` or ``reverse`` (repeated until ``until_s``; end ``inf``).
    """
    points = np.asarray(points, dtype=np.float64)
    b = TrajectoryBuilder(start_s, points[0].copy(), heading_of(points[1] - points[0]), 0.0)
    speeds = list(speeds_mps)
    forward = list(range(1, len(points)))
    for i in forward:
        b.goto(points[i], speeds[i - 1])
    if after_last == "end":
        return b.build(), b.t
    if after_last == "hold":
        b.hold()
        return b.build(), math.inf
    if after_last == "loop":
        while b.t < until_s:
            b.goto(points[0], speeds[-1])  # closing leg, at the last leg's speed
            for i in forward:
                b.goto(points[i], speeds[i - 1])
        return b.build(), math.inf
    back = [*reversed(range(len(points) - 1))]
    while b.t < until_s:
        for i in back:
            b.goto(points[i], speeds[i])
        for i in forward:
            b.goto(points[i], speeds[i - 1])
    return b.build(), math.inf


def manoeuvre(
    b: TrajectoryBuilder,
    settings: ManoeuvreSettings,
    speed_range_mps: tuple[float, float],
    until_s: float,
    rng: np.random.Generator,
) -> None:
    """Append random cruise legs and manoeuvres (turns, speed changes) until ``until_s``.

    The last leg is cut so the builder ends exactly at ``until_s``.
    """
    while b.t < until_s:
        wander = math.radians(float(rng.normal(0.0, settings.heading_wander_dps)))
        duration = min(float(rng.uniform(*settings.cruise_s)), until_s - b.t)
        b.leg(duration, turn_rate_rps=wander if settings.heading_wander_dps > 0 else 0.0)
        if b.t >= until_s:
            break
        if float(rng.random()) < settings.speed_change_probability:
            target = float(rng.uniform(*speed_range_mps))
            dv = target - b.speed_mps
            if abs(dv) > 1e-9:
                duration = min(abs(dv) / settings.accel_mps2, until_s - b.t)
                b.leg(duration, accel_mps2=math.copysign(settings.accel_mps2, dv))
        else:
            rate = math.radians(float(rng.uniform(*settings.turn_rate_dps)))
            sign = 1.0 if float(rng.random()) < 0.5 else -1.0
            duration = min(float(rng.uniform(*settings.turn_s)), until_s - b.t)
            b.leg(duration, turn_rate_rps=sign * rate)


# -------------------------------------------------------------------------------------- targets
@dataclass(frozen=True, slots=True)
class SimTarget:
    """A simulated target: its id, class, life (birth ≤ t ≤ death, s) and trajectory."""

    id: str
    cls: TargetClass
    start_s: float
    end_s: float
    trajectory: Trajectory


@dataclass(frozen=True, slots=True)
class TruthTable:
    """Truth samples sorted by time then target: one row per live target per sample time.

    ``t`` (s), ``truth_id`` (index into the simulation's targets), ``xy`` (m, ``(n, 2)``),
    ``v`` (m/s, ``(n, 2)``), ``cls`` (:class:`TargetClass`).
    """

    t: FloatArray
    truth_id: IntArray
    xy: FloatArray
    v: FloatArray
    cls: IntArray

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def rows_at(self, t: float) -> slice:
        """The rows sampled at time ``t`` exactly (a sample time of the table)."""
        lo = int(np.searchsorted(self.t, t, side="left"))
        hi = int(np.searchsorted(self.t, t, side="right"))
        return slice(lo, hi)

    def at_times(self, times: FloatArray) -> TruthTable:
        """The rows sampled at any of ``times`` (exact sample times of the table)."""
        keep = np.isin(self.t, np.asarray(times, dtype=np.float64))
        return TruthTable(
            self.t[keep], self.truth_id[keep], self.xy[keep], self.v[keep], self.cls[keep]
        )


def truth_table(targets: Sequence[SimTarget], times: FloatArray) -> TruthTable:
    """Sample every target at the ``times`` (s, sorted) that fall within its life."""
    times = np.asarray(times, dtype=np.float64)
    if not targets:
        empty = np.zeros(0, dtype=np.int64)
        return TruthTable(np.zeros(0), empty, np.zeros((0, 2)), np.zeros((0, 2)), empty)
    parts_t, parts_id, parts_xy, parts_v, parts_cls = [], [], [], [], []
    for i, target in enumerate(targets):
        lo = int(np.searchsorted(times, target.start_s, side="left"))
        hi = int(np.searchsorted(times, target.end_s, side="right"))
        t = times[lo:hi]
        xy, v, _h = target.trajectory.evaluate(t)
        parts_t.append(t)
        parts_id.append(np.full(t.shape[0], i, dtype=np.int64))
        parts_xy.append(xy)
        parts_v.append(v)
        parts_cls.append(np.full(t.shape[0], int(target.cls), dtype=np.int64))
    t_all = np.concatenate(parts_t)
    id_all = np.concatenate(parts_id)
    order = np.lexsort((id_all, t_all))
    return TruthTable(
        t=t_all[order],
        truth_id=id_all[order],
        xy=np.concatenate(parts_xy)[order],
        v=np.concatenate(parts_v)[order],
        cls=np.concatenate(parts_cls)[order],
    )


def build_targets(scenario: Scenario, border: Border, seed: int) -> list[SimTarget]:
    """All targets of a scenario: the scripted ones, then each generator's, in file order."""
    duration = scenario.duration_s
    targets = [
        _scripted(i, t, duration, stream(seed, TARGET_STREAM, i))
        for i, t in enumerate(scenario.targets)
    ]
    for g_index in range(len(scenario.generate)):
        targets.extend(_generated(_GeneratorContext(scenario, border, seed, g_index)))
    return targets


def _scripted(
    index: int, cfg: TargetConfig, duration_s: float, rng: np.random.Generator
) -> SimTarget:
    target_id = cfg.id or f"target-{index}"
    cls = CLASS_BY_NAME[cfg.target_class]
    end = duration_s if cfg.end_s is None else min(cfg.end_s, duration_s)
    motion = cfg.motion
    if isinstance(motion, WaypointMotion):
        path = np.array(motion.points, dtype=np.float64)
        traj, arrival = follow_path(
            path, motion.leg_speeds_mps(), cfg.start_s, end, motion.after_last
        )
        return SimTarget(target_id, cls, cfg.start_s, min(end, arrival), traj)
    return SimTarget(target_id, cls, cfg.start_s, end, _manoeuvring(motion, cfg.start_s, end, rng))


def _manoeuvring(
    motion: ManoeuvringMotion, start_s: float, end_s: float, rng: np.random.Generator
) -> Trajectory:
    b = TrajectoryBuilder(
        start_s,
        np.array(motion.start_xy, dtype=np.float64),
        math.radians(motion.heading_deg),
        motion.speed_mps,
    )
    speeds = motion.speed_range_mps or (motion.speed_mps, motion.speed_mps)
    manoeuvre(b, motion.manoeuvre, speeds, end_s, rng)
    return b.build()


# ----------------------------------------------------------------------------------- generators
@dataclass(frozen=True, slots=True)
class _GeneratorContext:
    scenario: Scenario
    border: Border
    seed: int
    index: int

    def rng(self, k: int) -> np.random.Generator:
        return stream(self.seed, GENERATED_TARGET_STREAM, self.index, k)

    def target_id(self, k: int) -> str:
        return f"{self.scenario.generate[self.index].name}-{k}"

    def line(self, name: str | None) -> shapely.LineString:
        lines = self.scenario.border
        chosen = lines[0] if name is None else next(b for b in lines if b.name == name)
        return shapely.LineString(chosen.points)

    def life(self, start: float, lifetime: float | None) -> tuple[float, float]:
        end = self.scenario.duration_s if lifetime is None else start + lifetime
        return start, min(end, self.scenario.duration_s)


def _generated(ctx: _GeneratorContext) -> list[SimTarget]:
    g = ctx.scenario.generate[ctx.index]
    if isinstance(g, AlongBorderGenerator):
        return [_along(ctx, g, k) for k in range(g.count)]
    if isinstance(g, AcrossBorderGenerator):
        plan = _CrossingPlan.draw(ctx, g)
        return [_across(ctx, g, plan, k) for k in range(g.count)]
    return [_free(ctx, g, k) for k in range(g.count)]


def _draw(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _free(ctx: _GeneratorContext, g: RandomGenerator | TowardBorderGenerator, k: int) -> SimTarget:
    """A target starting in the box, heading randomly or for the border, manoeuvring freely."""
    rng = ctx.rng(k)
    start_xy = _start_position(ctx.border, g, rng)
    start, end = ctx.life(_draw(rng, g.start_s), _draw(rng, g.lifetime_s) if g.lifetime_s else None)
    speed = _draw(rng, g.speed_mps)
    if isinstance(g, TowardBorderGenerator):
        prox = ctx.border.proximity(start_xy[None, :])
        towards = -np.sign(prox.signed_distance_m[0]) * prox.gradient[0]
        heading = heading_of(towards)
    else:
        heading = float(rng.uniform(0.0, 2.0 * math.pi))
    b = TrajectoryBuilder(start, start_xy, heading, speed)
    manoeuvre(b, g.manoeuvre, g.speed_mps, end, rng)
    return SimTarget(ctx.target_id(k), CLASS_BY_NAME[g.target_class], start, end, b.build())


def _start_position(
    border: Border, g: RandomGenerator | TowardBorderGenerator, rng: np.random.Generator
) -> FloatArray:
    """A start position uniform in the region, ``min_border_distance_m`` or more from the border."""
    x0, y0, x1, y1 = g.region
    for _ in range(START_ATTEMPTS):
        xy = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
        if g.min_border_distance_m <= 0:
            return xy
        if abs(border.proximity(xy[None, :]).signed_distance_m[0]) >= g.min_border_distance_m:
            return xy
    raise ConfigError(
        f"generator {g.name!r}: no start position in the region is "
        f"{g.min_border_distance_m:g} m from the border"
    )


def _span_arcs(line: shapely.LineString, span: tuple[float, float]) -> tuple[float, float]:
    return span[0] * line.length, span[1] * line.length


def _offset_section(
    line: shapely.LineString, offset_m: float, arc_from: float, arc_to: float
) -> FloatArray:
    """Vertices of the curve at ``offset_m`` (left positive) beside ``line[arc_from:arc_to]``.

    The section runs in the direction ``arc_from`` → ``arc_to`` (either may be the larger).
    """
    arc_from = min(max(arc_from, 0.0), line.length)
    arc_to = min(max(arc_to, 0.0), line.length)
    curve = line.offset_curve(offset_m)
    if isinstance(curve, shapely.MultiLineString):
        curve = max(curve.geoms, key=lambda part: part.length)
    a = curve.project(line.interpolate(arc_from))
    b = curve.project(line.interpolate(arc_to))
    section = ops.substring(curve, min(a, b), max(a, b))
    coords = np.asarray(section.coords, dtype=np.float64)[:, :2]
    coords = _drop_repeats(coords)
    return coords if a <= b else coords[::-1].copy()


def _drop_repeats(coords: FloatArray) -> FloatArray:
    keep = np.ones(coords.shape[0], dtype=bool)
    keep[1:] = np.any(np.abs(np.diff(coords, axis=0)) > 1e-9, axis=1)
    return coords[keep]


def _along(ctx: _GeneratorContext, g: AlongBorderGenerator, k: int) -> SimTarget:
    """A target patrolling to and fro beside the border at a fixed offset, never crossing."""
    rng = ctx.rng(k)
    line = ctx.line(g.border_line)
    lo, hi = _span_arcs(line, g.span)
    side = {"left": 1.0, "right": -1.0}.get(g.side) or (1.0 if rng.random() < 0.5 else -1.0)
    offset = side * _draw(rng, g.offset_m)
    start, end = ctx.life(_draw(rng, g.start_s), _draw(rng, g.lifetime_s) if g.lifetime_s else None)
    speed = _draw(rng, g.speed_mps)
    path = _offset_section(line, offset, lo, hi)
    if path.shape[0] < 2:
        raise ConfigError(f"generator {g.name!r}: the border span is too short to walk along")
    if rng.random() < 0.5:
        path = path[::-1].copy()
    # Start somewhere along the to-and-fro cycle: begin the path earlier than the birth.
    length = float(np.sum(np.hypot(*np.diff(path, axis=0).T)))
    phase = float(rng.uniform(0.0, 2.0 * length / speed))
    traj, _ = follow_path(path, [speed] * (len(path) - 1), start - phase, end, "reverse")
    return SimTarget(ctx.target_id(k), CLASS_BY_NAME[g.target_class], start, end, traj)


@dataclass(frozen=True, slots=True)
class _CrossingPlan:
    """Where and when each target of an across-border generator crosses.

    The span and the time window are each cut into ``count`` slots. Targets take the space
    slots in random order; the time slot of space slot ``j`` is ``j · stride mod count`` with
    ``stride`` near ``count / φ`` (golden ratio), so crossings that are neighbours in space are
    far apart in time.
    """

    arc_slot: IntArray
    time_slot: IntArray

    @classmethod
    def draw(cls, ctx: _GeneratorContext, g: AcrossBorderGenerator) -> _CrossingPlan:
        rng = stream(ctx.seed, GENERATOR_STREAM, ctx.index)
        arc_slot = rng.permutation(g.count).astype(np.int64)
        return cls(arc_slot, (arc_slot * _golden_stride(g.count)) % max(g.count, 1))


def _golden_stride(n: int) -> int:
    """The integer nearest ``n / φ`` that is coprime with ``n`` (1 for small ``n``)."""
    ideal = n / ((1.0 + math.sqrt(5.0)) / 2.0)
    candidates = [k for k in range(1, max(n, 2)) if math.gcd(k, n) == 1]
    return min(candidates, key=lambda k: (abs(k - ideal), k)) if candidates else 1


@dataclass(frozen=True, slots=True)
class _Crossing:
    """One planned crossing: point (m), border tangent, time (s), side left (+1) or right (-1)."""

    point: FloatArray
    arc_m: float
    tangent: FloatArray
    t_s: float
    from_side: int


def _plan_crossing(
    ctx: _GeneratorContext,
    g: AcrossBorderGenerator,
    plan: _CrossingPlan,
    k: int,
    rng: np.random.Generator,
) -> _Crossing:
    line = ctx.line(g.border_line)
    lo, hi = _span_arcs(line, g.span)
    n = g.count
    arc = lo + (plan.arc_slot[k] + rng.uniform(0.4, 0.6)) * (hi - lo) / n
    t0, t1 = g.cross_at_s
    t = t0 + (plan.time_slot[k] + rng.uniform(0.0, 1.0)) * (t1 - t0) / n
    step = min(1.0, 0.25 * line.length)
    ahead = np.asarray(line.interpolate(min(arc + step, line.length)).coords[0])
    behind = np.asarray(line.interpolate(max(arc - step, 0.0)).coords[0])
    tangent = (ahead - behind) / np.hypot(*(ahead - behind))
    point = np.asarray(line.interpolate(arc).coords[0], dtype=np.float64)
    from_side = 1 if rng.random() < 0.5 else -1
    return _Crossing(point, arc, tangent, float(t), from_side)


def _across(
    ctx: _GeneratorContext, g: AcrossBorderGenerator, plan: _CrossingPlan, k: int
) -> SimTarget:
    """A target that crosses the border once, in its own slot of space and time."""
    rng = ctx.rng(k)
    crossing = _plan_crossing(ctx, g, plan, k, rng)
    speed = _draw(rng, g.speed_mps)
    for attempt in range(CROSSING_ATTEMPTS + 1):
        calm = attempt == CROSSING_ATTEMPTS  # last resort: no manoeuvres, square crossing
        before, after = _draw(rng, g.before_s), _draw(rng, g.after_s)
        if g.approach == "along_border":
            traj, start, end = _along_then_across(ctx, g, crossing, speed, before, after, rng, calm)
        else:
            traj, start, end = _manoeuvre_then_across(g, crossing, speed, before, after, rng, calm)
        start, end = max(start, 0.0), min(end, ctx.scenario.duration_s)
        if _crosses_once(ctx.border, traj, start, end, crossing, g.clearance_m):
            break
    else:
        log.warning(
            "generator %s: target %d does not cross exactly once with clearance %g m",
            g.name,
            k,
            g.clearance_m,
        )
    return SimTarget(ctx.target_id(k), CLASS_BY_NAME[g.target_class], start, end, traj)


def _crossing_heading(
    g: AcrossBorderGenerator, c: _Crossing, rng: np.random.Generator, calm: bool
) -> float:
    left_normal = np.array([-c.tangent[1], c.tangent[0]])
    across = -c.from_side * left_normal
    angle = 0.0 if calm else math.radians(float(rng.uniform(-g.max_angle_deg, g.max_angle_deg)))
    return heading_of(across) + angle


def _manoeuvre_then_across(
    g: AcrossBorderGenerator,
    c: _Crossing,
    speed: float,
    before: float,
    after: float,
    rng: np.random.Generator,
    calm: bool,
) -> tuple[Trajectory, float, float]:
    """Random manoeuvres, a straight final approach, the crossing at ``c``, straight beyond.

    The manoeuvres are drawn from a provisional start, then the whole sequence is rotated and
    shifted so that it ends on the final approach line with the crossing heading.
    """
    heading = _crossing_heading(g, c, rng, calm)
    manoeuvre_s = before - g.final_approach_s
    trial = TrajectoryBuilder(0.0, np.zeros(2), 0.0, speed)
    legs = None
    if manoeuvre_s > 0:
        if calm:
            trial.leg(manoeuvre_s)
        else:
            manoeuvre(trial, g.manoeuvre, g.speed_mps, manoeuvre_s, rng)
        legs = trial.build()
    v_end = trial.speed_mps
    approach_start = c.point - unit(heading) * v_end * g.final_approach_s
    turn = heading - trial.heading_rad
    start_xy = approach_start - _rotate(trial.xy, turn)
    start_t = c.t_s - before
    b = TrajectoryBuilder(start_t, start_xy, turn, speed)
    if legs is not None:
        durations = np.diff(np.append(legs.t0, manoeuvre_s))
        for d, w, a in zip(durations, legs.turn_rate_rps, legs.accel_mps2, strict=True):
            b.leg(float(d), float(w), float(a))
    b.xy = approach_start  # remove rounding drift of the replay
    b.heading_rad = heading
    b.leg(c.t_s + after - b.t)
    return b.build(), start_t, c.t_s + after


def _rotate(xy: FloatArray, angle_rad: float) -> FloatArray:
    """Rotate a vector clockwise by ``angle_rad`` (adds ``angle_rad`` to its heading)."""
    ca, sa = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([xy[0] * ca + xy[1] * sa, -xy[0] * sa + xy[1] * ca])


def _along_then_across(
    ctx: _GeneratorContext,
    g: AcrossBorderGenerator,
    c: _Crossing,
    speed: float,
    before: float,
    after: float,
    rng: np.random.Generator,
    calm: bool,
) -> tuple[Trajectory, float, float]:
    """Along the line at an offset on the near side, across, then along the far side.

    Models a boat on a river whose centre line is the border: it stays on the water.
    """
    line = ctx.line(g.border_line)
    d_near, d_far = _draw(rng, g.offset_m), _draw(rng, g.offset_m)
    direction = 1.0 if rng.random() < 0.5 else -1.0
    angle = 0.0 if calm else math.radians(float(rng.uniform(0.0, g.max_angle_deg)))
    shift = 0.5 * (d_near + d_far) * math.tan(angle)
    arc_near, arc_far = c.arc_m - direction * shift, c.arc_m + direction * shift
    near = _offset_section(
        line, c.from_side * d_near, arc_near - direction * speed * before, arc_near
    )
    far = _offset_section(line, -c.from_side * d_far, arc_far, arc_far + direction * speed * after)
    path = _drop_repeats(np.vstack([near, far]))
    if path.shape[0] < 2:
        path = np.vstack([c.point - c.from_side * d_near * c.tangent, c.point])
    seg = np.hypot(*np.diff(path, axis=0).T)
    times = np.concatenate([[0.0], np.cumsum(seg) / speed])
    crossings = ctx.border.path_crossings(times, path)
    t_cross = crossings[0].t if crossings else float(times[len(near) - 1])
    start = c.t_s - t_cross
    traj, arrival = follow_path(path, [speed] * (len(path) - 1), start, math.inf, "end")
    return traj, start, arrival


def _crosses_once(
    border: Border,
    traj: Trajectory,
    start: float,
    end: float,
    c: _Crossing,
    clearance_m: float,
) -> bool:
    """Whether the target crosses exactly once, near ``c.t_s``, and keeps its clearance else."""
    if not start < c.t_s < end:
        return False
    t = np.unique(np.concatenate([np.arange(start, end, CHECK_STEP_S), [end]]))
    xy, v, _h = traj.evaluate(t)
    if len(border.path_crossings(t, xy)) != 1:
        return False
    sd = border.proximity(xy).signed_distance_m * c.from_side
    speed = np.hypot(v[:, 0], v[:, 1])
    # Near the crossing the clearance cannot hold; elsewhere the target keeps its distance.
    window = clearance_m / max(float(np.min(speed[speed > 0], initial=np.inf)), 0.1)
    before = t < c.t_s - 2.0 * window
    after = t > c.t_s + 2.0 * window
    return bool(np.all(sd[before] >= clearance_m) and np.all(-sd[after] >= clearance_m))
