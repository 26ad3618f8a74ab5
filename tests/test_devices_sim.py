"""Simulated devices: byte streams from scenario truth, served on real ptys and UDP sockets.

Every stream is read back with borderwatch's own parsers and compared with the truth it came
from; injected faults must be rejected for their reason. The emulator is exercised on real
pseudo-terminals (os.openpty) and loopback UDP sockets, and the command line as a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pynmea2
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from borderwatch.cli import main
from borderwatch.config.scenario import RadarSensorConfig, Scenario, load_scenario
from borderwatch.errors import ConfigError
from borderwatch.sensors.base import Accepted, Rejected, feed_all
from borderwatch.sensors.co2 import modbus_frame
from borderwatch.sensors.registry import make_parser
from borderwatch.simulator.devices import (
    BAD_CHECKSUM,
    GARBLE,
    DeviceStream,
    SenseAirResponder,
    device_streams,
    nmea_coordinate,
)
from borderwatch.simulator.emulate import DEVICES_FILE, DeviceEmulator
from borderwatch.simulator.run import Simulation, simulate
from borderwatch.simulator.sensors import platform_trajectory, range_bearing

START = datetime(2026, 11, 23, 9, 0, 0, tzinfo=UTC)
#: Rejection reason each injected fault must produce.
REASON = {GARBLE: "malformed", BAD_CHECKSUM: "checksum"}
#: Generous bound for test I/O on a loaded machine, s (never asserted as a speed).
IO_TIMEOUT_S = 30.0
Z = 5.0


#: A small river scenario with one device of every type, and frequent faults.
SCENARIO = """
name: devices-test
seed: 5
duration_s: 120
origin: {lat_deg: 44.187, lon_deg: 19.335, alt_m: 180}
border: [{name: river, kind: blue, points: [[-3000, 0], [3000, 0]]}]
platforms:
  - name: boat
    points: [[-1000, 20], [1000, 20]]
    speed_mps: 5
    gps: {rate_hz: 2, sigma_m: 3, correlation_s: 1, heading_sensor: true}
    ais: {mmsi: 279000007, class: A, interval_s: 5, name: PATROL, static_interval_s: 20}
targets:
  - id: ferry
    class: boat
    motion: {type: waypoints, speed_mps: 4, points: [[800, 60], [-800, 80]]}
    ais: {mmsi: 279000101, class: A, interval_s: 3, name: FERRY ONE, callsign: YT1F,
          ship_type: 60, static_interval_s: 20}
  - id: dinghy
    class: boat
    motion: {type: waypoints, speed_mps: 2, points: [[-300, -60], [300, -70]]}
    ais: {mmsi: 279000202, class: B, interval_s: 6, name: DINGHY, ship_type: 37,
          static_interval_s: 30}
  - id: skiff
    class: boat
    motion: {type: waypoints, speed_mps: 3, points: [[-200, -50], [200, 40]]}
  - id: truck
    class: vehicle
    motion: {type: waypoints, speed_mps: 10, after_last: hold, points: [[0, -900], [0, -400]]}
inspections:
  - {vehicle_id: truck, persons: 5, start_s: 10, baseline_s: 10, sample_s: 80, probe: probe,
     volume_m3: 30, closed_for_s: 3600}
  - {vehicle_id: truck, persons: 5, start_s: 10, baseline_s: 10, sample_s: 80, probe: k30,
     volume_m3: 30, closed_for_s: 3600}
sensors:
  - {id: radar, type: radar, mount: {platform: boat}, fov: {max_range_m: 1500},
     sigma_range_m: 10, sigma_bearing_deg: 1, pd: 0.9, clutter_rate: 1, update_interval_s: 2}
devices:
  - {sensor_id: gps, type: gps, platform: boat,
     faults: {garble_rate: 0.05, bad_checksum_rate: 0.05, drop_rate: 0.03}}
  - {sensor_id: ais, type: ais, platform: boat,
     faults: {garble_rate: 0.05, bad_checksum_rate: 0.05, drop_rate: 0.05}}
  - {sensor_id: radar, type: radar, platform: boat,
     faults: {garble_rate: 0.05, bad_checksum_rate: 0.05}}
  - {sensor_id: radar-rel, type: radar, platform: boat, bearing: relative}
  - {sensor_id: probe, type: gmp343, interval_s: 1, faults: {garble_rate: 0.05, drop_rate: 0.02}}
  - {sensor_id: k30, type: senseair, slave: 104,
     faults: {garble_rate: 0.1, bad_checksum_rate: 0.1, drop_rate: 0.1}}
"""


def scenario_dict(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(SCENARIO)
    doc.update(overrides)
    return doc


def make_scenario(**overrides: Any) -> Scenario:
    return Scenario.model_validate(scenario_dict(**overrides))


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(make_scenario())


@pytest.fixture(scope="module")
def streams(sim: Simulation) -> dict[str, DeviceStream]:
    return {s.sensor_id: s for s in device_streams(sim, START)}


def stream_bytes(s: DeviceStream, until_s: float = math.inf) -> bytes:
    return b"".join(c.data for c in s.chunks if c.t <= until_s)


def lines_of(s: DeviceStream) -> list[tuple[float, str | None, int, bytes]]:
    """Per line sent: chunk time, fault, chunk index and the line's bytes."""
    out: list[tuple[float, str | None, int, bytes]] = []
    for k, chunk in enumerate(s.chunks):
        lines = chunk.data.splitlines(keepends=True)
        assert len(lines) == len(chunk.faults)
        out.extend((chunk.t, f, k, line) for f, line in zip(chunk.faults, lines, strict=True))
    return out


def accepted_with_times(s: DeviceStream) -> list[tuple[float, dict[str, Any]]]:
    """Accepted items of a stream, each with the scenario time of its (last) line."""
    table = lines_of(s)
    items = feed_all(make_parser(s.parser_format), stream_bytes(s))
    return [(table[i.line - 1][0], i.data) for i in items if isinstance(i, Accepted) and i.line]


def seconds_of_day(text: str) -> float:
    hh, mm, ss = text.split(":")
    return int(hh) * 3600 + int(mm) * 60 + float(ss)


# --------------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_streams(sim: Simulation) -> None:
    again = device_streams(simulate(make_scenario()), START)
    first = device_streams(sim, START)
    assert [s.chunks for s in again] == [s.chunks for s in first]
    for a, b in zip(again, first, strict=True):
        if a.readings is not None and b.readings is not None:
            assert np.array_equal(a.readings.ppm, b.readings.ppm)
    other = device_streams(simulate(make_scenario(), seed=6), START)
    for a, b in zip(other, first, strict=True):
        if a.type != "senseair":
            assert stream_bytes(a) != stream_bytes(b), a.sensor_id


def test_faults_do_not_change_the_good_lines(sim: Simulation) -> None:
    calm = scenario_dict()
    for device in calm["devices"]:
        device.pop("faults", None)
    clean = {s.sensor_id: s for s in device_streams(simulate(Scenario.model_validate(calm)), START)}
    for s in device_streams(sim, START):
        if s.type == "senseair":
            continue
        good = [line for _t, f, _k, line in lines_of(s) if f is None]
        everything = [line for _t, _f, _k, line in lines_of(clean[s.sensor_id])]
        assert set(good) <= set(everything), s.sensor_id
        assert len(everything) == len(lines_of(s)) + s.dropped, s.sensor_id


# ------------------------------------------------------------------------ parse and faults
@pytest.mark.parametrize("sensor_id", ["gps", "ais", "radar", "radar-rel", "probe"])
def test_good_lines_are_accepted_and_faults_rejected_for_their_reason(
    streams: dict[str, DeviceStream], sensor_id: str
) -> None:
    s = streams[sensor_id]
    table = lines_of(s)
    items = feed_all(make_parser(s.parser_format), stream_bytes(s))
    covered: set[int] = set()
    for item in items:
        assert item.line is not None
        if isinstance(item, Accepted):
            first = item.line - item.data.get("fragments", 1) + 1
            covered.update(range(first, item.line + 1))
            assert all(table[n - 1][1] is None for n in range(first, item.line + 1))
            continue
        assert isinstance(item, Rejected)
        _t, fault, chunk, line = table[item.line - 1]
        if fault is not None:
            assert item.reason == REASON[fault], (item, line)
        else:
            # A fragment whose partner was damaged or dropped cannot complete its message.
            assert item.reason == "incomplete_fragment", (item, line)
            partners = [row for row in table if row[2] == chunk]
            assert any(f is not None for _t, f, _k, _l in partners) or len(partners) < 2
    # Every line of an intact message is accepted.
    intact = {k for k, c in enumerate(s.chunks) if all(f is None for f in c.faults)}
    for n, (_t, _f, chunk, line) in enumerate(table, start=1):
        if chunk in intact and len(s.chunks[chunk].faults) == fragments(line):
            assert n in covered, line
    # The faults asked for happened.
    faults = Counter(f for _t, f, _k, _l in table)
    rates = s.device.faults
    assert (faults[GARBLE] > 0) == (rates.garble_rate > 0)
    assert (faults[BAD_CHECKSUM] > 0) == (rates.bad_checksum_rate > 0)
    assert (s.dropped > 0) == (rates.drop_rate > 0)


def fragments(line: bytes) -> int:
    """How many sentences the message of an AIS line has (1 for other lines)."""
    return int(line.split(b",")[1]) if line.startswith(b"!AIVD") else 1


def test_gps_matches_truth_within_noise(sim: Simulation, streams: dict[str, DeviceStream]) -> None:
    boat = sim.scenario.platforms[0]
    assert boat.gps is not None
    path = platform_trajectory(boat, sim.scenario.duration_s)
    fixes = accepted_with_times(streams["gps"])
    by_sentence = Counter(d["sentence"] for _t, d in fixes)
    assert min(by_sentence[k] for k in ("GGA", "RMC", "VTG", "GST", "HDT")) > 150
    gga = [(t, d) for t, d in fixes if d["sentence"] == "GGA"]
    t = np.array([t for t, _d in gga])
    # The time in the sentence is the scenario time after START.
    assert np.allclose([seconds_of_day(d["time"]) - 9 * 3600 for _t, d in gga], t)
    xy = sim.frame.to_enu(
        np.array([d["lat"] for _t, d in gga]), np.array([d["lon"] for _t, d in gga])
    )
    truth, _v, _h = path.evaluate(t)
    err = xy - truth
    sigma = boat.gps.sigma_m
    assert np.all(np.abs(err) < Z * sigma)
    assert 0.3 * sigma < float(np.std(err)) < 2.0 * sigma
    rmc = [(t, d) for t, d in fixes if d["sentence"] == "RMC"]
    assert all(d["time"].startswith("2026-11-23T09:") and d["valid"] for _t, d in rmc)
    speeds = np.array([d["speed_mps"] for _t, d in rmc])
    assert np.allclose(speeds, boat.speed_mps, atol=Z * boat.gps.sigma_speed_mps + 0.01)
    hdt = [(t, d["heading_deg"]) for t, d in fixes if d["sentence"] == "HDT"]
    _xy, _v, h = path.evaluate(np.array([t for t, _h in hdt]))
    off = (np.array([x for _t, x in hdt]) - np.degrees(h) + 180.0) % 360.0 - 180.0
    assert np.all(np.abs(off) < Z * boat.gps.sigma_heading_deg + 0.05)


def test_ais_reports_true_positions_and_static_data(
    sim: Simulation, streams: dict[str, DeviceStream]
) -> None:
    reports = accepted_with_times(streams["ais"])
    carriers = {279000101: sim.targets[0].trajectory, 279000202: sim.targets[1].trajectory}
    boat = sim.scenario.platforms[0]
    carriers[279000007] = platform_trajectory(boat, sim.scenario.duration_s)
    kinds = Counter((d["mmsi"], d["msg_type"], d["own"]) for _t, d in reports)
    assert kinds[(279000101, 1, False)] > 20
    assert kinds[(279000202, 18, False)] > 10
    assert kinds[(279000007, 1, True)] > 10
    assert kinds[(279000101, 5, False)] >= 2
    assert kinds[(279000202, 24, False)] >= 2
    assert kinds[(279000007, 5, True)] >= 1
    for t, d in reports:
        if d["msg_type"] in (1, 18):
            xy = sim.frame.to_enu(np.array([d["lat"]]), np.array([d["lon"]]))[0]
            truth, v, _h = carriers[d["mmsi"]].evaluate(np.array([t]))
            assert np.hypot(*(xy - truth[0])) < 0.5  # 1/10000 minute resolution
            assert d["speed_mps"] == pytest.approx(float(np.hypot(*v[0])), abs=0.06)
            assert d["second"] == (START + timedelta(seconds=t)).second
        elif d["msg_type"] == 5:
            assert d["name"] == ("FERRY ONE" if d["mmsi"] == 279000101 else "PATROL")
        elif d["msg_type"] == 24 and d["partno"] == 0:
            assert d["name"] == "DINGHY"
        elif d["msg_type"] == 24:
            assert d["ship_type"] == 37


@pytest.mark.parametrize("sensor_id", ["radar", "radar-rel"])
def test_radar_targets_match_truth_within_noise(
    sim: Simulation, streams: dict[str, DeviceStream], sensor_id: str
) -> None:
    radar = sim.scenario.sensors[0]
    assert isinstance(radar, RadarSensorConfig)
    path = platform_trajectory(sim.scenario.platforms[0], sim.scenario.duration_s)
    seen: Counter[str] = Counter()
    for t, d in accepted_with_times(streams[sensor_id]):
        i = d["target"] - 1
        seen[sim.targets[i].id] += 1
        assert d["bearing_reference"] == ("relative" if sensor_id == "radar-rel" else "true")
        here, _v, heading = path.evaluate(np.array([t]))
        truth = sim.targets[i].trajectory.evaluate(np.array([t]))[0]
        r, b = range_bearing(here[0], truth)
        bearing = d["bearing_deg"] + (math.degrees(heading[0]) if sensor_id == "radar-rel" else 0)
        off = (bearing - math.degrees(b[0]) + 180.0) % 360.0 - 180.0
        assert abs(d["range_m"] - r[0]) < Z * radar.sigma_range_m + 2.0  # 0.001 NM steps
        assert abs(off) < Z * radar.sigma_bearing_deg + 0.1
    # Each target in range is reported under its own number, scan after scan.
    assert set(seen) == {"ferry", "dinghy", "skiff", "truck"}
    assert min(seen.values()) > 10


def test_gmp343_lines_carry_the_inspection(streams: dict[str, DeviceStream]) -> None:
    s = streams["probe"]
    assert s.readings is not None
    readings = accepted_with_times(s)
    assert len(readings) > 100
    for t, d in readings:
        assert d["ppm"] == pytest.approx(s.readings.at(t), abs=0.051)
        assert d["temperature_c"] == pytest.approx(21.5, abs=1.0)
    ins = s.inspections[0]
    outside = [d["ppm"] for t, d in readings if t < ins.sample_start_s]
    inside = [d["ppm"] for t, d in readings if ins.sample_start_s + 40 < t < ins.sample_end_s]
    assert abs(np.mean(outside) - 420.0) < 10.0
    assert np.mean(inside) > 420.0 + 500.0  # five people in 30 m³ for an hour


# ------------------------------------------------------------------------------------- SenseAir
READ_CO2 = bytes.fromhex("FE0400030001D5C5")


def test_senseair_answers_requests_with_faults_for_their_reason(
    streams: dict[str, DeviceStream],
) -> None:
    s = streams["k30"]
    assert s.readings is not None
    responder = SenseAirResponder(s)
    status_to_co2 = modbus_frame(bytes.fromhex("680400000004"))
    recording = bytearray()
    expected: Counter[str] = Counter()
    values = []
    for k in range(200):
        request = READ_CO2 if k % 2 else status_to_co2
        t = 0.5 * k
        answers = responder.feed(request[:3], t) + responder.feed(request[3:], t)
        recording += request
        for chunk in answers:
            recording += chunk.data
            fault = chunk.faults[0]
            expected[REASON[fault] if fault else "senseair"] += 1
            if fault is None:
                values.append(round(s.readings.at(t)))
    assert responder.requests == 200
    assert responder.dropped == 200 - sum(expected.values()) > 0
    items = feed_all(make_parser("senseair"), bytes(recording))
    got = Counter(i.key if isinstance(i, Accepted) else i.reason for i in items)
    assert got == expected
    assert expected["malformed"]
    assert expected["checksum"]
    assert [i.data["ppm"] for i in items if isinstance(i, Accepted)] == values


def test_senseair_exceptions_other_slaves_and_range(sim: Simulation) -> None:
    doc = scenario_dict()
    doc["devices"] = [{"sensor_id": "k30", "type": "senseair", "slave": 104, "range_ppm": 500}]
    doc["inspections"] = yaml.safe_load(
        "[{vehicle_id: t, persons: 5, start_s: 0, baseline_s: 0, sample_s: 100, volume_m3: 20,"
        " closed_for_s: 3600}]"
    )
    (s,) = device_streams(simulate(Scenario.model_validate(doc)), START)
    responder = SenseAirResponder(s)
    assert responder.feed(modbus_frame(bytes.fromhex("010400030001")), 50.0) == []
    (bad_function,) = responder.feed(modbus_frame(bytes.fromhex("680300030001")), 50.0)
    (bad_register,) = responder.feed(modbus_frame(bytes.fromhex("680400030002")), 50.0)
    (saturated,) = responder.feed(modbus_frame(bytes.fromhex("680400000004")), 50.0)
    assert bad_function.data == modbus_frame(bytes.fromhex("688301"))
    assert bad_register.data == modbus_frame(bytes.fromhex("688402"))
    assert saturated.data == modbus_frame(bytes.fromhex("680408002000000000" + "01F4"))
    items = feed_all(
        make_parser("senseair"), modbus_frame(bytes.fromhex("680400000004")) + saturated.data
    )
    assert [i.reason for i in items if isinstance(i, Rejected)] == ["out_of_range"]
    # Noise before a request is skipped; the request after it is still answered.
    (after_noise,) = responder.feed(b"\x00\x13\xfe" + READ_CO2, 50.0)
    assert after_noise.data[:3] == bytes.fromhex("FE0402")


# --------------------------------------------------------------------------- scenario checks
WADING_BOAT = "{class: boat, motion: {type: waypoints, speed_mps: 1, points: [[0, 0], [1, 1]]}"
#: (top-level key, YAML of its new value, part of the error message).
BAD_SETTINGS = [
    ("platforms", "[{name: boat, points: [[0, 0], [1, 0]], speed_mps: 1}]", "has no gps"),
    ("devices", "[{sensor_id: r, type: radar, platform: nowhere}]", "no platform"),
    ("devices", "[{sensor_id: r, type: radar, platform: boat, radar: x}]", "carries no radar 'x'"),
    ("devices", "[{sensor_id: g, type: gps, platform: boat, transport: udp}]", "udp_port"),
    ("devices", "[{sensor_id: g, type: gps, platform: boat, udp_port: 9}]", "udp_port"),
    ("devices", "[{sensor_id: k, type: senseair, transport: udp, udp_port: 9}]", "needs a pty"),
    ("devices", "[{sensor_id: p, type: gmp343, faults: {bad_checksum_rate: 0.1}}]", "checksum"),
    ("devices", "[{sensor_id: p, type: gmp343, faults: {garble_rate: .6, drop_rate: .6}}]", "add"),
    ("devices", "[{sensor_id: ../x, type: gmp343}]", "pattern"),
    ("devices", "[{sensor_id: p, type: gmp343}, {sensor_id: p, type: gmp343}]", "duplicate"),
    ("inspections", "[{vehicle_id: t, persons: 1, start_s: 0, probe: nope}]", "no gmp343"),
    (
        "inspections",
        "[{vehicle_id: t, persons: 1, start_s: 0}, {vehicle_id: u, persons: 1, start_s: 100}]",
        "previous inspection",
    ),
    ("targets", f"[{WADING_BOAT}, ais: {{mmsi: 279000007, class: A}}}}]", "duplicate mmsi"),
    ("targets", f"[{WADING_BOAT}, ais: {{mmsi: 1, class: A, name: lower}}}}]", "pattern"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD_SETTINGS)
def test_bad_device_settings_are_refused(
    tmp_path: Path, key: str, value: str, message: str
) -> None:
    doc = scenario_dict(**{key: yaml.safe_load(value)})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_scenario(path)


@settings(max_examples=200, deadline=None)
@given(
    lat=st.floats(-89.999999, 89.999999, allow_nan=False),
    lon=st.floats(-179.999999, 179.999999, allow_nan=False),
)
def test_nmea_coordinates_read_back(lat: float, lon: float) -> None:
    lat_text, ns = nmea_coordinate(lat, "lat")
    lon_text, ew = nmea_coordinate(lon, "lon")
    fields = (
        "120000.00",
        lat_text,
        ns,
        lon_text,
        ew,
        "1",
        "08",
        "1.0",
        "0.0",
        "M",
        "0.0",
        "M",
        "",
        "",
    )
    line = pynmea2.GGA("GP", "GGA", fields).render() + "\r\n"
    (item,) = feed_all(make_parser("nmea"), line.encode("ascii"))
    assert isinstance(item, Accepted), item
    assert item.data["lat"] == pytest.approx(lat, abs=1e-6)
    assert item.data["lon"] == pytest.approx(lon, abs=1e-6)


# ---------------------------------------------------------------------------------- emulator
class Serving:
    """An emulator serving in a background thread (closed, links removed, when it ends)."""

    def __init__(self, streams: list[DeviceStream], out: Path, *, speed: float, until_s: float):
        self.emulator = DeviceEmulator(streams, out, speed=speed, until_s=until_s)
        self.served = {d.sensor_id: d for d in self.emulator.open()}
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self.emulator.serve())
        except BaseException as exc:
            self.error = exc
        finally:
            self.emulator.close()

    def __enter__(self) -> Serving:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.emulator.stop()
        self.thread.join(IO_TIMEOUT_S)
        assert not self.thread.is_alive()
        assert self.error is None, self.error


def read_until_closed(fds: dict[str, int]) -> dict[str, bytes]:
    """Everything from pty slaves until their masters close (EOF or EIO), read side by side."""
    out = {k: bytearray() for k in fds}
    open_fds = {fd: k for k, fd in fds.items()}
    deadline = time.monotonic() + IO_TIMEOUT_S
    while open_fds and time.monotonic() < deadline:
        ready, _, _ = select.select(list(open_fds), [], [], 0.5)
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the master side is closed
                data = b""
            if data:
                out[open_fds[fd]] += data
            else:
                del open_fds[fd]
    assert not open_fds, f"still open after {IO_TIMEOUT_S} s: {list(open_fds.values())}"
    return {k: bytes(v) for k, v in out.items()}


def open_slave(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_NOCTTY)


def test_ptys_carry_the_streams_byte_for_byte(
    streams: dict[str, DeviceStream], tmp_path: Path
) -> None:
    chosen = [streams[k] for k in ("gps", "ais", "radar", "probe")]
    until = 30.0
    with Serving(chosen, tmp_path, speed=60.0, until_s=until) as serving:
        fds = {k: open_slave(serving.served[k].address) for k in serving.served}
        assert all(os.path.islink(tmp_path / k) for k in fds)
        received = read_until_closed(fds)
        for fd in fds.values():
            os.close(fd)
    assert not any(os.path.lexists(tmp_path / k) for k in fds)
    manifest = json.loads((tmp_path / DEVICES_FILE).read_text())
    assert [d["address"] for d in manifest["devices"]] == [serving.served[k].address for k in fds]
    for s in chosen:
        assert serving.emulator.counters[s.sensor_id].overflow_chunks == 0
        assert received[s.sensor_id] == stream_bytes(s, until), s.sensor_id
        items = feed_all(make_parser(s.parser_format), received[s.sensor_id])
        assert sum(isinstance(i, Accepted) for i in items) > 10


def test_udp_datagrams_are_the_chunks(sim: Simulation, tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(0.5)
        port = rx.getsockname()[1]
        doc = scenario_dict()
        doc["devices"][1].update(transport="udp", udp_port=port)
        s = device_streams(simulate(Scenario.model_validate(doc)), START)[1]
        until = 40.0
        datagrams: list[bytes] = []
        with Serving([s], tmp_path, speed=80.0, until_s=until) as serving:
            assert serving.served["ais"].address == f"udp://127.0.0.1:{port}"
            while serving.thread.is_alive() or len(datagrams) < len(s.chunks):
                try:
                    datagrams.append(rx.recv(65536))
                except TimeoutError:
                    if not serving.thread.is_alive():
                        break
    assert datagrams == [c.data for c in s.chunks if c.t <= until]
    items = feed_all(make_parser("ais"), b"".join(datagrams))
    assert {i.data["mmsi"] for i in items if isinstance(i, Accepted)} >= {279000101, 279000007}


def test_unplug_removes_the_link_and_a_new_pty_comes_back(sim: Simulation, tmp_path: Path) -> None:
    doc = scenario_dict()
    doc["devices"] = yaml.safe_load(
        "[{sensor_id: gps, type: gps, platform: boat, faults: {unplug_at_s: 4, unplug_for_s: 4}}]"
    )
    doc["inspections"] = []
    (s,) = device_streams(simulate(Scenario.model_validate(doc)), START)
    assert s.unplugged == (4.0, 8.0)
    assert not any(4.0 <= c.t < 8.0 for c in s.chunks)
    link = tmp_path / "gps"
    states = []
    with Serving([s], tmp_path, speed=4.0, until_s=12.0) as serving:
        first = open_slave(str(link))
        before = read_until_closed({"gps": first})["gps"]  # ends when the device is unplugged
        os.close(first)
        deadline = time.monotonic() + IO_TIMEOUT_S
        while time.monotonic() < deadline and serving.thread.is_alive():
            states.append(os.path.lexists(link))
            if states[-1] and False in states:
                break
            time.sleep(0.01)
        second = open_slave(str(link))
        after = read_until_closed({"gps": second})["gps"]
        os.close(second)
    assert False in states
    assert states[-1]
    # An unplug loses what was still in flight; the new pty carries what comes after it.
    assert before
    assert stream_bytes(s, 4.0).startswith(before)
    assert after == b"".join(c.data for c in s.chunks if 8.0 <= c.t <= 12.0)
    assert serving.emulator.counters["gps"].unplugged == 1


def test_senseair_answers_on_its_pty(streams: dict[str, DeviceStream], tmp_path: Path) -> None:
    s = streams["k30"]
    assert s.readings is not None
    request = modbus_frame(bytes.fromhex("680400000004"))
    with Serving([s], tmp_path, speed=2.0, until_s=60.0) as serving:
        fd = open_slave(serving.served["k30"].address)
        recording = bytearray()
        spans = []
        try:
            for _ in range(40):
                t0 = serving.emulator.scenario_time()
                os.write(fd, request)
                recording += request
                ready, _, _ = select.select([fd], [], [], 0.5)  # a dropped answer never comes
                if ready:
                    time.sleep(0.02)  # let the whole frame arrive
                    recording += os.read(fd, 256)
                    spans.append((t0, serving.emulator.scenario_time()))
        finally:
            os.close(fd)
    items = feed_all(make_parser("senseair"), bytes(recording))
    good = [i.data["ppm"] for i in items if isinstance(i, Accepted)]
    assert len(good) > 10
    assert {i.reason for i in items if isinstance(i, Rejected)} <= {"malformed", "checksum"}
    possible = {round(v) for v in s.readings.ppm[s.readings.t <= spans[-1][1] + 1.0]}
    assert set(good) <= possible
    assert serving.emulator.counters["k30"].requests == 40


# ------------------------------------------------------------------------------ command line
def write_scenario(tmp_path: Path, **overrides: Any) -> Path:
    path = tmp_path / "devices-test.yaml"
    path.write_text(yaml.safe_dump(scenario_dict(**overrides)), encoding="utf-8")
    return path


def start_cli(*args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "borderwatch.cli", "simulate", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_cli_prints_the_devices_and_ends_with_the_duration(tmp_path: Path) -> None:
    out = tmp_path / "dev"
    scenario = str(write_scenario(tmp_path))
    proc = start_cli(scenario, "--devices", "--out", str(out), "--speed", "5", "--duration", "10")
    assert proc.stdout is not None
    lines = [proc.stdout.readline().split() for _ in range(6)]
    live = [os.path.islink(path) for _id, kind, path in lines if kind != "ais"]
    stdout, stderr = proc.communicate(timeout=IO_TIMEOUT_S)
    assert proc.returncode == 0, stderr
    assert stdout == ""
    assert [f"{i}:{k}" for i, k, _p in lines] == [
        "gps:gps",
        "ais:ais",
        "radar:radar",
        "radar-rel:radar",
        "probe:gmp343",
        "k30:senseair",
    ]
    assert all(path == str((out / i).absolute()) for i, _k, path in lines)
    assert all(live)
    manifest = json.loads((out / DEVICES_FILE).read_text())
    assert [d["address"] for d in manifest["devices"]] == [p for _i, _k, p in lines]
    assert manifest["devices"][4]["inspections"][0]["persons"] == 5
    assert not any(os.path.lexists(out / i) for i, _k, _p in lines)


def test_cli_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    out = tmp_path / "dev"
    proc = start_cli(str(write_scenario(tmp_path)), "--devices", "--out", str(out))
    assert proc.stdout is not None
    first = proc.stdout.readline().split()
    assert first == ["gps", "gps", str((out / "gps").absolute())]
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=IO_TIMEOUT_S)
    assert proc.returncode == 0, stderr
    assert not os.path.lexists(out / "gps")


def test_cli_without_devices_still_needs_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", str(write_scenario(tmp_path))]) == 2
    assert "--out is required" in capsys.readouterr().err


def test_cli_refuses_a_scenario_without_devices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(tmp_path, devices=[], inspections=[])
    assert main(["simulate", str(path), "--devices", "--out", str(tmp_path / "dev")]) == 2
    assert "no 'devices'" in capsys.readouterr().err


def test_documented_device_example_validates() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "scenarios.md").read_text()
    section = text.split("## Devices, AIS, GPS and CO2 inspections", 1)[1]
    example = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    radar = scenario_dict()["sensors"][0] | {"mount": {"platform": "patrol-boat"}}
    base = {k: scenario_dict()[k] for k in ("name", "origin", "border")}
    scenario = Scenario.model_validate(base | example | {"sensors": [radar], "duration_s": 300})
    assert [d.type for d in scenario.devices] == ["gps", "ais", "radar", "gmp343"]
    assert scenario.start_utc == datetime(2026, 11, 23, 9, tzinfo=UTC)
    streams = device_streams(simulate(scenario))
    assert all(s.chunks for s in streams)
