"""The node's MQTT output against a real Mosquitto: topics, outbox delivery through broker
outages, broker crashes and node crashes, retained tracks, birth and last will, commands, and
the payload examples of docs/mqtt.md."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from borderwatch.config.mqtt import MqttSettings
from borderwatch.edge.mqtt import (
    ANY,
    CommandReply,
    MqttOutput,
    doc_examples,
    generated_names,
    render_docs,
    topic_level,
    topics,
)
from borderwatch.edge.outbox import Outbox
from borderwatch.schema import (
    Alert,
    BorderKindName,
    NodeState,
    NodeStatus,
    SensorState,
    Track,
    new_msg_id,
    parse_message,
)
from borderwatch.schema.reference import examples
from tests.conftest import MOSQUITTO, MosquittoBroker

NODE = "boat-1"
DOC = Path(__file__).parent.parent / "docs" / "mqtt.md"
#: Longest wait for something the broker or the output must do, s (a bound, not a measure).
WAIT_S = 30.0


# ------------------------------------------------------------------------------- messages


def alert(n: int) -> Alert:
    base = examples()["alert-new"]
    data = base.model_dump()
    data.update(msg_id=new_msg_id(), alert_id=f"{NODE}:{n}", track_id=f"{NODE}:{1000 + n}")
    data["provenance"]["node_id"] = NODE
    return Alert.model_validate(data)


def track(number: int, status: str = "confirmed", hits: int = 5) -> Track:
    data = examples()["track"].model_dump()
    data.update(msg_id=new_msg_id(), track_id=f"{NODE}:{number}", status=status, hits=hits)
    data["provenance"]["node_id"] = NODE
    return Track.model_validate(data)


def settings_for(url: str, tmp_path: Path, **extra: Any) -> MqttSettings:
    return MqttSettings(
        url=url,
        outbox_path=tmp_path / "outbox.sqlite3",
        keepalive_s=5,
        backoff={"initial_s": 0.02, "max_s": 0.2},
        publish_timeout_s=3.0,
        **extra,
    )


# --------------------------------------------------------------------------------- brokers


class PersistentBroker(MosquittoBroker):
    """A broker that keeps sessions on disk (saved when it is stopped, not when killed)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(MOSQUITTO, workdir)
        store = workdir / "store"
        store.mkdir()
        # Sessions and subscriptions saved at a clean stop are restored at the next start,
        # so a subscriber's persistent session queues messages across a broker restart.
        self._config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {store}/\n"
            "autosave_interval 3600\n"
            "max_queued_messages 100000\n"
            "log_dest stderr\n" + ("user root\n" if os.geteuid() == 0 else "")
            # Started as root (in a container), mosquitto would drop to its own user, which
            # cannot write into the test's private temporary folder.
        )

    def kill(self) -> None:
        """SIGKILL: no chance to save anything."""
        process, self._process = self._process, None
        assert process is not None
        process.kill()
        process.wait()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PersistentBroker]:
    if not Path(MOSQUITTO).exists():
        pytest.skip(f"no mosquitto at {MOSQUITTO}")
    b = PersistentBroker(tmp_path)
    try:
        yield b
    finally:
        b.stop()


def session_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    return props


class Collector:
    """A subscriber that keeps every message it receives and reconnects when the broker goes.

    With ``persistent``, its session outlives a disconnection (and, with a
    :class:`PersistentBroker` stopped cleanly, a broker restart), so QoS 1 messages published
    while it is away are queued for it.
    """

    def __init__(self, port: int, filters: list[str], *, persistent: bool = False) -> None:
        self.port = port
        self.filters = filters
        self.persistent = persistent
        self.client_id = f"collector-{new_msg_id()}"
        self.messages: list[aiomqtt.Message] = []
        self.subscribed = asyncio.Event()

    def client(self) -> aiomqtt.Client:
        return aiomqtt.Client(
            "127.0.0.1",
            self.port,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=not self.persistent,
            properties=session_properties() if self.persistent else None,
            timeout=5,
        )

    async def run(self) -> None:
        while True:
            try:
                async with self.client() as client:
                    for f in self.filters:
                        await client.subscribe(f, qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        self.messages.append(message)
            except aiomqtt.MqttError:
                self.subscribed.clear()
                await asyncio.sleep(0.05)

    async def register(self) -> None:
        """Create the persistent session and its subscriptions, then leave."""
        async with self.client() as client:
            for f in self.filters:
                await client.subscribe(f, qos=1)

    def payloads(self, topic: str | None = None) -> list[bytes]:
        return [bytes(m.payload) for m in self.messages if topic is None or str(m.topic) == topic]

    def first_seen_ids(self) -> list[str]:
        """msg_ids in order of first arrival: what a de-duplicating receiver keeps."""
        seen: dict[str, None] = {}
        for payload in self.payloads():
            if payload:
                seen.setdefault(json.loads(payload)["msg_id"], None)
        return list(seen)


async def session_before_outage(broker: PersistentBroker, filters: list[str]) -> Collector:
    """A receiver whose persistent session the broker saved at a clean stop: the broker, when
    started again, queues for it whatever arrives before it reconnects. Leaves the broker
    stopped."""
    receiver = Collector(broker.port, filters, persistent=True)
    broker.start()
    await receiver.register()
    broker.stop()
    return receiver


@contextlib.asynccontextmanager
async def running(*coroutines: Awaitable[None]) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run coroutines as tasks for the block's duration; cancel them after it."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        yield tasks
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t


async def until(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    """Wait until ``condition()`` holds; fail saying ``what`` did not happen."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)
    assert condition(), what


# ---------------------------------------------------------------------------------- topics


def test_topic_tree_builds_the_contract_topics() -> None:
    assert topics.node_state(NODE) == "borderwatch/v1/node/boat-1/state"
    assert topics.pli(NODE) == "borderwatch/v1/node/boat-1/pli"
    assert topics.sensor_detections(NODE, "cam-2") == "borderwatch/v1/node/boat-1/sensor/cam-2/det"
    assert topics.sensor_state(NODE, "cam-2") == "borderwatch/v1/node/boat-1/sensor/cam-2/state"
    assert topics.command(NODE, "status") == "borderwatch/v1/node/boat-1/cmd/status"
    assert topics.track("green", "boat-1:17") == "borderwatch/v1/track/green/boat-1:17"
    assert topics.alert() == "borderwatch/v1/alert"
    assert topics.reply("centre-1") == "borderwatch/v1/reply/centre-1"
    assert topics.command(NODE, ANY) == "borderwatch/v1/node/boat-1/cmd/+"
    assert topics.sensor_detections(ANY, ANY) == "borderwatch/v1/node/+/sensor/+/det"


@pytest.mark.parametrize("bad", ["", "a+b", "a#", "#", "x\0y"])
def test_ids_that_cannot_be_topic_levels_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="topic level"):
        topics.sensor_state(NODE, bad)


@pytest.mark.parametrize(
    "topic",
    [
        "borderwatch/v1/track/red/boat-1:1",
        "borderwatch/v1/node/boat-1/cmd/Bad",
        "borderwatch/v1/node/boat-1/sensor//det",
        "borderwatch/v2/alert",
        "borderwatch/v1/alert/extra",
    ],
)
def test_topics_outside_the_tree_do_not_parse(topic: str) -> None:
    assert topics.parse(topic) is None


@given(
    node_id=st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,20}\Z"),
    sensor_id=st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:/%-]{0,30}\Z"),
    number=st.integers(0, 10**12),
    kind=st.sampled_from(list(BorderKindName)),
)
def test_topics_parse_back_to_their_ids(
    node_id: str, sensor_id: str, number: int, kind: BorderKindName
) -> None:
    for build, expected in [
        (topics.sensor_detections, "sensor_detection"),
        (topics.sensor_state, "sensor_state"),
    ]:
        match = topics.parse(build(node_id, sensor_id))
        assert match is not None
        assert (match.kind, match.node_id, match.sensor_id) == (expected, node_id, sensor_id)
    assert len(topics.sensor_state(node_id, sensor_id).split("/")) == 7
    match = topics.parse(topics.track(kind, f"{node_id}:{number}"))
    assert match is not None
    assert (match.border_kind, match.track_id) == (kind, f"{node_id}:{number}")
    assert "/" not in topic_level(sensor_id)


# ------------------------------------------------------------------------------------ docs


def test_mqtt_doc_examples_are_generated_from_the_models() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert render_docs(text) == text, (
        "docs/mqtt.md is out of date: run `.venv/bin/python -m borderwatch.edge.mqtt docs/mqtt.md`"
    )
    assert sorted(generated_names(text)) == sorted(doc_examples())


def test_mqtt_doc_examples_are_valid_payloads_on_their_topics() -> None:
    kinds = {
        "node_state": NodeState,
        "pli": None,
        "sensor_state": SensorState,
        "track": Track,
        "alert": Alert,
    }
    for name, pubs in doc_examples().items():
        for pub in pubs:
            match = topics.parse(pub.topic)
            assert match is not None, pub.topic
            if match.kind == "reply":
                CommandReply.model_validate_json(pub.payload)
                continue
            if not pub.payload:
                assert (match.kind, pub.retain) == ("track", True)
            elif match.kind == "sensor_state":
                SensorState.model_validate_json(pub.payload)
            elif match.kind == "command":
                assert isinstance(json.loads(pub.payload), dict)
            else:
                message = parse_message(pub.payload)
                model = kinds.get(match.kind)
                assert model is None or isinstance(message, model), (name, match.kind)
                assert message.provenance.node_id == (match.node_id or message.provenance.node_id)


# ----------------------------------------------------------------------- delivery and outages


async def test_alerts_queued_while_the_broker_is_down_arrive_in_order(
    broker: PersistentBroker, tmp_path: Path
) -> None:
    receiver = await session_before_outage(broker, [topics.alert(), topics.all_tracks()])

    output = MqttOutput(settings_for(broker.url, tmp_path), NODE)
    alerts = [alert(n) for n in range(30)]
    async with running(output.run()):
        for n, a in enumerate(alerts):
            await output.publish(a)
            await output.publish(track(7, hits=n + 1))  # summaries of one track, coalesced
        oldest = min([a.time for a in alerts] + [track(7).time])
        assert output.backlog() == (31, oldest)
        await until(lambda: output.stats.connect_failures >= 2, "reconnect attempts")
        broker.start()
        await until(lambda: output.backlog()[0] == 0, "outbox drained")
        async with running(receiver.run()):
            await until(lambda: len(receiver.first_seen_ids()) >= 31, "all delivered")
    output.close()

    ids = receiver.first_seen_ids()
    assert [i for i in ids if i in {a.msg_id for a in alerts}] == [a.msg_id for a in alerts]
    tracks = receiver.payloads(topics.track("blue", f"{NODE}:7"))
    assert [Track.model_validate_json(p).hits for p in tracks] == [30]  # only the latest


async def test_no_alert_is_lost_when_the_broker_is_killed_mid_run(
    broker: PersistentBroker, tmp_path: Path
) -> None:
    receiver = await session_before_outage(broker, [topics.alert()])
    broker.start()

    output = MqttOutput(settings_for(broker.url, tmp_path), NODE)
    alerts = [alert(n) for n in range(150)]
    async with running(output.run(), receiver.run()):
        for n, a in enumerate(alerts):
            await output.publish(a)
            await asyncio.sleep(0.005)
            if n == 50:
                await until(lambda: len(receiver.messages) > 10, "live delivery")
                broker.kill()
            if n == 100:
                broker.start()
        await until(lambda: len(receiver.first_seen_ids()) >= len(alerts), "all delivered")
        assert output.stats.disconnects >= 1
    output.close()
    assert receiver.first_seen_ids() == [a.msg_id for a in alerts]


NODE_SCRIPT = """
import asyncio, sys
from borderwatch.config.mqtt import MqttSettings
from borderwatch.edge.mqtt import MqttOutput
from borderwatch.schema import parse_message

async def main(url, outbox, messages):
    settings = MqttSettings(url=url, keepalive_s=5, backoff={"initial_s": 0.02, "max_s": 0.2})
    output = MqttOutput(settings, "boat-1", outbox)
    with open(messages) as f:
        for line in f:
            await output.publish(parse_message(line))
    print("queued", flush=True)
    await output.run()

asyncio.run(main(*sys.argv[1:]))
"""


def start_node(url: str, tmp_path: Path, messages: list[Alert]) -> subprocess.Popen[str]:
    """A node process publishing ``messages`` through MqttOutput, then running it."""
    lines = tmp_path / f"messages-{new_msg_id()}.jsonl"
    lines.write_text("".join(m.model_dump_json() + "\n" for m in messages))
    proc = subprocess.Popen(
        [sys.executable, "-c", NODE_SCRIPT, url, str(tmp_path / "node.sqlite3"), str(lines)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "queued"
    return proc


def sigkill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


async def test_alerts_in_the_outbox_of_a_killed_node_are_delivered_after_restart(
    broker: PersistentBroker, tmp_path: Path
) -> None:
    receiver = await session_before_outage(broker, [topics.alert()])

    alerts = [alert(n) for n in range(25)]
    sigkill(start_node(broker.url, tmp_path, alerts))  # broker down: all still in the outbox
    with Outbox(tmp_path / "node.sqlite3") as box:
        assert len(box) == len(alerts)
    broker.start()
    restarted = start_node(broker.url, tmp_path, [])
    try:
        async with running(receiver.run()):
            await until(lambda: len(receiver.first_seen_ids()) >= len(alerts), "all delivered")
    finally:
        sigkill(restarted)
    assert receiver.first_seen_ids() == [a.msg_id for a in alerts]


async def test_last_will_says_offline_when_the_node_dies(
    broker: PersistentBroker, tmp_path: Path
) -> None:
    broker.start()
    watcher = Collector(broker.port, [topics.node_state(NODE)])
    async with running(watcher.run()):
        await watcher.subscribed.wait()
        node = start_node(broker.url, tmp_path, [])
        try:
            await until(lambda: len(watcher.messages) >= 1, "birth")
        finally:
            sigkill(node)
        await until(lambda: len(watcher.messages) >= 2, "last will")
    states = [parse_message(p) for p in watcher.payloads()]
    assert all(isinstance(s, NodeState) for s in states)
    assert [s.status for s in states if isinstance(s, NodeState)] == [
        NodeStatus.ONLINE,
        NodeStatus.OFFLINE,
    ]
    assert states[0].provenance.node_id == NODE


async def test_a_clean_stop_publishes_offline_and_birth_is_retained(
    broker: PersistentBroker, tmp_path: Path
) -> None:
    broker.start()
    output = MqttOutput(settings_for(broker.url, tmp_path), NODE)
    async with running(output.run()):
        await until(lambda: output.stats.connects == 1 and output.connected, "connected")
        late = Collector(broker.port, [topics.node_state(NODE)])
        async with running(late.run()):  # subscribes after the birth: gets it retained
            await until(lambda: len(late.messages) == 1, "retained birth")
        assert late.messages[0].retain
        birth = NodeState.model_validate_json(late.payloads()[0])
        assert birth.status is NodeStatus.ONLINE
    output.close()
    after = Collector(broker.port, [topics.node_state(NODE)])
    async with running(after.run()):
        await until(lambda: len(after.messages) == 1, "retained state after stop")
    assert NodeState.model_validate_json(after.payloads()[0]).status is NodeStatus.OFFLINE


async def retained_on(port: int, topic: str) -> list[bytes]:
    """The retained payload on ``topic`` (empty list when none)."""
    marker = f"test/marker/{new_msg_id()}"
    async with aiomqtt.Client(
        "127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5, timeout=5
    ) as client:
        await client.subscribe(topic, qos=1)
        await client.subscribe(marker, qos=1)
        # The broker sends retained messages right after the SUBACK, before it handles the
        # next packet: once our marker comes back, every retained message has arrived.
        await client.publish(marker, b"m", qos=1)
        got: list[bytes] = []
        async for message in client.messages:
            if str(message.topic) == marker:
                return got
            got.append(bytes(message.payload))
    raise AssertionError("unreachable")


async def test_tracks_are_retained_and_cleared_when_they_end(
    broker: PersistentBroker, tmp_path: Path
) -> None:
    broker.start()
    output = MqttOutput(
        settings_for(broker.url, tmp_path),
        NODE,
        border_kind_of=lambda t: BorderKindName.GREEN,
    )
    topic = "borderwatch/v1/track/green/boat-1:17"
    live = Collector(broker.port, [topics.all_tracks()])
    async with running(output.run(), live.run()):
        await live.subscribed.wait()
        await output.publish(track(17, hits=3))
        await until(lambda: output.backlog()[0] == 0 and len(live.messages) == 1, "track")
        (retained,) = await retained_on(broker.port, topic)
        assert Track.model_validate_json(retained).hits == 3

        await output.publish(track(17, status="ended", hits=4))
        await until(lambda: output.backlog()[0] == 0 and len(live.messages) == 3, "track end")
        assert await retained_on(broker.port, topic) == []
    output.close()
    final, cleared = live.messages[1:]
    assert str(final.topic) == str(cleared.topic) == topic
    assert Track.model_validate_json(bytes(final.payload)).status == "ended"
    assert cleared.payload == b""


# -------------------------------------------------------------------------------- commands


async def request(port: int, verb: str, payload: bytes, reply_to: str) -> list[CommandReply]:
    """Send a command as the centre would and wait for the reply with our correlation data."""
    correlation = new_msg_id().encode()
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = reply_to
    props.CorrelationData = correlation
    async with aiomqtt.Client(
        "127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5, timeout=5
    ) as client:
        await client.subscribe(reply_to, qos=1)
        await client.publish(topics.command(NODE, verb), payload, qos=1, properties=props)
        async with asyncio.timeout(WAIT_S):
            async for message in client.messages:
                if getattr(message.properties, "CorrelationData", None) == correlation:
                    return [CommandReply.model_validate_json(message.payload)]
    return []


async def test_commands_are_answered_on_the_response_topic(
    broker: PersistentBroker, tmp_path: Path
) -> None:
    broker.start()
    output = MqttOutput(settings_for(broker.url, tmp_path, command_timeout_s=0.5), NODE)
    seen: list[dict[str, Any]] = []

    async def status(req: dict[str, Any]) -> Any:
        seen.append(req)
        count, _ = output.backlog()
        return {"outbox_backlog": count, "echo": req.get("echo")}

    async def broken(req: dict[str, Any]) -> Any:
        raise RuntimeError("camera offline")

    async def slow(req: dict[str, Any]) -> Any:
        await asyncio.sleep(60)

    output.on_command("status", status)
    output.on_command("broken", broken)
    output.on_command("slow", slow)
    reply_to = topics.reply("c1")
    async with running(output.run()):
        await until(lambda: output.connected, "connected")
        await asyncio.sleep(0.2)  # the command subscription follows the birth
        (ok,) = await request(broker.port, "status", b'{"echo": 5}', reply_to)
        (failed,) = await request(broker.port, "broken", b"", reply_to)
        (timed_out,) = await request(broker.port, "slow", b"{}", reply_to)
        (unknown,) = await request(broker.port, "reboot", b"{}", reply_to)
        (not_json,) = await request(broker.port, "status", b"{oops", reply_to)
        (not_object,) = await request(broker.port, "status", b"[1]", reply_to)
    output.close()
    assert (ok.ok, ok.result, ok.node_id, ok.verb) == (
        True,
        {"outbox_backlog": 0, "echo": 5},
        NODE,
        "status",
    )
    assert seen == [{"echo": 5}]
    assert (failed.ok, failed.error) == (False, "RuntimeError: camera offline")
    assert not timed_out.ok
    assert "timed out" in (timed_out.error or "")
    assert not unknown.ok
    assert "unknown command 'reboot'" in (unknown.error or "")
    assert not not_json.ok
    assert "not JSON" in (not_json.error or "")
    assert (not_object.ok, not_object.error) == (False, "request must be a JSON object")
    assert output.stats.command_errors == 5


async def test_publish_routes_health_and_own_position_and_skips_other_detections(
    broker: PersistentBroker, tmp_path: Path
) -> None:
    broker.start()
    ex = doc_examples()
    output = MqttOutput(settings_for(broker.url, tmp_path), "boat-2")
    watcher = Collector(
        broker.port, [f"borderwatch/v1/node/boat-2/{ANY}", "borderwatch/v1/node/boat-2/sensor/#"]
    )
    async with running(output.run(), watcher.run()):
        await watcher.subscribed.wait()
        for name in ("node-state", "pli", "sensor-detection"):
            await output.publish(parse_message(ex[name][0].payload))
        wanted = {p.topic for name in ("node-state", "sensor-state", "pli") for p in ex[name]}
        await until(lambda: wanted <= {str(m.topic) for m in watcher.messages}, "health, pli")
    output.close()
    assert output.stats.skipped == 1  # the networked sensor's detection
    assert not any(str(m.topic).endswith("/det") for m in watcher.messages)


# ----------------------------------------------------------------------- example configs

BOAT_CONF = Path(__file__).parent.parent / "config" / "mosquitto" / "boat.conf"


class BoatBroker(MosquittoBroker):
    """config/mosquitto/boat.conf on loopback: its bridge pointed at a test centre broker,
    without TLS and the LAN listener (the rest of the file is used as shipped)."""

    def __init__(self, workdir: Path, centre_port: int) -> None:
        super().__init__(MOSQUITTO, workdir)
        store = workdir / "store"
        store.mkdir()
        overrides: dict[str, str | None] = {
            "listener": f"listener {self.port} 127.0.0.1",
            "address": f"address 127.0.0.1:{centre_port}",
            "persistence_location": f"persistence_location {store}/",
            "log_dest": "log_dest stderr",
            "bridge_cafile": None,
            "bridge_certfile": None,
            "bridge_keyfile": None,
        }
        lines: list[str] = ["user root"] if os.geteuid() == 0 else []
        lan = False  # inside the LAN listener's block, which is left out
        for raw in BOAT_CONF.read_text().splitlines():
            words = raw.split()
            if not words or words[0].startswith("#"):
                continue
            if words[0] in ("listener", "connection"):
                lan = words[0] == "listener" and words[2] != "127.0.0.1"
            line = overrides.get(words[0], raw)
            if not lan and line is not None:
                lines.append(line)
        self._config.write_text("\n".join(lines) + "\n")


async def test_boat_config_bridges_node_topics_and_commands_to_the_centre(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    centre = mosquitto_broker
    boat = BoatBroker(tmp_path, centre.port)
    boat.start()
    try:
        at_centre = Collector(centre.port, [topics.everything()])
        async with running(at_centre.run()):
            await at_centre.subscribed.wait()
            output = MqttOutput(settings_for(boat.url, tmp_path), NODE)
            output.on_command("ping", lambda req: asyncio.sleep(0, result={"pong": True}))
            a = alert(1)
            async with running(output.run()):
                await output.publish(a)
                await output.publish(track(3))
                wanted = {topics.alert(), topics.track("blue", f"{NODE}:3")}
                await until(lambda: wanted <= {str(m.topic) for m in at_centre.messages}, "out")
                await until(lambda: output.connected, "connected")
                (reply,) = await request(centre.port, "ping", b"{}", topics.reply("c1"))
            output.close()
        assert reply.ok
        assert reply.result == {"pong": True}
        alerts = at_centre.payloads(topics.alert())
        assert [Alert.model_validate_json(p).msg_id for p in alerts] == [a.msg_id]
        (kept,) = await retained_on(centre.port, topics.track("blue", f"{NODE}:3"))
        assert Track.model_validate_json(kept).track_id == f"{NODE}:3"
    finally:
        boat.stop()


async def test_co2_results_go_out_on_the_alert_topic_through_the_outbox(tmp_path: Path) -> None:
    from borderwatch.schema.reference import examples

    concealment = examples()["concealment"]
    output = MqttOutput(settings_for("mqtt://127.0.0.1:1", tmp_path), NODE)
    try:
        await output.publish(concealment)
        (item,) = output.outbox.peek(10)
        assert item.topic == topics.alert()
        assert not item.retain
        assert item.msg_id == concealment.msg_id
        assert parse_message(item.payload) == concealment
    finally:
        output.close()


async def test_a_step_of_track_summaries_goes_into_the_outbox_together(tmp_path: Path) -> None:
    output = MqttOutput(settings_for("mqtt://127.0.0.1:1", tmp_path), NODE)
    try:
        await output.publish(alert(1))
        await output.publish_batch([track(1, hits=1), track(2, hits=1)])
        await output.publish_batch([])
        await output.publish_batch([track(2, hits=2), track(3, hits=2)])
        items = output.outbox.peek(10)
        assert items[0].topic == topics.alert()  # the alert stays first
        summaries = [Track.model_validate_json(i.payload) for i in items[1:]]
        # Track 2's first summary was replaced by its second, as one put each would do.
        assert [(t.track_id, t.hits) for t in summaries] == [
            (f"{NODE}:1", 1),
            (f"{NODE}:2", 2),
            (f"{NODE}:3", 2),
        ]
        assert [i.topic for i in items[1:]] == [topics.track("blue", t.track_id) for t in summaries]
    finally:
        output.close()
