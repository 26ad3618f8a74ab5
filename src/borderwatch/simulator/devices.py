"""Device byte streams generated from a scenario's truth: what each emulated device sends.

For every entry of a scenario's ``devices`` list, :func:`device_streams` produces the bytes the
real device would put on its serial line or network, as a time-ordered list of :class:`Chunk`
(scenario time, bytes): one epoch of a GNSS receiver, one AIS message, one radar scan, one CO2
probe line. Formats:

* ``gps``: NMEA 0183 GGA, RMC, VTG, GST and (with a heading sensor) HDT, built with pynmea2,
  from the platform's trajectory plus a Gauss-Markov position error and white velocity and
  heading noise.
* ``ais``: ``!AIVDM`` of every AIS-carrying target (and ``!AIVDO`` of the receiver's own
  platform), encoded with pyais: position reports type 1 (class A) or 18 (class B) at the
  transponder's interval, static data type 5 (two fragments) or 24 (parts A and B) now and then.
  The position is the vessel's true position; ``second`` is the UTC second of the report.
* ``radar``: one TTM per detected target of a radar sensor's scans (the very scans of
  :func:`~borderwatch.simulator.run.simulate`, so the noise and misses are those of the
  simulation), range in nautical miles, bearing true or relative to the bow, target number
  ``truth index + 1`` (stable per target). False detections are not reported: a radar's target
  tracker (ARPA) outputs tracked targets, not raw plots.
* ``gmp343``: probe lines ``CO2=  2501.9 ppm  21.5 'C`` from
  :func:`~borderwatch.simulator.co2.co2_series` during inspections and outside air otherwise.
* ``senseair``: polled; :class:`SenseAirResponder` answers Modbus RTU read requests with the
  reading of the moment (:class:`Co2Readings`).

Faults (``faults:``) are drawn per line: dropped, garbled (one to three bytes replaced by line
noise above 0x7F, so the line is not ASCII) or sent with a wrong checksum; lines falling while
the device is unplugged are never sent. Each :class:`Chunk` says which of its lines carry
which fault, so tests can check the parsers' rejection reasons.

Everything here is pure and deterministic: the random draws of device ``d`` come from
``stream(seed, DEVICE_STREAM, d, purpose)`` (noise, faults, CO2 noise apart), device timestamps
are ``start_utc + t``, and nothing reads the clock.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import numpy as np
import pynmea2
from pyais import encode_dict
from scipy.signal import lfilter

from borderwatch.config.scenario import (
    AisDevice,
    AisTransponder,
    DeviceConfig,
    DeviceFaults,
    Gmp343Device,
    GpsDevice,
    Inspection,
    PlatformConfig,
    RadarDevice,
    Scenario,
    SenseAirDevice,
)
from borderwatch.fusion.detections import FloatArray
from borderwatch.sensors.co2 import crc16_modbus, modbus_frame
from borderwatch.simulator.co2 import co2_series
from borderwatch.simulator.run import Simulation
from borderwatch.simulator.sensors import platform_trajectory
from borderwatch.simulator.truth import Trajectory, stream

log = logging.getLogger(__name__)

#: ``spawn_key`` domain of the device streams: ``(DEVICE_STREAM, device index, purpose)``.
DEVICE_STREAM = 4
NOISE, FAULTS, CO2_NOISE = 0, 1, 2

KNOT_MPS = 1852.0 / 3600.0
NAUTICAL_MILE_M = 1852.0
#: Date and time of t = 0 when neither the caller nor the scenario gives one.
DEFAULT_START_UTC = datetime(2026, 1, 1, tzinfo=UTC)
#: The parser (``borderwatch.sensors.registry`` name) that reads each device type.
PARSER_FORMAT = {
    "gps": "nmea",
    "ais": "ais",
    "radar": "nmea",
    "gmp343": "gmp343",
    "senseair": "senseair",
}
GARBLE = "garble"
BAD_CHECKSUM = "bad_checksum"
#: SenseAir input registers served: meter status, alarm status, output status, CO2.
SENSEAIR_REGISTERS = 4
_OUT_OF_RANGE_BIT = 1 << 5
_ANY_SENSOR = 0xFE
_AIS_SPEED_MAX_KN = 102.2


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes a device sends at scenario time ``t`` (s): whole lines (or one Modbus frame).

    ``faults`` has one entry per line in ``data``, in order: ``None`` for a good line,
    ``"garble"`` or ``"bad_checksum"`` for a damaged one (dropped lines are not in ``data``).
    """

    t: float
    data: bytes
    faults: tuple[str | None, ...]


@dataclass(frozen=True, slots=True)
class Co2Readings:
    """A CO2 sensor's measurements: times (s) and readings (ppm), one per measurement."""

    t: FloatArray
    ppm: FloatArray

    def at(self, t: float) -> float:
        """The latest reading at time ``t`` (s); the first one before it exists."""
        k = int(np.searchsorted(self.t, t, side="right")) - 1
        return float(self.ppm[max(k, 0)])


@dataclass(frozen=True, slots=True)
class DeviceStream:
    """What one device sends during a run.

    Attributes:
        index: position of the device in the scenario's ``devices``.
        device: its configuration.
        chunks: pushed bytes in time order (empty for the polled SenseAir).
        dropped: lines the drop fault removed.
        unplugged: ``(from_s, to_s)`` while the device is unplugged, or None.
        readings: CO2 measurements (gmp343 and senseair devices), else None.
        seed: the run's seed (the SenseAir responder draws its faults from it).
        inspections: the inspections a CO2 device measures (truth), by start time.
    """

    index: int
    device: DeviceConfig
    chunks: list[Chunk]
    dropped: int
    unplugged: tuple[float, float] | None
    readings: Co2Readings | None = None
    seed: int = 0
    inspections: tuple[Inspection, ...] = ()

    @property
    def sensor_id(self) -> str:
        """The device's id (name of its pty link)."""
        return self.device.sensor_id

    @property
    def type(self) -> str:
        """The device type: gps, ais, radar, gmp343 or senseair."""
        return self.device.type

    @property
    def parser_format(self) -> str:
        """Name of the borderwatch parser that reads this stream."""
        return PARSER_FORMAT[self.device.type]


# ------------------------------------------------------------------------------------ public API
def device_streams(sim: Simulation, start_utc: datetime | None = None) -> list[DeviceStream]:
    """The byte streams of every device of the simulated scenario, in ``devices`` order.

    ``start_utc`` is the date and time of t = 0 written in the devices' timestamps (default:
    the scenario's ``start_utc``, else :data:`DEFAULT_START_UTC`).
    """
    start = start_utc or sim.scenario.start_utc or DEFAULT_START_UTC
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    clock = _Clock(start.astimezone(UTC))
    return [_stream(sim, i, clock) for i in range(len(sim.scenario.devices))]


def _stream(sim: Simulation, index: int, clock: _Clock) -> DeviceStream:
    device = sim.scenario.devices[index]
    rng = stream(sim.seed, DEVICE_STREAM, index, NOISE)
    readings = None
    inspections: tuple[Inspection, ...] = ()
    lines: list[tuple[float, list[bytes]]]
    if isinstance(device, GpsDevice):
        lines = _gps_lines(sim, device, rng, clock)
    elif isinstance(device, AisDevice):
        lines = _ais_lines(sim, device, rng, clock)
    elif isinstance(device, RadarDevice):
        lines = _radar_lines(sim, device, clock)
    else:
        readings = co2_readings(sim.scenario, index, sim.seed)
        inspections = tuple(probe_inspections(sim.scenario, device.sensor_id))
        lines = _gmp343_lines(device, readings, rng) if isinstance(device, Gmp343Device) else []
    window = unplug_window(device.faults)
    if window is not None:
        lines = [(t, ls) for t, ls in lines if not window[0] <= t < window[1]]
    faults_rng = stream(sim.seed, DEVICE_STREAM, index, FAULTS)
    chunks, dropped = _with_faults(lines, device.faults, faults_rng, device.type != "gmp343")
    log.debug("device %s: %d chunks, %d lines dropped", device.sensor_id, len(chunks), dropped)
    return DeviceStream(index, device, chunks, dropped, window, readings, sim.seed, inspections)


def unplug_window(faults: DeviceFaults) -> tuple[float, float] | None:
    """``(from_s, to_s)`` during which the device is unplugged, or None."""
    if faults.unplug_at_s is None:
        return None
    return faults.unplug_at_s, faults.unplug_at_s + faults.unplug_for_s


# ------------------------------------------------------------------------------------------ time
@dataclass(frozen=True, slots=True)
class _Clock:
    """Scenario seconds to the UTC date and time the devices write."""

    start: datetime

    def at(self, t: float) -> datetime:
        return self.start + timedelta(seconds=round(t, 6))

    def nmea_time(self, t: float) -> str:
        """``hhmmss.ss`` (UTC)."""
        when = self.at(t)
        return f"{when:%H%M%S}.{when.microsecond // 10_000:02d}"

    def nmea_date(self, t: float) -> str:
        """``ddmmyy`` (UTC)."""
        return f"{self.at(t):%d%m%y}"


def time_grid(duration_s: float, step_s: float) -> FloatArray:
    """Times ``0, step, 2·step, …`` up to ``duration_s`` inclusive, s."""
    n = math.floor(duration_s / step_s + 1e-9) + 1
    return np.arange(n, dtype=np.float64) * step_s


# ------------------------------------------------------------------------------------ NMEA helpers
def nmea_coordinate(value_deg: float, axis: str) -> tuple[str, str]:
    """Decimal degrees as NMEA ``(d)ddmm.mmmmm`` and its hemisphere letter (1e-5 minute)."""
    units = round(abs(value_deg) * 60.0 * 100_000)  # 1e-5 minutes, about 2 cm
    degrees, rest = divmod(units, 60 * 100_000)
    width = 2 if axis == "lat" else 3
    text = f"{degrees:0{width}d}{rest // 100_000:02d}.{rest % 100_000:05d}"
    hemisphere = ("N" if value_deg >= 0 else "S") if axis == "lat" else "EW"[value_deg < 0]
    return text, hemisphere


def _sentence(talker: str, kind: str, fields: Sequence[str]) -> bytes:
    """One NMEA sentence with its checksum and CR LF, rendered by pynmea2."""
    cls = pynmea2.TalkerSentence.sentence_types[kind]
    text: str = cls(talker, kind, tuple(fields)).render()
    return (text + "\r\n").encode("ascii")


def _course_deg(v: FloatArray) -> FloatArray:
    """Course over ground of velocities ``(n, 2)``, degrees clockwise from north in [0, 360)."""
    return np.asarray(np.degrees(np.arctan2(v[:, 0], v[:, 1])) % 360.0, dtype=np.float64)


# ------------------------------------------------------------------------------------------- GPS
def gauss_markov(
    rng: np.random.Generator, n: int, sigma: FloatArray, dt_s: float, tau_s: float
) -> FloatArray:
    """``n`` samples ``(n, k)`` of first-order Gauss-Markov errors, stationary 1-σ ``sigma``.

    ``e[i] = a e[i-1] + sqrt(1 - a²) σ w[i]`` with ``a = exp(-dt/τ)``; ``τ = 0`` gives white
    noise. The first sample is drawn from the stationary distribution.
    """
    white = rng.standard_normal((n, sigma.shape[0]))
    if tau_s <= 0.0 or n == 0:
        return white * sigma
    a = math.exp(-dt_s / tau_s)
    b = math.sqrt(1.0 - a * a)
    # Start in the stationary state: the filter's initial condition is the first sample.
    out = lfilter([b], [1.0, -a], white[1:], axis=0, zi=(a * white[0])[None, :])[0]
    return np.vstack([white[:1], out]) * sigma


def _platform(scenario: Scenario, name: str | None) -> PlatformConfig | None:
    return next((p for p in scenario.platforms if p.name == name), None)


def _gps_lines(
    sim: Simulation, device: GpsDevice, rng: np.random.Generator, clock: _Clock
) -> list[tuple[float, list[bytes]]]:
    scenario = sim.scenario
    platform = _platform(scenario, device.platform)
    assert platform is not None  # checked by the scenario
    assert platform.gps is not None
    gps = platform.gps
    dt = 1.0 / gps.rate_hz
    times = time_grid(scenario.duration_s, dt)
    n = times.shape[0]
    xy, v, heading = platform_trajectory(platform, scenario.duration_s).evaluate(times)
    sigma = np.array([gps.sigma_m, gps.sigma_m, 1.5 * gps.sigma_m])
    err = gauss_markov(rng, n, sigma, dt, gps.correlation_s)
    latlon = sim.frame.to_wgs84(xy + err[:, :2])
    alt = scenario.origin.alt_m - gps.geoid_sep_m + err[:, 2]
    v_meas = v + rng.normal(0.0, gps.sigma_speed_mps, (n, 2))
    speed_kn = np.hypot(v_meas[:, 0], v_meas[:, 1]) / KNOT_MPS
    course = _course_deg(v_meas)
    hdg = (np.degrees(heading) + rng.normal(0.0, gps.sigma_heading_deg, n)) % 360.0
    mode = "D" if gps.fix_quality == 2 else "A"
    out = []
    for k, t in enumerate(times.tolist()):
        lat, ns = nmea_coordinate(float(latlon[k, 0]), "lat")
        lon, ew = nmea_coordinate(float(latlon[k, 1]), "lon")
        hhmmss = clock.nmea_time(t)
        kn, cog = f"{speed_kn[k]:.2f}", f"{course[k]:.1f}"
        s = f"{gps.sigma_m:.1f}"
        lines = [
            _sentence(
                "GP",
                "GGA",
                (
                    hhmmss,
                    lat,
                    ns,
                    lon,
                    ew,
                    str(gps.fix_quality),
                    f"{gps.satellites:02d}",
                    f"{gps.hdop:.1f}",
                    f"{alt[k]:.1f}",
                    "M",
                    f"{gps.geoid_sep_m:.1f}",
                    "M",
                    "",
                    "",
                ),
            ),
            _sentence(
                "GP",
                "RMC",
                (hhmmss, "A", lat, ns, lon, ew, kn, cog, clock.nmea_date(t), "", "", mode),
            ),
            _sentence(
                "GP", "VTG", (cog, "T", "", "M", kn, "N", f"{speed_kn[k] * 1.852:.2f}", "K", mode)
            ),
            _sentence("GP", "GST", (hhmmss, s, s, s, "0.0", s, s, f"{sigma[2]:.1f}")),
        ]
        if gps.heading_sensor:
            lines.append(_sentence("HE", "HDT", (f"{hdg[k]:.1f}", "T")))
        out.append((t, lines))
    return out


# ------------------------------------------------------------------------------------------- AIS
@dataclass(slots=True)
class _AisCarrier:
    """A vessel with a transponder: its order in the output, kind of sentence and motion."""

    order: int
    sentence: str  # "VDM" (heard from others) or "VDO" (own ship)
    ais: AisTransponder
    trajectory: Trajectory
    start_s: float
    end_s: float


@dataclass(slots=True)
class _AisEncoder:
    """Turns AIS messages into sentences: radio channel A/B in turn, sequence ids 0-9."""

    messages: int = 0
    seq: int = field(default=9)

    def encode(self, data: dict[str, Any], sentence: str) -> list[bytes]:
        channel = "AB"[self.messages % 2]
        self.messages += 1
        seq = None
        if data["type"] == 5:  # the only multi-sentence message sent
            self.seq = (self.seq + 1) % 10
            seq = self.seq
        texts = encode_dict(
            data, talker_id="AI", sentence_type=sentence, radio_channel=channel, seq_id=seq
        )
        return [(text + "\r\n").encode("ascii") for text in texts]


def _ais_carriers(sim: Simulation, device: AisDevice) -> list[_AisCarrier]:
    scenario = sim.scenario
    carriers = [
        _AisCarrier(i, "VDM", cfg.ais, sim.targets[i].trajectory, target.start_s, target.end_s)
        for i, (cfg, target) in enumerate(zip(scenario.targets, sim.targets, strict=False))
        if cfg.ais is not None
    ]
    own = _platform(scenario, device.platform)
    if own is not None and own.ais is not None:
        trajectory = platform_trajectory(own, scenario.duration_s)
        carriers.append(_AisCarrier(-1, "VDO", own.ais, trajectory, 0.0, scenario.duration_s))
    return carriers


def _ais_lines(
    sim: Simulation, device: AisDevice, rng: np.random.Generator, clock: _Clock
) -> list[tuple[float, list[bytes]]]:
    scenario = sim.scenario
    receiver = _platform(scenario, device.platform)
    receiver_path = None
    if receiver is not None and device.range_m is not None:
        receiver_path = platform_trajectory(receiver, scenario.duration_s)
    messages: list[tuple[float, int, int, str, dict[str, Any]]] = []
    for carrier in _ais_carriers(sim, device):
        ais = carrier.ais
        # Transponders are not synchronised: each starts at a random phase of its interval.
        reports = _times(carrier.start_s + rng.uniform(0, ais.interval_s), carrier.end_s, ais)
        statics = np.arange(
            carrier.start_s + rng.uniform(0, min(ais.static_interval_s, 60.0)),
            carrier.end_s,
            ais.static_interval_s,
        )
        if reports.size:
            xy, v, heading = carrier.trajectory.evaluate(reports)
            heard = _heard(receiver_path, device.range_m, reports, xy, carrier.sentence)
            latlon = sim.frame.to_wgs84(xy)
            for k in np.flatnonzero(heard).tolist():
                t = float(reports[k])
                data = _position_report(ais, latlon[k], v[k], float(heading[k]), clock.at(t))
                messages.append((t, carrier.order, 0, carrier.sentence, data))
        if statics.size:
            xy, _v, _h = carrier.trajectory.evaluate(statics)
            heard = _heard(receiver_path, device.range_m, statics, xy, carrier.sentence)
            for k in np.flatnonzero(heard).tolist():
                t = float(statics[k])
                for part, data in enumerate(_static_data(ais), start=1):
                    messages.append((t, carrier.order, part, carrier.sentence, data))
    messages.sort(key=lambda m: m[:3])
    encoder = _AisEncoder()
    return [(t, encoder.encode(data, sentence)) for t, _o, _p, sentence, data in messages]


def _times(first_s: float, end_s: float, ais: AisTransponder) -> FloatArray:
    return np.arange(first_s, end_s + 1e-9, ais.interval_s)


def _heard(
    receiver: Trajectory | None,
    range_m: float | None,
    times: FloatArray,
    xy: FloatArray,
    sentence: str,
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Which transmissions the receiver hears (its own always; others within ``range_m``)."""
    if receiver is None or range_m is None or sentence == "VDO":
        return np.ones(times.shape[0], dtype=bool)
    here, _v, _h = receiver.evaluate(times)
    return np.asarray(np.hypot(*(xy - here).T) <= range_m)


def _position_report(
    ais: AisTransponder, latlon: FloatArray, v: FloatArray, heading_rad: float, when: datetime
) -> dict[str, Any]:
    """Type 1 (class A) or 18 (class B) position report of the true state at ``when``."""
    speed_kn = min(float(np.hypot(v[0], v[1])) / KNOT_MPS, _AIS_SPEED_MAX_KN)
    moving = speed_kn > 0.05
    course = float(_course_deg(v[None, :])[0]) if moving else math.degrees(heading_rad) % 360.0
    data: dict[str, Any] = {
        "mmsi": ais.mmsi,
        "speed": round(speed_kn, 1),
        "accuracy": True,
        "lat": float(latlon[0]),
        "lon": float(latlon[1]),
        "course": round(course, 1) % 360.0,
        "second": when.second,
    }
    if ais.ais_class == "A":
        heading = round(math.degrees(heading_rad)) % 360
        return {"type": 1, "status": 0 if moving else 1, "heading": heading, **data}
    return {"type": 18, "heading": 511, "cs": True, **data}


def _static_data(ais: AisTransponder) -> list[dict[str, Any]]:
    """Type 5 (class A) or type 24 parts A and B (class B) of a transponder."""
    if ais.ais_class == "A":
        return [
            {
                "type": 5,
                "mmsi": ais.mmsi,
                "callsign": ais.callsign,
                "shipname": ais.name,
                "ship_type": ais.ship_type,
                "epfd": 1,
                "month": 0,  # ETA not available
                "day": 0,
                "hour": 24,
                "minute": 60,
            }
        ]
    return [
        {"type": 24, "mmsi": ais.mmsi, "partno": 0, "shipname": ais.name},
        {
            "type": 24,
            "mmsi": ais.mmsi,
            "partno": 1,
            "ship_type": ais.ship_type,
            "callsign": ais.callsign,
        },
    ]


# ----------------------------------------------------------------------------------------- radar
def _radar_lines(
    sim: Simulation, device: RadarDevice, clock: _Clock
) -> list[tuple[float, list[bytes]]]:
    scenario = sim.scenario
    radar = scenario.radar_of(device)
    sensor = sim.sensor_ids.index(radar.id)
    platform = _platform(scenario, device.platform)
    assert platform is not None
    path = platform_trajectory(platform, scenario.duration_s)
    relative = device.bearing == "relative"
    out = []
    for scan in sim.scans:
        if scan.sensor != sensor:
            continue
        real = scan.truth_index >= 0
        ids = scan.truth_index[real]
        if ids.size == 0:
            continue
        z = scan.detections.z[real]
        rows = sim.truth.rows_at(scan.t)
        velocity = dict(zip(sim.truth.truth_id[rows].tolist(), sim.truth.v[rows], strict=True))
        _xy, _v, heading = path.evaluate(np.array([scan.t]))
        bearing = np.degrees(z[:, 1]) - (math.degrees(float(heading[0])) if relative else 0.0)
        hhmmss = clock.nmea_time(scan.t)
        lines = []
        for k in np.argsort(ids, kind="stable").tolist():
            v = velocity[int(ids[k])]
            fields = (
                f"{int(ids[k]) + 1:02d}",
                f"{z[k, 0] / NAUTICAL_MILE_M:.3f}",
                f"{bearing[k] % 360.0:.1f}",
                "R" if relative else "T",
                f"{math.hypot(v[0], v[1]) / KNOT_MPS:.1f}",
                f"{_course_deg(v[None, :])[0]:.1f}",
                "T",
                "",
                "",
                "N",
                "",
                "T",
                "",
                hhmmss,
                "A",
            )
            lines.append(_sentence("RA", "TTM", fields))
        out.append((scan.t, lines))
    return out


# ------------------------------------------------------------------------------------------- CO2
def probe_inspections(scenario: Scenario, sensor_id: str) -> list[Inspection]:
    """The inspections a CO2 device measures, by start time."""
    mine = [i for i in scenario.inspections if i.probe in (None, sensor_id)]
    return sorted(mine, key=lambda i: i.start_s)


def co2_readings(scenario: Scenario, index: int, seed: int) -> Co2Readings:
    """Measurements of CO2 device ``index`` over the run: outside air, and its inspections.

    From each inspection's start to the next one's (or the end of the run) the readings are
    those of :func:`~borderwatch.simulator.co2.co2_series` for that inspection (the probe
    returns to outside air after the sample); before the first, outside air alone.
    """
    device = scenario.devices[index]
    assert isinstance(device, Gmp343Device | SenseAirDevice)
    rng = stream(seed, DEVICE_STREAM, index, CO2_NOISE)
    times = time_grid(scenario.duration_s, device.interval_s)
    series = partial(
        co2_series,
        ambient_ppm=device.ambient_ppm,
        response_tau_s=device.response_tau_s,
        noise_ppm=device.noise_ppm,
        rng=rng,
    )
    inspections = probe_inspections(scenario, device.sensor_id)
    starts = [i.start_s for i in inspections]
    ppm = np.empty_like(times)
    before = times < (starts[0] if starts else math.inf)
    ppm[before] = series(times[before], persons=0, sample_start_s=0.0)
    for k, ins in enumerate(inspections):
        end = starts[k + 1] if k + 1 < len(starts) else math.inf
        part = (times >= ins.start_s) & (times < end)
        ppm[part] = series(
            times[part],
            persons=ins.persons,
            volume_m3=ins.volume_m3,
            air_changes_per_h=ins.air_changes_per_h,
            sample_start_s=ins.sample_start_s,
            sample_end_s=ins.sample_end_s,
            closed_for_s=ins.closed_for_s,
            exhale_l_per_h=ins.exhale_l_per_h,
        )
    return Co2Readings(times, np.maximum(ppm, 0.0))


def _gmp343_lines(
    device: Gmp343Device, readings: Co2Readings, rng: np.random.Generator
) -> list[tuple[float, list[bytes]]]:
    temperature = device.temperature_c + rng.normal(0.0, 0.1, readings.t.shape)
    return [
        (t, [f"CO2= {ppm:7.1f} ppm  {temp:4.1f} 'C\r\n".encode("ascii")])
        for t, ppm, temp in zip(
            readings.t.tolist(), readings.ppm.tolist(), temperature.tolist(), strict=True
        )
    ]


class SenseAirResponder:
    """A SenseAir K30/S8-style sensor's Modbus RTU side: requests in, responses out.

    :meth:`feed` takes the bytes a master wrote (in pieces of any size) and the scenario time,
    and returns the responses: a read of input registers 0-3 (meter status, alarm status,
    output status, CO2 in ppm) is answered with the reading of that moment; other functions or
    registers get a Modbus exception response (1 illegal function, 2 illegal data address).
    Frames addressed to another slave are ignored; bytes that start no frame with a valid CRC
    are skipped one at a time. A reading above ``range_ppm`` is sent as ``range_ppm`` with the
    out-of-range bit (5) of the meter status set. Faults (drop, garble, bad CRC) are drawn per
    response from the scenario seed, so the same requests get the same answers.
    """

    def __init__(self, stream_: DeviceStream) -> None:
        device = stream_.device
        if not isinstance(device, SenseAirDevice) or stream_.readings is None:
            raise TypeError(f"device {device.sensor_id!r} is not a SenseAir sensor")
        self.device = device
        self.readings = stream_.readings
        self.requests = 0
        self.dropped = 0
        self._buf = bytearray()
        self._rng = stream(stream_.seed, DEVICE_STREAM, stream_.index, FAULTS)

    def feed(self, data: bytes, t: float) -> list[Chunk]:
        """Responses to the complete requests in the bytes so far, at scenario time ``t``."""
        self._buf += data
        out: list[Chunk] = []
        while len(self._buf) >= 8:
            frame = bytes(self._buf[:8])
            if crc16_modbus(frame) != 0:
                del self._buf[:1]  # resynchronise on the next byte
                continue
            del self._buf[:8]
            if frame[0] not in (self.device.slave, _ANY_SENSOR):
                continue
            self.requests += 1
            chunk = self._faulty(t, self.answer(frame, t))
            if chunk is not None:
                out.append(chunk)
        return out

    def answer(self, request: bytes, t: float) -> bytes:
        """The fault-free response to one request frame (CRC already checked)."""
        addr, func = request[0], request[1]
        start = request[2] << 8 | request[3]
        count = request[4] << 8 | request[5]
        if func != 0x04:
            return modbus_frame(bytes((addr, func | 0x80, 1)))
        if count == 0 or start + count > SENSEAIR_REGISTERS:
            return modbus_frame(bytes((addr, func | 0x80, 2)))
        ppm = round(self.readings.at(t))
        status = _OUT_OF_RANGE_BIT if ppm > self.device.range_ppm else 0
        registers = (status, 0, 0, min(ppm, self.device.range_ppm))[start : start + count]
        payload = b"".join(r.to_bytes(2, "big") for r in registers)
        return modbus_frame(bytes((addr, func, len(payload))) + payload)

    def _faulty(self, t: float, response: bytes) -> Chunk | None:
        kind = _draw_fault(self.device.faults, self._rng)
        if kind == "drop":
            self.dropped += 1
            return None
        if kind == GARBLE:
            # Bytes 0xF8-0xFD are no Modbus address, so no frame starts in the noise.
            noise = self._rng.integers(0xF8, 0xFE, len(response), dtype=np.uint8).tobytes()
            return Chunk(t, noise, (GARBLE,))
        if kind == BAD_CHECKSUM:
            wrong = response[-1] ^ int(self._rng.integers(1, 256))
            return Chunk(t, response[:-1] + bytes((wrong,)), (BAD_CHECKSUM,))
        return Chunk(t, response, (None,))


# ---------------------------------------------------------------------------------------- faults
def _draw_fault(faults: DeviceFaults, rng: np.random.Generator) -> str | None:
    """``"drop"``, :data:`GARBLE`, :data:`BAD_CHECKSUM` or None for one line or response."""
    u = float(rng.random())
    for kind, rate in (
        ("drop", faults.drop_rate),
        (GARBLE, faults.garble_rate),
        (BAD_CHECKSUM, faults.bad_checksum_rate),
    ):
        if u < rate:
            return kind
        u -= rate
    return None


def _with_faults(
    lines: list[tuple[float, list[bytes]]],
    faults: DeviceFaults,
    rng: np.random.Generator,
    has_checksum: bool,
) -> tuple[list[Chunk], int]:
    """Chunks of the lines with faults applied, and the number of lines dropped."""
    chunks = []
    dropped = 0
    for t, group in lines:
        kept: list[bytes] = []
        marks: list[str | None] = []
        for line in group:
            kind = _draw_fault(faults, rng)
            if kind == "drop":
                dropped += 1
                continue
            sent = line
            if kind == GARBLE:
                sent = garble(line, rng)
            elif kind == BAD_CHECKSUM and has_checksum:
                sent = wrong_checksum(line, rng)
            else:
                kind = None
            kept.append(sent)
            marks.append(kind)
        if kept:
            chunks.append(Chunk(t, b"".join(kept), tuple(marks)))
    return chunks, dropped


def garble(line: bytes, rng: np.random.Generator) -> bytes:
    """One to three bytes of a line (not its line ending) replaced by bytes above 0x7F."""
    body = bytearray(line.rstrip(b"\r\n"))
    ending = line[len(body) :]
    count = int(rng.integers(1, 4))
    for position in rng.integers(0, len(body), count).tolist():
        body[position] = int(rng.integers(0x80, 0x100))
    return bytes(body) + ending


def wrong_checksum(line: bytes, rng: np.random.Generator) -> bytes:
    """The line with its two-digit ``*hh`` checksum changed to another value."""
    body = line.rstrip(b"\r\n")
    ending = line[len(body) :]
    good = int(body[-2:], 16)
    bad = good ^ int(rng.integers(1, 256))
    return body[:-2] + f"{bad:02X}".encode("ascii") + ending
