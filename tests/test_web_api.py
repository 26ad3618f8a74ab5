"""The web console against real services: nodes fed by the simulator over a real Mosquitto, a
real centre with its SQLite store, uvicorn on 127.0.0.1, real httpx and websockets clients.

Nothing is mocked. Bad client input (malformed and oversized WebSocket messages, unknown
alerts, a client that never reads, a client that vanishes mid-send) is thrown at the running
server; it must answer or drop that client, count it, and go on with no alert lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from borderwatch.config.node import NodeConfig
from borderwatch.config.scenario import load_scenario
from borderwatch.config.web import WebSettings
from borderwatch.edge.centre import Centre
from borderwatch.edge.node import Node
from borderwatch.edge.web.centre import CentreConsole
from borderwatch.edge.web.models import (
    AlertCollection,
    AlertHistory,
    ConsoleConfig,
    Health,
    TrackCollection,
    UnitCollection,
)
from borderwatch.edge.web.node import NodeConsole
from borderwatch.edge.web.server import ConsoleServer
from borderwatch.exercise import (
    CENTRE_ID,
    ExerciseClock,
    _taken,
    centre_config,
    feed,
    node_config,
    node_sensors,
    scaled_node_config,
)
from borderwatch.fusion.frames import LocalFrame
from borderwatch.fusion.outputs import TrackTable
from borderwatch.scenarios import resolve_scenario
from borderwatch.simulator.run import simulate, write_border
from tests.conftest import MosquittoBroker, _mosquitto_binary
from tests.test_centre import alert

WAIT_S = 30.0
SPEED = 10.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker of this module's own (the exercise's node ids and retained topics)."""
    b = MosquittoBroker(_mosquitto_binary(), tmp_path_factory.mktemp("web-broker"))
    b.start()
    try:
        yield b.url
    finally:
        b.stop()


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"not reached: {what}")


@dataclass
class Frames:
    """Every frame a WebSocket client received, by type."""

    got: list[dict[str, Any]] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.got if f["type"] == kind]


@contextlib.asynccontextmanager
async def reading(url: str) -> AsyncIterator[tuple[ClientConnection, Frames]]:
    """A WebSocket client that reads every frame in the background."""
    frames = Frames()
    async with websockets.connect(url, max_size=None) as ws:

        async def read() -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                async for text in ws:
                    frames.got.append(json.loads(text))

        task = asyncio.create_task(read())
        try:
            yield ws, frames
        finally:
            task.cancel()


async def serving(
    console: Any,
    settings: WebSettings,
    *,
    sndbuf: int | None = None,
    static_dir: Path | None = None,
) -> tuple[ConsoleServer, asyncio.Task[None]]:
    server = ConsoleServer(console, "127.0.0.1:0", static_dir=static_dir)
    server.bind()
    if sndbuf is not None:
        assert server._socket is not None
        server._socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    task = asyncio.create_task(server.run())
    await asyncio.wait_for(server.started.wait(), WAIT_S)
    return server, task


async def stopped(server: ConsoleServer, task: asyncio.Task[None]) -> None:
    server.stop()
    await asyncio.wait_for(task, WAIT_S)


# ---------------------------------------------------------------------------- live exercise


async def test_live_picture_of_nodes_and_centre_and_actions_reach_the_store(
    broker: str, tmp_path: Path
) -> None:
    scenario = load_scenario(resolve_scenario("joint-patrol-exercise"))
    scenario = scenario.model_copy(update={"duration_s": 60.0})
    sim = simulate(scenario)
    layout = node_sensors(sim.scenario)
    owner = {j: n for n, sensors in layout.items() for j in sensors}
    write_border(tmp_path / "border.geojson", sim)
    clock = ExerciseClock(float(int(time.time())), SPEED)
    nodes: dict[str, Node] = {}
    for n, sensors in layout.items():
        config = node_config(n, [sim.sensor_ids[j] for j in sensors], sim, broker, tmp_path)
        assert config.mqtt is not None
        mqtt = config.mqtt.model_copy(update={"centre_id": CENTRE_ID})
        config = scaled_node_config(config.model_copy(update={"mqtt": mqtt}), SPEED)
        nodes[n] = Node(config, clock=clock)
    centre = Centre(centre_config(sim, broker, tmp_path, SPEED), clock=clock)
    web = WebSettings(border=tmp_path / "border.geojson", trail_points=5)
    centre_console = CentreConsole(centre, web)
    mobile = nodes["mobile-1"]
    node_console = NodeConsole(mobile, WebSettings())
    mobile.outputs.append(node_console)

    async with asyncio.TaskGroup() as tasks:
        runs = [tasks.create_task(centre.run())] + [
            tasks.create_task(n.run()) for n in nodes.values()
        ]
        centre_server, centre_task = await serving(centre_console, web)
        node_server, node_task = await serving(node_console, WebSettings())
        try:
            await until(
                lambda: (
                    centre.connected
                    and all(n.mqtt is not None and n.mqtt.connected for n in nodes.values())
                    and all(h.connected for n in nodes.values() for h in n.sensor_health())
                ),
                "every service connected",
            )
            c_http = centre_server.url.rstrip("/")
            n_http = node_server.url.rstrip("/")
            c_ws = c_http.replace("http://", "ws://") + "/ws"
            n_ws = n_http.replace("http://", "ws://") + "/ws"
            async with (
                httpx.AsyncClient(timeout=WAIT_S) as http,
                reading(c_ws) as (cws, centre_frames),
                reading(n_ws) as (_, node_frames),
            ):
                clock.begin()
                feeder = tasks.create_task(
                    feed(sim, broker, clock, owner, 60.0, lambda n: _taken(nodes[n]))
                )
                await check_live(http, c_http, n_http, cws, centre_frames, node_frames, centre)
                await check_node_action_reaches_the_centre(http, n_http, node_console, centre)
                await feeder
                # One more centre alert, acknowledged: open, for the restart below.
                await until(
                    lambda: any(r.status == "open" for r in centre_console.picture.alerts.values()),
                    "a second, open centre alert",
                )
                still_open = next(
                    a for a, r in centre_console.picture.alerts.items() if r.status == "open"
                )
                ack = await http.post(
                    f"{c_http}/api/alerts/{still_open}/acknowledge", json={"operator": "dee"}
                )
                assert ack.status_code == 200
        finally:
            await stopped(centre_server, centre_task)
            await stopped(node_server, node_task)
            for each in nodes.values():
                each.stop()
            centre.stop()
            await asyncio.gather(*runs)
    await check_restart_keeps_the_workflow(centre, sim, broker, tmp_path)


async def check_restart_keeps_the_workflow(
    before: Centre, sim: Any, broker: str, tmp_path: Path
) -> None:
    """A restarted centre's console shows the open centre alerts from the store, with their
    operators' workflow (acknowledged, assigned); closed ones only in the history."""
    centre = Centre(centre_config(sim, broker, tmp_path, SPEED))
    console = CentreConsole(centre, WebSettings())
    run = asyncio.create_task(centre.run())
    server, task = await serving(console, WebSettings())
    try:
        await asyncio.wait_for(console.loaded.wait(), WAIT_S)
        async with httpx.AsyncClient(timeout=WAIT_S) as http:
            base = server.url.rstrip("/")
            shown = AlertCollection.model_validate((await http.get(f"{base}/api/alerts")).json())
            history = AlertHistory.model_validate(
                (await http.get(f"{base}/api/alerts/history", params={"limit": 1000})).json()
            )
        assert centre.store is not None
        stored = {v.alert_id: v for v in await centre.store.alerts(limit=1000)}
        open_centre = {
            a for a, v in stored.items() if a.startswith(f"{CENTRE_ID}:") and v.status != "closed"
        }
        assert open_centre
        assert {f.id for f in shown.features} == open_centre
        for feature in shown.features:
            view = stored[feature.id]
            assert feature.properties.status == view.status.value
            assert feature.properties.acknowledged_by == view.acknowledged_by
        assert "dee" in {f.properties.acknowledged_by for f in shown.features}
        closed = {a for a, v in stored.items() if v.status.value == "closed"}
        assert closed
        assert not closed & {f.id for f in shown.features}
        by_id = {a.alert_id: a for a in history.alerts}
        for alert_id in closed:
            assert by_id[alert_id].status == "closed"
            assert [a.verb for a in by_id[alert_id].actions][-1] == "close"
        assert before.centre_id == centre.centre_id
    finally:
        await stopped(server, task)
        centre.stop()
        await run


async def check_live(
    http: httpx.AsyncClient,
    c_http: str,
    n_http: str,
    cws: ClientConnection,
    centre_frames: Frames,
    node_frames: Frames,
    centre: Centre,
) -> None:
    # Hello, then the snapshot, then live frames on both consoles.
    await until(lambda: len(centre_frames.got) >= 2 and len(node_frames.got) >= 2, "greeting")
    for frames, role in ((centre_frames, "centre"), (node_frames, "node")):
        assert [f["type"] for f in frames.got[:2]] == ["hello", "snapshot"]
        assert frames.got[0]["role"] == role
        assert set(frames.got[1]) == {"type", "tracks", "units", "alerts", "health"}
    await until(
        lambda: (
            any(f["features"] for f in centre_frames.of("tracks"))
            and any(f["features"] for f in node_frames.of("tracks"))
        ),
        "track frames with tracks",
    )
    await until(lambda: bool(centre_frames.of("alert")), "a centre alert frame")

    # Track documents are valid GeoJSON of the contract, around the deployment's origin.
    for base in (c_http, n_http):
        doc = TrackCollection.model_validate((await http.get(f"{base}/api/tracks")).json())
        assert doc.features
        for feature in doc.features:
            lon, lat = feature.geometry.coordinates
            assert abs(lon - 19.42) < 0.2
            assert abs(lat - 44.87) < 0.2
            assert feature.id == feature.properties.track_id
            assert len(feature.properties.trail) <= 60
            assert (
                feature.properties.ellipse.semi_major_m >= feature.properties.ellipse.semi_minor_m
            )
        if base == c_http:
            assert all(f.properties.members for f in doc.features)
            assert max(len(f.properties.trail) for f in doc.features) <= 5
        UnitCollection.model_validate((await http.get(f"{base}/api/units")).json())
        health_doc = Health.model_validate((await http.get(f"{base}/api/health")).json())
        assert health_doc.console.tracks >= 1
        assert 0.0 < health_doc.console.frame_ms <= health_doc.console.frame_ms_max
        config = ConsoleConfig.model_validate((await http.get(f"{base}/api/config")).json())
        assert config.border.features
        assert {f["properties"]["kind"] for f in config.border.features} <= {"green", "blue"}
        paths = (await http.get(f"{base}/openapi.json")).json()["paths"]
        for path in (
            "/api/tracks",
            "/api/alerts",
            "/api/health",
            "/api/config",
            "/api/units",
            "/api/alerts/history",
            "/api/alerts/{alert_id}/{verb}",
        ):
            assert path in paths
        assert (await http.get(f"{base}/docs")).status_code == 404  # no CDN page
    health = (await http.get(f"{c_http}/api/health")).json()
    assert health["broker"]["connected"] is True
    assert {s["provenance"]["node_id"] for s in health["nodes"]} >= {"mobile-1"}
    assert health["console"]["clients"] == 1

    # Acknowledge by POST, assign by WebSocket: both reach the centre's store.
    alerts = AlertCollection.model_validate((await http.get(f"{c_http}/api/alerts")).json())
    alert_id = alerts.features[0].id
    assert alert_id.startswith(f"{CENTRE_ID}:")
    reply = await http.post(
        f"{c_http}/api/alerts/{alert_id}/acknowledge", json={"operator": "ana", "note": "seen"}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["alert"]["status"] == "acknowledged"
    assert centre.store is not None
    stored = await centre.store.alert(alert_id)
    assert stored is not None
    assert stored.acknowledged_by == "ana"
    await until(
        lambda: any(
            f["feature"]["id"] == alert_id
            and f["feature"]["properties"]["status"] == "acknowledged"
            for f in centre_frames.of("alert")
        ),
        "the acknowledgement pushed to the page",
    )
    await cws.send(
        json.dumps(
            {
                "type": "act",
                "request_id": "r-7",
                "verb": "assign",
                "alert_id": alert_id,
                "operator": "bo",
                "assignee": "team-2",
            }
        )
    )
    await until(lambda: bool(centre_frames.of("result")), "the act result")
    (result,) = centre_frames.of("result")
    assert (result["request_id"], result["ok"], result["alert"]["status"]) == (
        "r-7",
        True,
        "assigned",
    )
    stored = await centre.store.alert(alert_id)
    assert stored is not None
    assert (stored.assignee, stored.status.value) == ("team-2", "assigned")
    history = AlertHistory.model_validate(
        (await http.get(f"{c_http}/api/alerts/history", params={"limit": 50})).json()
    )
    assert alert_id in {a.alert_id for a in history.alerts}

    # Refusals: an unknown alert, a body without operator, an assign without assignee.
    unknown = await http.post(f"{c_http}/api/alerts/x:9/acknowledge", json={"operator": "ana"})
    assert unknown.status_code == 404
    assert (await http.post(f"{c_http}/api/alerts/{alert_id}/close", json={})).status_code == 422
    no_one = await http.post(f"{c_http}/api/alerts/{alert_id}/assign", json={"operator": "a"})
    assert no_one.status_code == 422
    closed = await http.post(f"{c_http}/api/alerts/{alert_id}/close", json={"operator": "cy"})
    assert closed.status_code == 200
    again = await http.post(f"{c_http}/api/alerts/{alert_id}/close", json={"operator": "cy"})
    assert again.status_code == 409
    assert again.json()["alert"]["closed_by"] == "cy"


async def check_node_action_reaches_the_centre(
    http: httpx.AsyncClient, n_http: str, console: NodeConsole, centre: Centre
) -> None:
    """A boat crew acknowledges its node's alert: shown at once (pending), forwarded through
    the outbox and the broker to the centre, which stores it."""
    await until(lambda: bool(console.picture.alerts), "an alert on the node")
    alert_id = next(iter(console.picture.alerts))
    assert centre.store is not None
    await until(lambda: centre.stats.messages["alert"] > 0, "the node alert at the centre")
    reply = await http.post(
        f"{n_http}/api/alerts/{alert_id}/acknowledge", json={"operator": "boat crew"}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["alert"]["status"] == "acknowledged"
    assert reply.json()["alert"]["pending"] is True

    stored: list[Any] = []

    async def poll() -> None:
        while True:
            view = await centre.store.alert(alert_id)  # type: ignore[union-attr]
            if view is not None and view.acknowledged_by == "boat crew":
                stored.append(view)
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), WAIT_S)
    assert stored[0].status.value == "acknowledged"
    await until(lambda: not console.picture.alerts[alert_id].pending, "no longer pending")


# --------------------------------------------------------------------------------- bad input

FRAME = LocalFrame(44.87, 19.42)


def big_table(n: int, t: float) -> TrackTable:
    rng = np.random.default_rng(7)
    ids = np.arange(1, n + 1)
    z = np.zeros(n)
    P = np.tile(np.diag([25.0, 16.0, 1.0, 1.0]), (n, 1, 1))
    x = np.column_stack([rng.uniform(-3000, 3000, (n, 2)), rng.normal(0, 2, (n, 2))])
    return TrackTable(
        t=t,
        track_id=ids,
        x=x,
        P=P,
        mode_prob=np.ones((n, 1)),
        cls=np.full(n, 2),
        cls_conf=np.full(n, 0.8),
        hits=np.full(n, 5),
        first_t=z + t - 10,
        last_update_t=z + t,
        sensor_mask=np.ones(n, dtype=np.int64),
        side=np.ones(n, dtype=np.int64),
        border_segment=np.zeros(n, dtype=np.int64),
        border_distance_m=z + 100.0,
    )


def raw_client(port: int, *, rcvbuf: int = 4096) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before the window is set
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    return sock


async def test_bad_clients_are_answered_or_dropped_counted_and_no_alert_is_lost(
    tmp_path: Path,
) -> None:
    node = Node(NodeConfig(node_id="boat-9", frame={"lat_deg": 44.87, "lon_deg": 19.42}))
    web = WebSettings(
        client_queue=8, send_timeout_s=2.0, max_message_bytes=2048, log_interval_s=60.0
    )
    console = NodeConsole(node, web)
    node.outputs.append(console)
    run = asyncio.create_task(node.run())
    # Small kernel buffers (accepted sockets inherit the listener's): a client that does not
    # read holds the server's sends back after kilobytes, not megabytes.
    server, task = await serving(console, web, sndbuf=8192)
    base = server.url.rstrip("/")
    ws_url = base.replace("http://", "ws://") + "/ws"
    published: list[str] = []
    t0 = node.epoch

    async def raise_alert(k: int) -> None:
        a = alert("boat-9", k, (10.0 * k, 0.0), t0, FRAME)
        await console.publish(a)
        published.append(a.alert_id)

    def errors() -> dict[str, int]:
        return dict(console.hub.stats.ws_errors)

    try:
        async with httpx.AsyncClient(timeout=WAIT_S) as http, reading(ws_url) as (ws, frames):
            await until(lambda: len(frames.got) >= 2, "greeting")
            # Malformed messages: each answered with an error frame, the connection stays.
            for bad in [
                "not json",
                "[1,2]",
                json.dumps({"type": "shout"}),
                json.dumps({"type": "act", "request_id": "r", "verb": "delete"}),
                json.dumps(
                    {
                        "type": "act",
                        "request_id": "r",
                        "verb": "acknowledge",
                        "alert_id": "boat-9:1",
                        "operator": "",
                    }
                ),
            ]:
                await ws.send(bad)
            await ws.send(b'{"type": "ping"}')
            await until(lambda: bool(frames.of("pong")), "the pong after the bad messages")
            assert len(frames.of("error")) == 5
            assert errors()["malformed"] == 5
            # Unknown alert: a refused result, and 404 by HTTP.
            await ws.send(
                json.dumps(
                    {
                        "type": "act",
                        "request_id": "u1",
                        "verb": "close",
                        "alert_id": "boat-9:404",
                        "operator": "ana",
                    }
                )
            )
            await until(lambda: bool(frames.of("result")), "the refused result")
            assert frames.of("result")[0]["ok"] is False
            assert "unknown alert" in frames.of("result")[0]["error"]
            missing = await http.post(f"{base}/api/alerts/boat-9:404/close", json={"operator": "a"})
            assert missing.status_code == 404
            history = f"{base}/api/alerts/history"
            queries: list[tuple[dict[str, str | int], int]] = [
                ({"before": "2026-01-01T00:00:00"}, 200),  # no zone: UTC
                ({"before": "2026-01-01T00:00:00+02:00", "limit": 5}, 200),
                ({"before": "yesterday"}, 422),
                ({"limit": 0}, 422),
                ({"limit": 100_000}, 422),
            ]
            for query, status in queries:
                assert (await http.get(history, params=query)).status_code == status, query
            assert (
                await http.post(f"{base}/api/alerts/boat-9:1/delete", json={})
            ).status_code == 422
            assert missing.status_code == 404

            # A page of another origin may not open the WebSocket (the browser names it).
            with pytest.raises(websockets.InvalidStatus):
                async with websockets.connect(ws_url, origin="http://evil.example"):  # type: ignore[arg-type]
                    pass
            assert errors()["origin"] == 1
            host = base.removeprefix("http://")
            async with websockets.connect(ws_url, origin=f"http://{host}") as same:  # type: ignore[arg-type]
                assert json.loads(await same.recv())["type"] == "hello"

            # An oversized message closes that client's connection only (counted).
            async with websockets.connect(ws_url, max_size=None) as big:
                await big.send("x" * 10_000)

                async def drain(c: ClientConnection = big) -> None:
                    while True:
                        await c.recv()

                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(drain(), WAIT_S)
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 1009
            await until(lambda: errors().get("oversized", 0) == 1, "the oversized message counted")

            # A client that never reads, and one that vanishes mid-send, while big track
            # frames and alerts flow: both are dropped; the reading client gets every alert.
            port = int(server.port)
            stale = await asyncio.to_thread(raw_client, port)
            vanishing = await asyncio.to_thread(raw_client, port)
            await until(lambda: len(console.hub.clients) == 3, "three clients")
            vanishing.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            vanishing.close()  # reset: the server is sending it the snapshot or a frame
            for k in range(100):  # tracks at 10 Hz (sent at 1 Hz), an alert every 0.4 s
                console.show_tracks(big_table(500, 10.0 + k))
                if k % 4 == 0:
                    await raise_alert(k + 1)
                await asyncio.sleep(0.1)
                if len(console.hub.clients) == 1:
                    break
            await until(lambda: len(console.hub.clients) == 1, "the stale clients dropped")
            stats = console.hub.stats
            assert stats.clients_overflowed + errors().get("send_timeout", 0) >= 1
            assert stats.track_frames_dropped >= 1
            stale.close()
            await until(
                lambda: {f["feature"]["id"] for f in frames.of("alert")} >= set(published),
                "every alert frame at the reading client",
            )
            current = AlertCollection.model_validate((await http.get(f"{base}/api/alerts")).json())
            assert {f.id for f in current.features} == set(published)
            health = (await http.get(f"{base}/api/health")).json()
            assert health["console"]["ws_errors"] >= 7
            assert health["console"]["clients"] == 1
            # The server goes on: a new client gets its greeting.
            async with reading(ws_url) as (_, later):
                await until(lambda: len(later.got) >= 2, "a new client's greeting")
                assert later.got[1]["type"] == "snapshot"
                assert len(later.got[1]["alerts"]["features"]) == len(published)
    finally:
        await stopped(server, task)
        node.stop()
        await run


# ------------------------------------------------------------------------------ sensors


async def test_sensor_fields_of_view_follow_the_platform() -> None:
    """Camera wedges and radar discs drawn around the node's latest position and heading; a
    fixed camera at its site."""
    node = Node(
        NodeConfig.model_validate(
            {
                "node_id": "boat-4",
                "frame": {"lat_deg": 44.87, "lon_deg": 19.42},
                "devices": [
                    {"type": "gps", "sensor_id": "gps", "url": "loop://"},
                    {"type": "radar", "sensor_id": "radar", "url": "loop://"},
                    {
                        "type": "thermal_camera",
                        "sensor_id": "bow",
                        "url": "tcp://127.0.0.1:9",
                        "width": 640,
                        "height": 512,
                        "intrinsics": {"hfov_deg": 24.0},
                        "mount": {"yaw_deg": 90.0},
                        "max_range_m": 1000.0,
                    },
                    {
                        "type": "thermal_camera",
                        "sensor_id": "mast",
                        "url": "tcp://127.0.0.1:9",
                        "width": 640,
                        "height": 512,
                        "intrinsics": {"hfov_deg": 40.0},
                        "site": {"lat_deg": 44.88, "lon_deg": 19.43, "heading_deg": 180.0},
                        "max_range_m": 2000.0,
                    },
                ],
            }
        )
    )
    console = NodeConsole(node, WebSettings(radar_range_m=3000.0))
    # Before the platform's position is known only the fixed camera can be drawn.
    (mast,) = console.sensors_geojson()["features"]
    assert mast["properties"] == {
        "sensor_id": "mast",
        "type": "thermal_camera",
        "node_id": "boat-4",
    }
    ring = np.array(mast["geometry"]["coordinates"][0])
    assert ring[0].tolist() == ring[-1].tolist()  # closed
    assert ring[0] == pytest.approx([19.43, 44.88])  # apex at the site
    assert (ring[1:-1, 1] < 44.88).all()  # looking south

    unit = console.picture.unit("boat-4")
    unit.lon, unit.lat, unit.heading_deg = 19.42, 44.87, 0.0
    features = {f["properties"]["sensor_id"]: f for f in console.sensors_geojson()["features"]}
    assert set(features) == {"radar", "bow", "mast"}
    radar = np.array(features["radar"]["geometry"]["coordinates"][0])
    assert radar[0] == pytest.approx(radar[-1])
    xy = FRAME.to_enu(radar[:, 1], radar[:, 0])
    np.testing.assert_allclose(np.hypot(xy[:, 0], xy[:, 1]), 3000.0, rtol=1e-3)
    bow = np.array(features["bow"]["geometry"]["coordinates"][0])[1:-1]
    xy = FRAME.to_enu(bow[:, 1], bow[:, 0])
    bearings = np.degrees(np.arctan2(xy[:, 0], xy[:, 1]))
    assert bearings.min() == pytest.approx(78.0, abs=0.1)  # heading 0 + yaw 90 ± 12
    assert bearings.max() == pytest.approx(102.0, abs=0.1)
    np.testing.assert_allclose(np.hypot(xy[:, 0], xy[:, 1]), 1000.0, rtol=1e-3)


# ------------------------------------------------------------------------------ map layers


def write_mbtiles(path: Path) -> bytes:
    """A one-tile MBTiles file (zoom 1, XYZ x=1 y=0, i.e. TMS row 1); returns the tile."""
    import sqlite3

    tile = b"\x89PNG\r\n\x1a\n" + b"tile-1-1-0"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(
            "CREATE TABLE metadata (name TEXT, value TEXT);"
            "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER,"
            " tile_data BLOB);"
        )
        db.executemany(
            "INSERT INTO metadata VALUES (?, ?)",
            [("format", "png"), ("minzoom", "1"), ("maxzoom", "1"), ("attribution", "local")],
        )
        db.execute("INSERT INTO tiles VALUES (1, 1, 1, ?)", (tile,))
        db.commit()
    return tile


async def test_local_tiles_basemap_and_an_unbuilt_page(tmp_path: Path) -> None:
    tile = write_mbtiles(tmp_path / "map.mbtiles")
    (tmp_path / "rivers.geojson").write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"layer": "water", "name": "Drina"},
                        "geometry": {
                            "type": "LineString",
                            "coordinates": [[19.4, 44.8], [19.5, 44.9]],
                        },
                    },
                    {"type": "Feature", "properties": {}, "geometry": None},
                ],
            }
        )
    )
    (tmp_path / "broken.geojson").write_text("{not json")
    web = WebSettings(
        mbtiles=tmp_path / "map.mbtiles",
        basemap=[tmp_path / "rivers.geojson", tmp_path / "broken.geojson", tmp_path / "gone.json"],
        languages=["en", "sr"],
        language="sr",
    )
    node = Node(NodeConfig(node_id="boat-5", frame={"lat_deg": 44.87, "lon_deg": 19.42}))
    console = NodeConsole(node, web)
    server, task = await serving(console, web, static_dir=tmp_path / "no-bundle")
    base = server.url.rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=WAIT_S) as http:
            config = ConsoleConfig.model_validate((await http.get(f"{base}/api/config")).json())
            assert config.tiles is not None
            assert (config.tiles.url, config.tiles.format, config.tiles.minzoom) == (
                "/tiles/{z}/{x}/{y}",
                "png",
                1,
            )
            assert [f["properties"] for f in config.basemap.features] == [
                {"layer": "water", "name": "Drina"}
            ]
            assert (config.language, config.languages) == ("sr", ["en", "sr"])
            got = await http.get(f"{base}/tiles/1/1/0")
            assert (got.status_code, got.content, got.headers["content-type"]) == (
                200,
                tile,
                "image/png",
            )
            for missing in ("1/0/0", "1/1/0.png5", "40/1/1", "1/-1/0", "1/1/x"):
                assert (await http.get(f"{base}/tiles/{missing}")).status_code in (404, 422)
            page = await http.get(f"{base}/")
            assert (page.status_code, page.text) == (503, "console not built: run make web")
    finally:
        await stopped(server, task)


# ---------------------------------------------------------------------------- command line


@pytest.mark.parametrize("role", ["node", "centre"])
def test_command_line_serves_the_console_and_stops_on_sigterm(
    role: str, broker: str, tmp_path: Path
) -> None:
    """``borderwatch node|centre --config F --http 127.0.0.1:0``: the URL is logged, the API
    answers, SIGTERM ends the service and its console cleanly (exit 0)."""
    import re
    import signal
    import subprocess
    import sys

    config = tmp_path / f"{role}.yaml"
    if role == "node":
        config.write_text("node_id: boat-8\nframe: {lat_deg: 44.87, lon_deg: 19.42}\n")
    else:
        config.write_text(
            f"centre_id: centre-8\nframe: {{lat_deg: 44.87, lon_deg: 19.42}}\n"
            f"mqtt: {{url: '{broker}', client_id: web-cli-centre}}\n"
            f"store: {{url: 'sqlite:///{tmp_path / 'centre.db'}'}}\n"
        )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "borderwatch.cli",
            role,
            "--config",
            str(config),
            "--http",
            "127.0.0.1:0",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        log = ""
        deadline = time.monotonic() + WAIT_S
        while (found := re.search(r"console of \w+ \S+ at (http://\S+)", log)) is None:
            line = proc.stderr.readline()
            assert line, f"the service ended without serving: {log}"
            assert time.monotonic() < deadline, log
            log += line
        url = found.group(1)
        health = httpx.get(f"{url}api/health", timeout=WAIT_S).json()
        assert (health["role"], health["id"]) == (role, "boat-8" if role == "node" else "centre-8")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=WAIT_S) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}api/health", timeout=2.0)
    finally:
        proc.kill()
        proc.wait()


def test_a_busy_or_bad_address_is_refused_before_the_node_starts(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = tmp_path / "node.yaml"
    config.write_text("node_id: boat-8\nframe: {lat_deg: 44.87, lon_deg: 19.42}\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for http, reason in [(f"127.0.0.1:{port}", "cannot listen"), ("nonsense", "HOST:PORT")]:
            command = ["node", "--config", str(config), "--http", http]
            done = subprocess.run(
                [sys.executable, "-m", "borderwatch.cli", *command],
                check=False,
                capture_output=True,
                text=True,
                timeout=WAIT_S,
            )
            assert done.returncode == 2
            assert reason in done.stderr
            assert "never awaited" not in done.stderr
            assert "starting" not in done.stderr
