"""The control centre against a real Mosquitto: two nodes' tracks fused into one picture, one
centre alert per crossing, operator commands with replies, bad input counted, broker restarts;
its configuration; and the payload classifier under arbitrary input."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from borderwatch.config.centre import CentreConfig, load_centre_config, resolve_store_url
from borderwatch.config.mqtt import MqttSettings
from borderwatch.config.node import FrameSettings
from borderwatch.edge.centre import (
    Centre,
    CentreAlertEvent,
    CentreTopics,
    Inbound,
    Picture,
    Rejection,
    decode,
    load_with_broker,
)
from borderwatch.edge.mqtt import CommandReply, topics
from borderwatch.edge.store import AlertStore
from borderwatch.errors import ConfigError
from borderwatch.fusion.frames import LocalFrame
from borderwatch.schema import (
    Alert,
    AlertEndReason,
    AlertPriority,
    AlertState,
    ClassHint,
    EnuOrigin,
    GeoPoint,
    Provenance,
    TargetClassName,
    Track,
    TrackStatus,
    Velocity,
    new_msg_id,
)
from borderwatch.schema.reference import examples
from tests.conftest import MosquittoBroker, _mosquitto_binary


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker of this module's own: the centre subscribes to every track topic, and retained
    tracks that other tests leave on the session's shared broker would join its picture."""
    broker = MosquittoBroker(_mosquitto_binary(), tmp_path_factory.mktemp("centre-broker"))
    broker.start()
    try:
        yield broker.url
    finally:
        broker.stop()


#: Longest wait for something the broker or the centre must do, s (a bound, not a measure).
WAIT_S = 20.0
ORIGIN = FrameSettings(lat_deg=42.05, lon_deg=19.10)
CENTRE_FRAME = ORIGIN.local_frame()
#: The second node keeps its plane 1.2 km north-east of the centre's: its x_m/y_m differ.
OTHER_FRAME = LocalFrame(42.06, 19.11)


class Clock:
    """A wall clock the test can hold still (Unix seconds)."""

    def __init__(self) -> None:
        self.frozen: float | None = None

    def __call__(self) -> float:
        return self.frozen if self.frozen is not None else datetime.now(UTC).timestamp()


def ids() -> tuple[str, str, str]:
    """A centre id and two node ids of this test only: the session broker keeps sessions and
    retained messages across tests."""
    tag = secrets.token_hex(3)
    return f"centre-{tag}", f"boat1-{tag}", f"boat2-{tag}"


def config_for(url: str, tmp_path: Path, centre_id: str, **intake: Any) -> CentreConfig:
    return CentreConfig(
        centre_id=centre_id,
        frame=ORIGIN,
        mqtt=MqttSettings(
            url=url, keepalive_s=5, backoff={"initial_s": 0.05, "max_s": 0.3}, publish_timeout_s=3
        ),
        store={"url": f"sqlite:///{tmp_path / 'centre.db'}", "track_batch_s": 0.1},
        # Tracks stay live for the whole test, however slowly a loaded machine runs it.
        fusion={"picture_interval_s": 0.1, "stale_s": 120.0},
        intake={"max_payload_bytes": 4096, "log_interval_s": 60.0, **intake},
    )


# ------------------------------------------------------------------------------- messages


def provenance(node_id: str) -> Provenance:
    return Provenance(node_id=node_id, software_version="test", simulated=True, exercise=False)


def point(frame: LocalFrame, xy: np.ndarray) -> tuple[GeoPoint, EnuOrigin]:
    """A position given as centre-plane metres, expressed in ``frame`` (WGS-84 + its x/y)."""
    lat, lon = CENTRE_FRAME.to_wgs84(xy)[0]
    local = frame.to_enu(np.array([lat]), np.array([lon]))[0]
    geo = GeoPoint(lat_deg=lat, lon_deg=lon, x_m=float(local[0]), y_m=float(local[1]))
    return geo, EnuOrigin.from_frame(frame)


def track(
    node_id: str, number: int, xy: np.ndarray, v: np.ndarray, at: datetime, frame: LocalFrame
) -> Track:
    geo, origin = point(frame, xy)
    P = np.diag([9.0, 9.0, 0.04, 0.04])
    return Track(
        msg_id=new_msg_id(),
        time=at,
        provenance=provenance(node_id),
        enu_origin=origin,
        track_id=f"{node_id}:{number}",
        status=TrackStatus.CONFIRMED,
        position=geo,
        velocity=Velocity.from_enu(float(v[0]), float(v[1])),
        cov_m2=((9.0, 0.0), (0.0, 9.0)),
        state_cov=tuple(tuple(float(c) for c in row) for row in P),
        class_hint=ClassHint(label=TargetClassName.BOAT, confidence=0.8),
        hits=10,
        first_time=at - timedelta(seconds=30),
        last_update_time=at,
    )


def alert(
    node_id: str,
    number: int,
    xy: tuple[float, float],
    at: datetime,
    frame: LocalFrame,
    *,
    previous: Alert | None = None,
    end: bool = False,
) -> Alert:
    geo, origin = point(frame, np.array([xy]))
    state = AlertState(
        time=at,
        priority=AlertPriority.HIGH,
        p_cross=0.8,
        confidence=0.8,
        position=geo,
        cov_m2=((12.0, 0.0), (0.0, 12.0)),
        velocity=Velocity.from_enu(0.5, 1.0),
        class_hint=ClassHint(label=TargetClassName.BOAT, confidence=0.7),
    )
    event = "new" if previous is None else ("end" if end else "update")
    return Alert.model_validate(
        {
            "msg_id": new_msg_id(),
            "time": at,
            "provenance": provenance(node_id),
            "enu_origin": origin,
            "alert_id": f"{node_id}:{number}",
            "kind": "crossing",
            "event": event,
            "track_id": f"{node_id}:{100 + number}",
            "border_kind": "blue",
            "border_segment": 4,
            "direction": "left_to_right",
            "end_reason": AlertEndReason.CROSSED if end else None,
            "before": None if previous is None else previous.after,
            "after": state,
        }
    )


# ---------------------------------------------------------------------------- harness


async def until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():
            await asyncio.sleep(0.02)
    assert condition(), what


@contextlib.asynccontextmanager
async def running(centre: Centre) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(centre.run())
    try:
        await until(lambda: centre.connected or task.done(), "centre connected")
        assert not task.done(), task.exception()
        yield task
    finally:
        centre.stop()
        await asyncio.wait_for(task, WAIT_S)


@contextlib.asynccontextmanager
async def client(url: str, *subscriptions: str) -> AsyncIterator[aiomqtt.Client]:
    settings_ = MqttSettings(url=url)
    async with aiomqtt.Client(
        settings_.host,
        settings_.port,
        identifier=f"test-{secrets.token_hex(4)}",
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as c:
        for topic in subscriptions:
            await c.subscribe(topic, qos=1)
        yield c


def collect(c: aiomqtt.Client, into: list[tuple[str, bytes, Any]]) -> asyncio.Task[None]:
    async def run() -> None:
        async for m in c.messages:
            payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
            into.append((str(m.topic), payload, m.properties))

    return asyncio.create_task(run())


async def publish(c: aiomqtt.Client, topic: str, payload: bytes | str) -> None:
    await c.publish(topic, payload, qos=1)


async def cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# ------------------------------------------------------------------------------ fusion


async def test_two_nodes_five_targets_make_five_fused_tracks(
    mosquitto: str, tmp_path: Path
) -> None:
    centre_id, n1, n2 = ids()
    centre = Centre(config_for(mosquitto, tmp_path, centre_id))
    rng = np.random.default_rng(7)
    truth = np.array([[400.0 * k - 800.0, 150.0 * k] for k in range(5)])
    v = np.array([1.0, 0.5])
    pictures: list[tuple[str, bytes, Any]] = []
    async with (
        running(centre),
        client(mosquitto, CentreTopics(centre_id).picture()) as c,
    ):
        listener = collect(c, pictures)
        now = datetime.now(UTC)
        for k in range(5):
            for node, number, frame in ((n1, k, CENTRE_FRAME), (n2, 50 + k, OTHER_FRAME)):
                xy = truth[k] + rng.normal(0.0, 3.0, 2)
                t = track(node, number, xy, v + rng.normal(0.0, 0.2, 2), now, frame)
                await publish(c, topics.track("blue", t.track_id), t.model_dump_json())

        def fused() -> bool:
            p = centre.picture
            return (
                p is not None and len(p.tracks) == 5 and all(len(t.members) == 2 for t in p.tracks)
            )

        await until(fused, "5 fused tracks of 2 members each")
        picture = centre.picture
        assert picture is not None
        for fused_track in picture.tracks:
            numbers = {int(m.track_id.split(":")[1]) % 50 for m in fused_track.members}
            assert len(numbers) == 1, "members of one fused track are the same target"
            assert {m.node_id for m in fused_track.members} == {n1, n2}
            target = truth[numbers.pop()]
            elapsed = (picture.time - now).total_seconds()
            assert fused_track.position.x_m is not None
            assert fused_track.position.y_m is not None
            # Within a few sigma of the truth moved on to the picture time.
            expected = target + v * elapsed
            error = np.hypot(
                fused_track.position.x_m - expected[0], fused_track.position.y_m - expected[1]
            )
            assert error < 15.0 + 0.5 * elapsed
        await until(
            lambda: any(len(Picture.model_validate_json(p).tracks) == 5 for _, p, _ in pictures),
            "the picture published on the centre's topic",
        )
        await cancel(listener)
    # Stopped: the last batch of track history is written.
    with AlertStore.open(centre.config.store.url) as store:
        for k in range(5):
            assert len(store.track_history(f"{n1}:{k}")) == 1
            assert len(store.track_history(f"{n2}:{50 + k}")) == 1
    assert centre.stats.messages["track"] == 10
    assert centre.stats.tracks_stored == 10


async def test_ended_track_leaves_the_picture(mosquitto: str, tmp_path: Path) -> None:
    centre_id, n1, n2 = ids()
    centre = Centre(config_for(mosquitto, tmp_path, centre_id))
    async with running(centre), client(mosquitto) as c:
        now = datetime.now(UTC)
        for node, frame in ((n1, CENTRE_FRAME), (n2, OTHER_FRAME)):
            t = track(node, 1, np.array([0.0, 0.0]), np.zeros(2), now, frame)
            await publish(c, topics.track("green", t.track_id), t.model_dump_json())
        await until(
            lambda: (
                centre.picture is not None
                and [len(t.members) for t in centre.picture.tracks] == [2]
            ),
            "one fused track",
        )
        await publish(c, topics.track("green", f"{n2}:1"), b"")  # the node's end of the track
        await until(
            lambda: (
                centre.picture is not None
                and [len(t.members) for t in centre.picture.tracks] == [1]
            ),
            "the ended member left",
        )
    assert centre.stats.messages["track_cleared"] == 1


# ------------------------------------------------------------------------------ alerts


async def test_one_centre_alert_per_crossing(mosquitto: str, tmp_path: Path) -> None:
    centre_id, n1, n2 = ids()
    centre = Centre(config_for(mosquitto, tmp_path, centre_id))
    events: list[tuple[str, bytes, Any]] = []
    async with running(centre), client(mosquitto, CentreTopics(centre_id).alert()) as c:
        listener = collect(c, events)
        now = datetime.now(UTC)
        a1 = alert(n1, 3, (100.0, 200.0), now, CENTRE_FRAME)
        a2 = alert(n2, 9, (108.0, 195.0), now + timedelta(seconds=2), OTHER_FRAME)
        far = alert(n2, 10, (2100.0, 200.0), now + timedelta(seconds=2), OTHER_FRAME)
        for a in (a1, a1, a2, far):  # a1 delivered twice (QoS 1 re-delivery)
            await publish(c, topics.alert(), a.model_dump_json())
        await until(lambda: len(events) == 3, "three centre alert events")
        end1 = alert(
            n1, 3, (120.0, 240.0), now + timedelta(seconds=5), CENTRE_FRAME, previous=a1, end=True
        )
        end2 = alert(
            n2, 9, (125.0, 238.0), now + timedelta(seconds=6), OTHER_FRAME, previous=a2, end=True
        )
        for a in (end1, end2):
            await publish(c, topics.alert(), a.model_dump_json())
        await until(lambda: len(events) == 5, "the crossing's update and end")
        await cancel(listener)
    parsed = [CentreAlertEvent.model_validate_json(p) for _, p, _ in events]
    crossing = [e for e in parsed if e.alert.alert_id == parsed[0].alert.alert_id]
    assert [e.alert.event.value for e in crossing] == ["new", "update", "update", "end"]
    assert {(m.node_id, m.alert_id) for m in crossing[-1].members} == {
        (n1, a1.alert_id),
        (n2, a2.alert_id),
    }
    assert crossing[-1].alert.provenance.contributing_node_ids == tuple(sorted((n1, n2)))
    assert crossing[-1].alert.end_reason is AlertEndReason.CROSSED
    others = [e for e in parsed if e.alert.alert_id != parsed[0].alert.alert_id]
    assert [e.alert.event.value for e in others] == ["new"]
    assert [m.alert_id for m in others[0].members] == [far.alert_id]
    assert centre.stats.duplicates == 1
    with AlertStore.open(centre.config.store.url) as store:
        node_alerts = {
            a.alert_id: a for a in store.alerts() if a.latest.provenance.node_id != centre_id
        }
        centre_alerts = [a for a in store.alerts() if a.latest.provenance.node_id == centre_id]
        assert set(node_alerts) == {a1.alert_id, a2.alert_id, far.alert_id}
        assert node_alerts[a1.alert_id].event_count == 2  # new and end, the duplicate not
        assert len(centre_alerts) == 2
        assert sorted(a.event_count for a in centre_alerts) == [1, 4]


class _AlertTimedCentre(Centre):
    """Notes how many track summaries it had fused when each alert reached it."""

    tracks_at_alert: list[int]

    async def _alert(self, alert: Alert, received_at: datetime) -> None:
        self.tracks_at_alert = [*getattr(self, "tracks_at_alert", []), self.stats.messages["track"]]
        await super()._alert(alert, received_at)


async def test_an_alert_overtakes_a_flood_of_track_summaries(
    mosquitto: str, tmp_path: Path
) -> None:
    centre_id, n1, _ = ids()
    centre = _AlertTimedCentre(config_for(mosquitto, tmp_path, centre_id, track_batch=50))
    now = datetime.now(UTC)
    flood = [
        track(n1, k, np.array([10.0 * (k % 60), 10.0 * (k // 60)]), np.zeros(2), now, CENTRE_FRAME)
        for k in range(2000)
    ]
    payloads = [(topics.track("blue", t.track_id), t.model_dump_json()) for t in flood]
    async with client(mosquitto) as c:
        # Retained, so the broker hands all of them to the centre's track link at once when
        # it subscribes, far faster than it can fuse them.
        for topic, payload in payloads:
            await c.publish(topic, payload, qos=1, retain=True)
        try:
            async with running(centre):
                await publish(
                    c,
                    topics.alert(),
                    alert(n1, 1, (5.0, 5.0), now, CENTRE_FRAME).model_dump_json(),
                )
                await until(lambda: centre.stats.centre_alert_events == 1, "the alert")
                fused = await settled(lambda: centre.stats.messages["track"])
        finally:
            for topic, _ in payloads:  # other tests' centres read every track topic
                await c.publish(topic, b"", qos=1, retain=True)
    # Published after two thousand summaries reached the centre, the alert was handled before
    # the last of them: it has a connection and a queue of its own, and the summaries are
    # fused in batches between looks at the alert queue. (Track summaries travel at QoS 0: a
    # broker may drop some for a subscriber that lags, so the count is what arrived.)
    assert fused > len(flood) // 2
    assert centre.tracks_at_alert[0] < fused
    assert centre.fuser.stats["received"] == fused  # each fused once, none refused
    assert centre.fuser.stats["rejected"] == 0


async def settled(count: Callable[[], int], quiet_s: float = 1.0) -> int:
    """``count()`` once it has not changed for ``quiet_s`` (bounded by WAIT_S)."""
    async with asyncio.timeout(WAIT_S):
        last, since = count(), asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - since < quiet_s:
            await asyncio.sleep(0.05)
            if count() != last:
                last, since = count(), asyncio.get_running_loop().time()
    return last


# ---------------------------------------------------------------------------- commands


async def command(
    c: aiomqtt.Client, replies: list[tuple[str, bytes, Any]], topic: str, request: Any
) -> CommandReply:
    correlation = secrets.token_bytes(8)
    props = Properties(PacketTypes.PUBLISH)
    response_topic = topics.reply("console-1") + "/" + correlation.hex()
    props.ResponseTopic = response_topic
    props.CorrelationData = correlation
    payload = request if isinstance(request, bytes) else json.dumps(request).encode()
    await c.publish(topic, payload, qos=1, properties=props)

    def answered() -> bool:
        return any(getattr(p, "CorrelationData", None) == correlation for _, _, p in replies)

    await until(answered, f"reply to {topic}")
    reply = next(r for r in replies if getattr(r[2], "CorrelationData", None) == correlation)
    assert reply[0] == response_topic
    return CommandReply.model_validate_json(reply[1])


async def test_operator_commands_reach_the_store(mosquitto: str, tmp_path: Path) -> None:
    centre_id, n1, _ = ids()
    clock = Clock()
    centre = Centre(config_for(mosquitto, tmp_path, centre_id), clock=clock)
    events: list[tuple[str, bytes, Any]] = []
    replies: list[tuple[str, bytes, Any]] = []
    ct = CentreTopics(centre_id)
    async with (
        running(centre),
        client(mosquitto, ct.alert()) as c,
        client(mosquitto, topics.reply("console-1") + "/#") as console,
    ):
        listeners = [collect(c, events), collect(console, replies)]
        a = alert(n1, 1, (0.0, 0.0), datetime.now(UTC), CENTRE_FRAME)
        await publish(c, topics.alert(), a.model_dump_json())
        await until(lambda: len(events) == 1, "the centre alert")
        centre_alert_id = CentreAlertEvent.model_validate_json(events[0][1]).alert.alert_id
        acted_at = datetime(2026, 3, 1, 4, 5, 6, tzinfo=UTC)
        clock.frozen = acted_at.timestamp()

        ack = await command(
            console,
            replies,
            ct.command("acknowledge"),
            {"alert_id": centre_alert_id, "operator": "ana"},
        )
        assert ack.ok, ack.error
        assert ack.result == {
            "alert_id": centre_alert_id,
            "status": "acknowledged",
            "acknowledged_by": "ana",
            "assignee": None,
            "closed_by": None,
        }
        assign = await command(
            console,
            replies,
            ct.command("assign"),
            {
                "alert_id": a.alert_id,
                "operator": "ivo",
                "assignee": "patrol-7",
                "note": "nearest boat",
            },
        )
        assert assign.ok, assign.error
        unknown = await command(
            console, replies, ct.command("close"), {"alert_id": "nobody:404", "operator": "ana"}
        )
        assert not unknown.ok
        assert unknown.error is not None
        assert "unknown alert id" in unknown.error
        bad = await command(
            console, replies, ct.command("assign"), {"alert_id": centre_alert_id, "operator": "ana"}
        )
        assert not bad.ok  # assign without an assignee
        garbage = await command(console, replies, ct.command("close"), b"{not json")
        assert not garbage.ok
        assert garbage.error is not None
        assert "bad request" in garbage.error
        verb = await command(
            console, replies, ct.command("delete"), {"alert_id": centre_alert_id, "operator": "ana"}
        )
        assert not verb.ok
        close = await command(
            console,
            replies,
            ct.command("close"),
            {"alert_id": centre_alert_id, "operator": "ana", "note": "seen"},
        )
        assert close.ok, close.error
        again = await command(
            console, replies, ct.command("close"), {"alert_id": centre_alert_id, "operator": "ivo"}
        )
        assert not again.ok  # nothing can be done to a closed alert
        for listener in listeners:
            await cancel(listener)
    assert centre.stats.commands == 8
    assert centre.stats.command_errors == 5
    with AlertStore.open(centre.config.store.url) as store:
        actions = store.actions(centre_alert_id)
        assert [(x.action.value, x.operator, x.at) for x in actions] == [
            ("acknowledge", "ana", acted_at),
            ("close", "ana", acted_at),
        ]
        view = store.alert(centre_alert_id)
        assert view is not None
        assert (view.status.value, view.closed_by, view.closed_at) == ("closed", "ana", acted_at)
        node_view = store.alert(a.alert_id)
        assert node_view is not None
        assert (node_view.status.value, node_view.assignee, node_view.assigned_by) == (
            "assigned",
            "patrol-7",
            "ivo",
        )
        assert store.alert("nobody:404") is None


# --------------------------------------------------------------------------- bad input


async def test_bad_input_is_counted_and_the_centre_goes_on(mosquitto: str, tmp_path: Path) -> None:
    centre_id, n1, _ = ids()
    centre = Centre(config_for(mosquitto, tmp_path, centre_id))
    good = alert(n1, 1, (0.0, 0.0), datetime.now(UTC), CENTRE_FRAME)
    data = json.loads(good.model_dump_json())
    a_track = track(n1, 5, np.zeros(2), np.zeros(2), datetime.now(UTC), CENTRE_FRAME)
    bad: list[tuple[str, bytes | str, str]] = [
        (topics.alert(), b"{not json", "malformed_json"),
        (topics.alert(), b"\xff\xfe\x00", "malformed_json"),
        (topics.alert(), json.dumps({**data, "schema_version": "2"}), "schema_version"),
        (topics.alert(), json.dumps({**data, "kind": "teleport"}), "schema"),
        (topics.alert(), b"x" * 5000, "oversized"),
        (topics.alert(), b"", "empty"),
        (topics.alert(), a_track.model_dump_json(), "wrong_type"),
        (topics.track("blue", f"{n1}:6"), a_track.model_dump_json(), "topic_mismatch"),
        ("borderwatch/v1/track/red/x:1", a_track.model_dump_json(), "unknown_topic"),
        ("borderwatch/v1/track/blue/a/b", a_track.model_dump_json(), "unknown_topic"),
    ]
    async with running(centre) as task, client(mosquitto) as c:
        for topic, payload, _ in bad:
            await publish(c, topic, payload)
        await publish(c, topics.alert(), good.model_dump_json())
        await until(lambda: centre.stats.messages["alert"] == 1, "the good alert processed")
        assert not task.done()
    expected: dict[str, int] = {}
    for _, _, reason in bad:
        expected[reason] = expected.get(reason, 0) + 1
    assert dict(centre.stats.rejected) == expected
    assert centre.stats.errors.total() == 0


TOPICS = [
    topics.alert(),
    topics.track("blue", "b:1"),
    topics.node_state("b"),
    topics.pli("b"),
    "borderwatch/v1/centre/c/cmd/close",
    "borderwatch/v1/nothing",
]


@settings(max_examples=200, deadline=None)
@given(topic=st.sampled_from(TOPICS) | st.text(max_size=40), payload=st.binary(max_size=300))
def test_decode_never_raises(topic: str, payload: bytes) -> None:
    result = decode(topic, payload, CentreTopics("c"), 256)
    assert isinstance(result, Inbound | Rejection)
    if len(payload) > 256:
        assert isinstance(result, Rejection)
        assert result.reason == "oversized"


@settings(max_examples=50, deadline=None)
@given(version=st.text(max_size=5).filter(lambda v: v != "1") | st.integers())
def test_decode_names_a_foreign_schema_version(version: object) -> None:
    data = json.loads(examples()["alert-new"].model_dump_json())
    payload = json.dumps({**data, "schema_version": version}).encode()
    result = decode(topics.alert(), payload, CentreTopics("c"), 1 << 20)
    assert isinstance(result, Rejection)
    assert result.reason == "schema_version"


# ----------------------------------------------------------------------- broker restart


async def test_centre_reconnects_after_a_broker_restart(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    centre_id, n1, _ = ids()
    centre = Centre(config_for(mosquitto_broker.url, tmp_path, centre_id))
    async with running(centre):
        async with client(mosquitto_broker.url) as c:
            t = track(n1, 1, np.zeros(2), np.zeros(2), datetime.now(UTC), CENTRE_FRAME)
            await publish(c, topics.track("blue", t.track_id), t.model_dump_json())
            await until(lambda: centre.stats.messages["track"] == 1, "track before restart")
        mosquitto_broker.stop()
        await until(lambda: not centre.connected, "the centre sees the broker go")
        mosquitto_broker.start()
        await until(lambda: centre.connected, "the centre reconnects")
        events: list[tuple[str, bytes, Any]] = []
        async with client(mosquitto_broker.url, CentreTopics(centre_id).alert()) as c:
            listener = collect(c, events)
            a = alert(n1, 2, (0.0, 0.0), datetime.now(UTC), CENTRE_FRAME)
            await publish(c, topics.alert(), a.model_dump_json())
            await until(lambda: len(events) == 1, "a centre alert after the restart")
            await cancel(listener)
    assert centre.stats.connects >= 2
    assert centre.stats.disconnects >= 1


# ------------------------------------------------------------------------ configuration


def test_config_file_resolves_the_store_and_points_at_bad_lines(tmp_path: Path) -> None:
    good = tmp_path / "centre.yaml"
    good.write_text("centre_id: centre-1\nframe: {lat_deg: 42.0, lon_deg: 19.0}\n")
    config = load_centre_config(good)
    assert config.store.url == f"sqlite:///{tmp_path.resolve() / 'centre.db'}"
    override = load_with_broker(good, "mqtt://127.0.0.1:1999")
    assert (override.mqtt.host, override.mqtt.port) == ("127.0.0.1", 1999)
    with pytest.raises(ValueError, match="scheme"):
        load_with_broker(good, "http://127.0.0.1:1999")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "centre_id: centre-1\nframe: {lat_deg: 42.0, lon_deg: 19.0}\nfusion:\n  stale: 3\n"
    )
    with pytest.raises(ConfigError) as info:
        load_centre_config(bad)
    assert info.value.line == 4


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///c.db", "sqlite:////srv/c.db"),
        ("sqlite:////var/c.db", "sqlite:////var/c.db"),
        ("sqlite://", "sqlite://"),
        ("postgresql://bw:pw@db/bw", "postgresql://bw:pw@db/bw"),
    ],
)
def test_store_url_resolution(url: str, expected: str) -> None:
    assert resolve_store_url(url, Path("/srv")) == expected


def test_example_config_is_valid() -> None:
    config = load_centre_config(Path(__file__).parent.parent / "config" / "centre.yaml")
    assert config.centre_id == "centre-1"


async def test_alert_store_is_written_behind_the_events_and_catches_restart_repeats(
    mosquitto: str, tmp_path: Path
) -> None:
    centre_id, n1, _n2 = ids()
    config = config_for(mosquitto, tmp_path, centre_id)
    now = datetime.now(UTC)
    a1 = alert(n1, 3, (100.0, 200.0), now, CENTRE_FRAME)
    counts = []
    for _run in range(2):  # the second centre, on the same store, gets the alert again
        centre = Centre(config)
        events: list[tuple[str, bytes, Any]] = []
        async with running(centre), client(mosquitto, CentreTopics(centre_id).alert()) as c:
            listener = collect(c, events)
            await publish(c, topics.alert(), a1.model_dump_json())

            def arrived(got: list[tuple[str, bytes, Any]] = events) -> bool:
                return len(got) == 1

            await until(arrived, "the centre alert event")
            await cancel(listener)
        counts.append(centre.stats.duplicates)
    # Only the store knew the repeat: counted, and its event went out again (documented).
    assert counts == [0, 1]
    with AlertStore.open(config.store.url) as store:
        stored = {a.alert_id: a.event_count for a in store.alerts()}
    assert stored[a1.alert_id] == 1
    assert sorted(stored.values()) == [1, 2]  # the centre alert: one event per run
