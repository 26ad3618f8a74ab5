"""The edge node end to end: simulated devices on real ptys → drivers → sensors → fusion.

The simulator serves the shipped ``boat-patrol-devices`` scenario (GPS, AIS, radar, a GMP343
probe and a SenseAir sensor, with garbled bytes, bad checksums, dropped lines and the radar
unplugged for 15 s) on pseudo-terminals, at 20× speed; the node runs on a clock 20× fast, so
both agree on scenario time. Nothing is mocked: the bytes go through the kernel's ptys.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import pytest

from borderwatch.config.node import NodeConfig, load_node_config, with_broker
from borderwatch.config.scenario import load_scenario
from borderwatch.edge.node import Node
from borderwatch.errors import CommandError, ConfigError
from borderwatch.fusion.frames import LocalFrame
from borderwatch.scenarios import resolve_scenario
from borderwatch.schema import (
    Alert,
    Concealment,
    Envelope,
    NodeState,
    Track,
    TrackStatus,
    parse_message,
)
from borderwatch.sensors.base import Accepted
from borderwatch.simulator.devices import device_streams
from borderwatch.simulator.emulate import DeviceEmulator
from borderwatch.simulator.nodeconfig import write_node_config
from borderwatch.simulator.run import simulate, truth_crossings

SPEED = 20.0


class Collector:
    """An output that keeps every message."""

    name = "collector"

    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def publish(self, message: Envelope) -> None:
        self.messages.append(message)

    def of(self, cls: type[Envelope]) -> list[Any]:
        return [m for m in self.messages if isinstance(m, cls)]


class ScenarioClock:
    """Unix time running ``SPEED`` times fast from ``start``: scenario time + start_utc."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.wall0 = time.monotonic()

    def __call__(self) -> float:
        return self.start + (time.monotonic() - self.wall0) * SPEED

    def scenario_t(self) -> float:
        return self() - self.start

    async def until(self, t: float) -> None:
        while self.scenario_t() < t:
            await asyncio.sleep(0.02)


async def _inspect(node: Node, clock: ScenarioClock, probe: str | None, ins: Any) -> None:
    await clock.until(ins.start_s)
    await node.command("co2_start", {"sensor_id": probe, "vehicle_id": ins.vehicle_id})
    await clock.until(ins.start_s + ins.baseline_s)
    await node.command("co2_mark", {"sensor_id": probe})
    await clock.until(ins.start_s + ins.baseline_s + ins.sample_s)
    await node.command("co2_finish", {"sensor_id": probe})


@pytest.fixture(scope="module")
def patrol_run(tmp_path_factory: pytest.TempPathFactory):
    """Run the node against the served patrol scenario once; the tests read the outcome."""
    out = tmp_path_factory.mktemp("devices")
    scenario = load_scenario(resolve_scenario("boat-patrol-devices"))
    sim = simulate(scenario)
    start = float(int(time.time()))
    streams = device_streams(sim, datetime.fromtimestamp(start, UTC))
    collector = Collector()

    async def main() -> Node:
        with DeviceEmulator(streams, out, speed=SPEED, until_s=scenario.duration_s) as emu:
            config = load_node_config(write_node_config(out, sim, emu.served))
            # The node polls the SenseAir sensor on the wall clock: poll 20x as often, so that
            # it reads every 2 s of scenario time, as the scenario's device measures.
            devices = [
                d.model_copy(update={"poll_interval_s": 2.0 / SPEED}) if d.type == "senseair" else d
                for d in config.devices
            ]
            config = config.model_copy(update={"devices": devices})
            clock = ScenarioClock(start)
            node = Node(config, [collector], clock=clock)
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(node.run())
                for ins in scenario.inspections:
                    tasks.create_task(_inspect(node, clock, ins.probe, ins))
                await emu.serve()
                node.stop()
            return node

    node = asyncio.run(main())
    return sim, node, collector


def _local(frame: LocalFrame, lat: float, lon: float) -> Any:
    return frame.to_enu(np.array([lat]), np.array([lon]))[0]


def test_smuggler_skiff_crossing_is_alerted_near_where_it_crossed(patrol_run) -> None:
    sim, _node, collector = patrol_run
    (crossing,) = truth_crossings(sim)["smuggler-skiff"]
    alerts = [
        a for a in collector.of(Alert) if a.kind.value == "crossing" and a.event.value == "new"
    ]
    assert alerts, "no crossing alert"
    distances = [
        np.hypot(
            *(
                _local(sim.frame, a.after.position.lat_deg, a.after.position.lon_deg)
                - (crossing.x, crossing.y)
            )
        )
        for a in alerts
    ]
    assert min(distances) < 60.0
    # Patrol boats cross the river on duty: no alert names a track identified as own.
    own_tracks = {t.track_id for t in collector.of(Track) if t.vessel and t.vessel.own}
    assert not own_tracks & {a.track_id for a in collector.of(Alert)}


def test_ais_vessels_are_identified_and_the_skiff_is_dark(patrol_run) -> None:
    _sim, _node, collector = patrol_run
    tracks = collector.of(Track)
    names = {t.vessel.mmsi: t.vessel.name for t in tracks if t.vessel is not None}
    assert names.get(279000101) == "DRINA STAR"
    assert 279000202 in names
    # The node's own transponder (AIVDO) is not tracked as a target.
    assert 279000007 not in names
    # The one boat without AIS (the skiff) shows up as dark; no AIS vessel does.
    dark = [t for t in tracks if t.dark]
    assert dark
    assert all(t.vessel is None or not t.vessel.own for t in dark)


def test_tracks_the_tracker_ends_are_reported_ended_once(patrol_run) -> None:
    _, node, collector = patrol_run
    tracks = collector.of(Track)
    ended = [t for t in tracks if t.status is TrackStatus.ENDED]
    assert ended, "the scenario's targets leave the radar's coverage"
    ended_ids = [t.track_id for t in ended]
    assert len(ended_ids) == len(set(ended_ids))
    for final in ended:
        before = [t for t in tracks if t.track_id == final.track_id and t is not final]
        # The last summary again, marked ended; nothing follows it.
        assert before
        assert tracks.index(before[-1]) < tracks.index(final)
        assert final.position == before[-1].position
        assert final.msg_id != before[-1].msg_id
    assert not set(ended_ids) & set(node._reported)


def test_co2_inspections_give_their_verdicts(patrol_run) -> None:
    _sim, _node, collector = patrol_run
    verdicts = {c.vehicle_id: c.verdict.value for c in collector.of(Concealment)}
    assert verdicts == {"truck-1": "persons_likely", "truck-2": "clear"}


def test_device_faults_are_counted_and_the_unplugged_radar_comes_back(patrol_run) -> None:
    _sim, node, collector = patrol_run
    health = {h.sensor_id: h for h in node.sensor_health()}
    assert health["boat-gps"].rejected.get("malformed", 0) > 0
    assert health["boat-ais"].rejected.get("checksum", 0) > 0
    assert health["boat-radar"].disconnects >= 1
    assert health["boat-radar"].connects >= 2
    assert health["boat-radar"].accepted.get("TTM", 0) > 100
    # The last state goes out as offline, with the per-sensor counts.
    final = collector.of(NodeState)[-1]
    assert final.status.value == "offline"
    radar = next(s for s in final.sensors if s.sensor_id == "boat-radar")
    assert radar.detections > 100
    assert final.errors >= sum(s.errors for s in final.sensors)
    assert final.position is not None


async def test_commands_refuse_bad_arguments_and_change_nothing(tmp_path: Path) -> None:
    config = NodeConfig.model_validate(
        {
            "node_id": "boat-9",
            "frame": {"lat_deg": 44.0, "lon_deg": 19.0},
            "devices": [{"type": "gmp343", "sensor_id": "probe", "url": "loop://"}],
        }
    )
    node = Node(config)
    with pytest.raises(CommandError, match="unknown command"):
        await node.command("launch", {})
    with pytest.raises(CommandError, match="not a CO2 probe"):
        await node.command("co2_start", {"sensor_id": "radar", "vehicle_id": "x"})
    with pytest.raises(CommandError, match="vehicle_id"):
        await node.command("co2_start", {"sensor_id": "probe", "vehicle_id": " "})
    with pytest.raises(CommandError, match="no inspection session"):
        await node.command("co2_finish", {"sensor_id": "probe"})
    assert not node.stage.co2["probe"].active
    reply = await node.command("co2_start", {"sensor_id": "probe", "vehicle_id": "MSCU 1"})
    assert reply["ok"]
    assert node.stage.co2["probe"].active


def _write_pty_node_config(tmp_path: Path, gps_link: Path) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text(
        "node_id: boat-3\n"
        "frame: {lat_deg: 44.187, lon_deg: 19.335}\n"
        "health: {interval_s: 0.3}\n"
        "fusion: {scan_interval_s: 0.1}\n"
        "devices:\n"
        f"  - {{type: gps, sensor_id: gps, url: {gps_link}}}\n",
        encoding="utf-8",
    )
    return path


def _gga(i: int) -> bytes:
    import pynmea2

    body = pynmea2.GGA(
        "GP",
        "GGA",
        (
            time.strftime("%H%M%S", time.gmtime()) + ".00",
            "4411.220",
            "N",
            f"{1920.100 + i * 0.001:.3f}",
            "E",
            "1",
            "09",
            "0.9",
            "180.0",
            "M",
            "40.0",
            "M",
            "",
            "",
        ),
    )
    return (str(body) + "\r\n").encode()


async def test_node_publishes_state_and_position_over_mqtt_and_answers_commands(
    tmp_path: Path, mosquitto: str
) -> None:
    master, slave = os.openpty()
    link = tmp_path / "gps"
    link.symlink_to(os.ttyname(slave))
    config = with_broker(load_node_config(_write_pty_node_config(tmp_path, link)), mosquitto)
    assert config.mqtt is not None
    config = config.model_copy(
        update={"mqtt": config.mqtt.model_copy(update={"outbox_path": tmp_path / "outbox.db"})}
    )
    node = Node(config)
    host, port = mosquitto.removeprefix("mqtt://").split(":")
    seen: dict[str, bytes] = {}

    async def feed() -> None:
        for i in range(200):
            os.write(master, _gga(i))
            if i % 10 == 5:
                os.write(master, b"$GPGGA,garbage*00\r\n\xff\xfe\r\n")
            await asyncio.sleep(0.02)

    async def watch() -> None:
        async with aiomqtt.Client(host, int(port), protocol=aiomqtt.ProtocolVersion.V5) as c:
            await c.subscribe("borderwatch/v1/node/boat-3/#")
            async for message in c.messages:
                assert isinstance(message.payload, bytes)
                seen[str(message.topic)] = message.payload
                if "borderwatch/v1/node/boat-3/pli" in seen and len(seen) >= 3:
                    return

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(node.run())
        tasks.create_task(feed())
        await asyncio.wait_for(watch(), 20)
        reply = await _command(host, int(port), "boat-3", "state", {})
        node.stop()
    os.close(master)
    os.close(slave)
    state = parse_message(seen["borderwatch/v1/node/boat-3/state"])
    assert isinstance(state, NodeState)
    pli = json.loads(seen["borderwatch/v1/node/boat-3/pli"])
    assert pli["measurement"]["position"]["lat_deg"] == pytest.approx(44.187, abs=1e-3)
    assert reply["ok"] is True
    gps = next(s for s in reply["result"]["sensors"] if s["sensor_id"] == "gps")
    # One garbage burst (a bad checksum and a non-ASCII line) per ten good fixes: the bad
    # lines are counted, the good ones around them kept.
    assert gps["errors"] >= 2
    assert gps["messages"] >= 4 * gps["errors"]


async def _command(
    host: str, port: int, node_id: str, verb: str, args: dict[str, Any]
) -> dict[str, Any]:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    reply_topic = f"borderwatch/v1/reply/test-{os.getpid()}"
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = reply_topic
    props.CorrelationData = b"42"
    async with aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V5) as c:
        await c.subscribe(reply_topic)
        await c.publish(
            f"borderwatch/v1/node/{node_id}/cmd/{verb}",
            json.dumps(args),
            qos=1,
            properties=props,
        )
        async with asyncio.timeout(10):
            async for message in c.messages:
                assert isinstance(message.payload, bytes)
                reply: dict[str, Any] = json.loads(message.payload)
                return reply
    raise AssertionError("no reply")


def test_validate_config_points_at_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text(
        "node_id: boat-1\n"
        "frame: {lat_deg: 44.1, lon_deg: 19.3}\n"
        "devices:\n"
        "  - type: gps\n"
        "    sensor_id: gps\n"
        "    url: /dev/ttyUSB0\n"
        "    baudrat: 4800\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_node_config(path)
    assert err.value.line == 7
    result = subprocess.run(
        [sys.executable, "-m", "borderwatch.cli", "validate-config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert f"{path}:7:" in result.stderr
    path.write_text(path.read_text().replace("baudrat", "baudrate"), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "borderwatch.cli", "validate-config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "gps (gps)" in result.stdout


def test_node_command_stops_cleanly_on_sigterm_and_records_offline(tmp_path: Path) -> None:
    master, slave = os.openpty()
    link = tmp_path / "gps"
    link.symlink_to(os.ttyname(slave))
    config = _write_pty_node_config(tmp_path, link)
    record = tmp_path / "record.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "borderwatch.cli",
            "node",
            "--config",
            str(config),
            "--record",
            str(record),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
            record.exists() and "node_state" in record.read_text()
        ):
            os.write(master, _gga(0))
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        os.close(master)
        os.close(slave)
    states = [parse_message(line) for line in record.read_text().splitlines()]
    assert isinstance(states[-1], NodeState)
    assert states[-1].status.value == "offline"


def test_example_node_configuration_validates() -> None:
    path = Path(__file__).parent.parent / "config" / "nodes" / "patrol-boat.yaml"
    config = load_node_config(path)
    assert [d.type for d in config.devices] == ["gps", "ais", "radar", "gmp343"]
    assert config.mqtt is not None
    assert config.mqtt.outbox_path.is_absolute()


async def test_a_reading_the_stage_cannot_handle_is_counted_and_the_node_goes_on() -> None:
    from borderwatch.drivers.base import Reading

    config = NodeConfig.model_validate(
        {
            "node_id": "boat-9",
            "frame": {"lat_deg": 44.0, "lon_deg": 19.0},
            "devices": [{"type": "gmp343", "sensor_id": "probe", "url": "loop://"}],
            "health": {"interval_s": 0.05},
        }
    )
    collector = Collector()
    node = Node(config, [collector])
    await node.command("co2_start", {"sensor_id": "probe", "vehicle_id": "MSCU 1"})
    now = time.time()
    # A driver hands over what no parser produces (a CO2 reading that is not a number) ...
    node._on_reading(Reading("probe", now, Accepted("gmp343", {"kind": "co2", "ppm": "n/a"})))
    # ... and then a good reading.
    node._on_reading(
        Reading("probe", now + 0.01, Accepted("gmp343", {"kind": "co2", "ppm": 421.0}))
    )
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(node.run())
        await asyncio.sleep(0.3)
        node.stop()
    assert node.errors["ingest"] == 1
    assert node.stage.counters["probe"].messages == 2
    assert collector.of(NodeState)[-1].error_counts["ingest"] == 1


def test_a_networked_scan_is_one_batch_and_stray_sensors_are_counted_each() -> None:
    from borderwatch.drivers.base import Reading
    from borderwatch.edge.ingest import SensorStage
    from borderwatch.schema.reference import examples
    from borderwatch.sensors.jsondet import JsonDetectionParser

    config = NodeConfig.model_validate(
        {
            "node_id": "boat-2",
            "frame": {"lat_deg": 42.2, "lon_deg": 19.2},
            "devices": [
                {
                    "type": "mqtt_detections",
                    "sensor_id": "thermal-1",
                    "url": "mqtt://127.0.0.1:1883/t",
                }
            ],
        }
    )
    mine = examples()["detection-bearing-only"]
    stray = examples()["detection-position"]  # claims sensor ais-1
    epoch = datetime(2025, 6, 14, 1, 12, tzinfo=UTC)
    stage = SensorStage(config, LocalFrame(42.2, 19.2), epoch)
    payload = json.dumps([m.model_dump(mode="json") for m in (mine, stray, mine)]).encode()
    (item,) = JsonDetectionParser().feed(payload)
    assert isinstance(item, Accepted)
    stage.handle(Reading("thermal-1", epoch.timestamp() + 31.0, item))
    batch = stage.take_detections()
    counters = stage.counters["thermal-1"]
    assert (counters.messages, counters.detections, len(batch)) == (1, 2, 2)
    assert counters.skipped == {"unknown_sensor": 1}
    np.testing.assert_allclose(batch.t, [30.8, 30.8])
