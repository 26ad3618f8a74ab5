"""A simulated joint patrol exercise: edge nodes and a control centre talking through a broker.

::

    simulator ──feeder (MQTT, paced by the exercise clock)──▶ borderwatch/v1/node/<n>/sensor/<s>/det
                                                                   │
                    Node boat-1 · Node boat-2 · Node mobile-1 ◀────┘  (mqtt_detections devices)
                          │ tracks, alerts (outbox → broker)
                          ▼
                        Centre ── centre alerts, fused picture ──▶ console (prints, collects)

Every part is the real service: each node reads its sensors' Detection messages from the
broker, tracks and raises alerts, and publishes through its SQLite outbox; the centre fuses the
nodes' tracks, merges their alerts into one centre alert per crossing and stores everything in
SQLite. A console subscriber prints the alerts as they arrive, with a progress line. At the end
the run is scored against the simulation's truth, per node and for the centre.

A sensor belongs to the node named like the platform that carries it (a scenario platform
``boat-1`` becomes node ``boat-1``); sensors on no platform are left out.

Time: every service runs on one :class:`ExerciseClock`, Unix time running ``speed`` times fast
from a whole second ``start`` (scenario ``t = 0``), held at ``start`` until every service is
connected. The feeder publishes each scan when the clock reaches the scan's time, stamped
``start + t``. The scenario (truth, detections) is deterministic for a seed; how the nodes'
tracker steps fall between scans depends on wall-clock pacing, so two runs give close, not
bit-identical, figures.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import secrets
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

import aiomqtt
import numpy as np
from pydantic import ValidationError

from borderwatch import __version__
from borderwatch.config.centre import CentreConfig
from borderwatch.config.node import NodeConfig
from borderwatch.config.scenario import Scenario
from borderwatch.csvfiles import AlertRow, StateTable
from borderwatch.edge.broker import mqtt_broker
from borderwatch.edge.centre import Centre, CentreAlertEvent, CentreTopics, Picture
from borderwatch.edge.mqtt import topics
from borderwatch.edge.node import Node
from borderwatch.edge.outbox import Outbox
from borderwatch.edge.store import AlertStore
from borderwatch.errors import BorderwatchError, ConfigError
from borderwatch.fusion.frames import LocalFrame
from borderwatch.fusion.outputs import AlertEvent, AlertKind, TrackTable
from borderwatch.schema import (
    Alert,
    Envelope,
    MessageError,
    Publisher,
    batch_to_detections,
    parse_message,
)
from borderwatch.simulator.pipeline import truth_states
from borderwatch.simulator.run import Simulation, simulate, write_border
from borderwatch.simulator.scoring import (
    CrossingRules,
    TruthCrossing,
    match_crossings,
    score_run,
    truth_crossings,
)
from borderwatch.simulator.sensors import in_view, platform_trajectory, sensor_pose
from borderwatch.simulator.truth import Trajectory, truth_table

if TYPE_CHECKING:
    from borderwatch.edge.web.server import ConsoleServer

log = logging.getLogger(__name__)

#: Id of the exercise's control centre.
CENTRE_ID = "centre-1"
#: Longest wait for every service to connect and subscribe before the clock starts, s (wall).
READY_TIMEOUT_S = 20.0
#: Longest wait for the outboxes to drain and the centre to catch up at the end, s (wall).
DRAIN_TIMEOUT_S = 10.0
#: Scenario seconds the services run past the last scan: the nodes hold detections for their
#: reorder window (1 s) before the tracker takes them.
SETTLE_S = 3.0
#: Without a terminal, a progress line is printed every this many scenario seconds.
PROGRESS_EVERY_S = 30.0
#: Longest the feeder holds the clock for a node to take in a scan it was sent, s (wall); past
#: it the clock runs on and the node's tracker may find detections late.
CATCH_UP_TIMEOUT_S = 2.0
#: GOSPA cut-off (m) and order used for the track pictures.
GOSPA_C_M = 50.0
GOSPA_P = 2.0


class ExerciseError(BorderwatchError):
    """The exercise could not run (a service did not connect to the broker, no node, ...)."""


# ------------------------------------------------------------------------------------- clock


class ExerciseClock:
    """Unix time (s) running ``speed`` times fast from ``start``.

    The clock stands at ``start`` until :meth:`begin`, so that services connecting at different
    moments share scenario ``t = 0``; :meth:`hold` stops it and :meth:`resume` lets it run on
    from where it stopped, so that the feeder can wait for busy nodes without their clocks
    running ahead of their data.

    Args:
        start: Unix time of scenario ``t = 0`` (a whole second: the node and centre epochs are
            whole seconds).
        speed: scenario seconds per wall-clock second (> 0).
    """

    def __init__(self, start: float, speed: float) -> None:
        if not speed > 0.0 or not math.isfinite(speed):
            raise ValueError(f"speed must be a positive number, got {speed}")
        self.start = start
        self.speed = speed
        self.held_wall_s = 0.0
        self._wall0: float | None = None
        self._held: tuple[float, float] | None = (0.0, 0.0)  # (scenario t, wall time held)

    def __call__(self) -> float:
        return self.start + self.scenario_t()

    def begin(self) -> None:
        """Start the clock running (scenario ``t = 0`` is now)."""
        self._wall0 = time.monotonic()
        self._held = None

    def hold(self) -> None:
        """Stop the clock where it is (no-op when it is not running)."""
        if self._held is None:
            self._held = (self.scenario_t(), time.monotonic())

    def resume(self) -> None:
        """Let a held clock run on from the time it was held at."""
        if self._held is None or self._wall0 is None:
            return
        t, since = self._held
        now = time.monotonic()
        self.held_wall_s += now - since
        self._wall0 = now - t / self.speed
        self._held = None

    def scenario_t(self) -> float:
        """Scenario seconds since ``t = 0`` (0 before :meth:`begin`)."""
        if self._held is not None:
            return self._held[0]
        assert self._wall0 is not None
        return (time.monotonic() - self._wall0) * self.speed

    async def until(self, t: float) -> None:
        """Sleep until scenario time ``t`` (s)."""
        while (left := t - self.scenario_t()) > 0.0:
            await asyncio.sleep(max(left / self.speed, 0.001))


# ------------------------------------------------------------------------------------ layout


def node_sensors(scenario: Scenario) -> dict[str, list[int]]:
    """Node id → indices of the scenario sensors it reads (those on the platform of that name).

    Raises:
        ConfigError: a platform carrying sensors has a name that is not a valid node id.
    """
    out: dict[str, list[int]] = {}
    for j, sensor in enumerate(scenario.sensors):
        platform = sensor.mount.platform
        if platform is None:
            continue
        try:
            topics.node_state(platform)
            NodeConfig.model_validate({"node_id": platform, "frame": {"lat_deg": 0, "lon_deg": 0}})
        except (ValueError, ValidationError) as exc:
            raise ConfigError(
                f"platform {platform!r} cannot be a node id (lower case letters, digits, '_.-')"
            ) from exc
        out.setdefault(platform, []).append(j)
    return out


def _frame(sim: Simulation) -> dict[str, float]:
    return {"lat_deg": sim.frame.lat_deg, "lon_deg": sim.frame.lon_deg, "alt_m": sim.frame.alt_m}


def node_config(
    node_id: str, sensor_ids: Sequence[str], sim: Simulation, broker_url: str, out_dir: Path
) -> NodeConfig:
    """A node reading ``sensor_ids`` from the broker and publishing to it, on the scenario's
    frame and border (``out_dir/border.geojson``), its outbox in ``out_dir``. Its tracker steps
    are paced in wall-clock seconds (see :func:`scaled_node_config`)."""
    devices = [
        {
            "type": "mqtt_detections",
            "sensor_id": s,
            "url": f"{broker_url.rstrip('/')}/{topics.sensor_detections(node_id, s)}",
        }
        for s in sensor_ids
    ]
    return NodeConfig.model_validate(
        {
            "node_id": node_id,
            "frame": _frame(sim),
            "border": out_dir / "border.geojson",
            "simulated": True,
            "exercise": True,
            "devices": devices,
            "mqtt": {
                "url": broker_url,
                "client_id": f"borderwatch-exercise-{node_id}-{secrets.token_hex(3)}",
                "outbox_path": out_dir / f"{node_id}-outbox.sqlite3",
                "track_interval_s": 1.0,
            },
        }
    )


def scaled_node_config(config: NodeConfig, speed: float) -> NodeConfig:
    """``config`` with its wall-clock intervals (tracker pacing, health) divided by ``speed``,
    so that in scenario time the node steps and reports as it would at 1× (a step at most once
    per scenario second: the sensors scan at 1 Hz)."""
    fusion = config.fusion.model_copy(
        update={
            "scan_interval_s": min(config.fusion.scan_interval_s / speed, 10.0),
            "min_step_interval_s": 1.0 / speed,
        }
    )
    health = config.health.model_copy(update={"interval_s": config.health.interval_s / speed})
    return config.model_copy(update={"fusion": fusion, "health": health})


def centre_config(sim: Simulation, broker_url: str, out_dir: Path, speed: float) -> CentreConfig:
    """The exercise's centre: SQLite store ``out_dir/centre.db``, one picture per scenario
    second, a clean MQTT session (nothing of an earlier run is queued for it)."""
    return CentreConfig.model_validate(
        {
            "centre_id": CENTRE_ID,
            "frame": _frame(sim),
            "mqtt": {
                "url": broker_url,
                "client_id": f"borderwatch-exercise-{CENTRE_ID}-{secrets.token_hex(3)}",
            },
            "store": {"url": f"sqlite:///{(out_dir / 'centre.db').resolve()}"},
            "fusion": {"picture_interval_s": 1.0 / speed, "time_source": "wall"},
            "intake": {"session_expiry_s": 0},
        }
    )


# ------------------------------------------------------------------------------------ broker


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 1883


# ------------------------------------------------------------------------------ node capture


@dataclass(slots=True)
class _Recorder:
    """A node output keeping what the node raised: its alerts, and compact rows
    ``(t_s, track_id, lat_deg, lon_deg, vx_mps, vy_mps)`` of every confirmed track at each
    report interval (``t_s`` in scenario seconds). The rows are the node's own picture, as its
    console shows it, not only the dead-reckoned summaries it sends over the radio: those
    leave out a track whose prediction still holds, and a picture scored from them would miss
    it. :meth:`attach` tells it the node's plane and time axis."""

    start: datetime
    node_id: str
    name: str = "exercise"
    alerts: list[Alert] = field(default_factory=list)
    rows: list[tuple[float, str, float, float, float, float]] = field(default_factory=list)
    tracks_now: int = 0
    _frame: LocalFrame | None = None
    _offset_s: float = 0.0

    def attach(self, node: Node) -> None:
        self._frame = node.frame
        self._offset_s = (node.epoch - self.start).total_seconds()

    async def publish(self, message: Envelope) -> None:
        if isinstance(message, Alert):
            self.alerts.append(message)

    def show_tracks(self, table: TrackTable) -> None:
        assert self._frame is not None, "attach() the node first"
        self.tracks_now = len(table)
        if not len(table):
            return
        t = table.t + self._offset_s
        latlon = self._frame.to_wgs84(table.x[:, :2])
        self.rows.extend(
            (t, f"{self.node_id}:{int(n)}", float(ll[0]), float(ll[1]), float(x[2]), float(x[3]))
            for n, ll, x in zip(table.track_id, latlon, table.x, strict=True)
        )


# ----------------------------------------------------------------------------------- console


class _Console:
    """Alert lines as they come and a progress line: redrawn in place on a terminal, printed
    every :data:`PROGRESS_EVERY_S` scenario seconds otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._progress = ""
        self._next_progress = PROGRESS_EVERY_S

    def line(self, text: str) -> None:
        if self.tty and self._progress:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        if self.tty and self._progress:
            self.stream.write(self._progress)
        self.stream.flush()

    def progress(self, t: float, text: str) -> None:
        if self.tty:
            self._progress = text
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
        elif t >= self._next_progress:
            self._next_progress += PROGRESS_EVERY_S
            self.line(text)

    def end_progress(self) -> None:
        if self.tty and self._progress:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self._progress = ""


def _direction(value: str) -> str:
    return "left→right" if value == "left_to_right" else "right→left"


def _where(alert: Alert) -> str:
    p = alert.after.position
    if p.x_m is None or p.y_m is None:
        return f"({p.lat_deg:.5f}, {p.lon_deg:.5f})"
    return f"({p.x_m:7.0f}, {p.y_m:6.0f}) m"


def describe_node_alert(alert: Alert, t: float) -> str | None:
    """One line for a node alert event worth printing (new alerts), else None."""
    if alert.event is not AlertEvent.NEW:
        return None
    state = alert.after
    what = (
        f"{alert.kind.value.upper():<8} {alert.border_kind.value:<5} {_direction(alert.direction)}"
    )
    tail = f"p={state.p_cross:.2f}"
    if alert.kind is AlertKind.APPROACH and state.time_to_cross_s is not None:
        tail = f"in ~{state.time_to_cross_s:.0f} s"
    return (
        f"[t={t:6.1f} s] {alert.provenance.node_id:<9} new  {what}  "
        f"{state.class_hint.label.value:<7} {tail:<9} at {_where(alert)}  {alert.track_id}"
    )


def describe_centre_event(event: CentreAlertEvent, t: float, members_before: int) -> str | None:
    """One line for a centre alert event worth printing: new, a node joining, or the end."""
    alert = event.alert
    nodes = ", ".join(f"{m.node_id} ({m.alert_id})" for m in event.members)
    head = f"[t={t:6.1f} s] {'CENTRE':<9}"
    if alert.event is AlertEvent.NEW:
        what = (
            f"{alert.kind.value.upper():<8} {alert.border_kind.value:<5} "
            f"{_direction(alert.direction)}"
        )
        return f"{head} NEW  {alert.alert_id:<11} {what}  at {_where(alert)}  from {nodes}"
    if alert.event is AlertEvent.END:
        reason = alert.end_reason.value if alert.end_reason else "ended"
        return f"{head} end  {alert.alert_id:<11} {reason}; nodes: {nodes}"
    if len(event.members) > members_before:
        return f"{head} +    {alert.alert_id:<11} joined: {nodes}"
    return None


@dataclass(slots=True)
class _Watcher:
    """The exercise's operator console: subscribes to node alerts, centre alerts and the
    centre's picture, prints alert lines and keeps the pictures for scoring."""

    url: str
    centre: CentreTopics
    console: _Console
    start: datetime
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    node_events: int = 0
    centre_events: int = 0
    pictures: list[Picture] = field(default_factory=list)
    rejected: int = 0
    _seen: set[str] = field(default_factory=set)
    _members: dict[str, int] = field(default_factory=dict)

    async def run(self) -> None:
        host, port = _host_port(self.url)
        client = aiomqtt.Client(
            host,
            port,
            identifier=f"borderwatch-exercise-console-{secrets.token_hex(3)}",
            protocol=aiomqtt.ProtocolVersion.V5,
            max_queued_incoming_messages=10_000,
        )
        async with client:
            await client.subscribe(
                [(topics.alert(), 1), (self.centre.alert(), 1), (self.centre.picture(), 0)]
            )
            self.ready.set()
            async for message in client.messages:
                payload = message.payload
                data = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
                try:
                    self._on(str(message.topic), data)
                except (MessageError, ValidationError) as exc:
                    self.rejected += 1
                    log.warning("console: message on %s not understood: %s", message.topic, exc)

    def _t(self, at: datetime) -> float:
        return (at - self.start).total_seconds()

    def _on(self, topic: str, payload: bytes) -> None:
        if topic == self.centre.picture():
            picture = Picture.model_validate_json(payload)
            if picture.time >= self.start:  # a retained picture of an earlier run is not ours
                self.pictures.append(picture)
        elif topic == self.centre.alert():
            event = CentreAlertEvent.model_validate_json(payload)
            if event.alert.msg_id in self._seen:
                return
            self._seen.add(event.alert.msg_id)
            self.centre_events += 1
            before = self._members.get(event.alert.alert_id, 0)
            self._members[event.alert.alert_id] = len(event.members)
            line = describe_centre_event(event, self._t(event.alert.time), before)
            if line:
                self.console.line(line)
        else:
            message = parse_message(payload)
            if not isinstance(message, Alert) or message.msg_id in self._seen:
                return
            self._seen.add(message.msg_id)
            self.node_events += 1
            line = describe_node_alert(message, self._t(message.time))
            if line:
                self.console.line(line)


# ------------------------------------------------------------------------------------ feeder


async def feed(
    sim: Simulation,
    broker_url: str,
    clock: ExerciseClock,
    owner: dict[int, str],
    duration_s: float,
    taken: Callable[[str], int],
) -> Counter[str]:
    """Publish every scan of the sensors in ``owner`` (sensor index → node id) when ``clock``
    reaches its time, one Detection message per detection, stamped ``clock.start + t``.

    The clock is held from each scan's time until the node has taken in all it was sent
    (``taken``: node id → detection messages taken in so far; at most
    :data:`CATCH_UP_TIMEOUT_S`): a node that falls behind slows the exercise down instead of
    finding its detections late. Returns the number of detections published per node.
    """
    epoch = datetime.fromtimestamp(clock.start, UTC)
    publishers = {
        node_id: Publisher(
            frame=sim.frame,
            node_id=node_id,
            epoch=epoch,
            sensor_ids=sim.sensor_ids,
            software_version=__version__,
            simulated=True,
            exercise=True,
        )
        for node_id in sorted(set(owner.values()))
    }
    sent: Counter[str] = Counter()
    host, port = _host_port(broker_url)
    client = aiomqtt.Client(
        host,
        port,
        identifier=f"borderwatch-exercise-feeder-{secrets.token_hex(3)}",
        protocol=aiomqtt.ProtocolVersion.V5,
        # A scan is a burst of small messages: Nagle's algorithm would hold all but the first
        # until the broker's delayed ACK (up to 40 ms on Linux).
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    async with client:
        for scan in sim.scans:
            node_id = owner.get(scan.sensor)
            if node_id is None or scan.t > duration_s:
                continue
            await clock.until(scan.t)
            # Held while the scan is on its way: no node steps past it before it has it all.
            clock.hold()
            topic = topics.sensor_detections(node_id, sim.sensor_ids[scan.sensor])
            for detection in batch_to_detections(scan.detections, publishers[node_id]):
                await client.publish(topic, detection.model_dump_json().encode(), qos=0)
            sent[node_id] += len(scan.detections)
            await _wait_for(
                functools.partial(_at_least, taken, node_id, sent[node_id]),
                CATCH_UP_TIMEOUT_S,
                f"node {node_id} taking in its detections",
                poll_s=0.001,
            )
            clock.resume()
    return sent


# ----------------------------------------------------------------------------------- running


@dataclass(slots=True)
class _Run:
    """Everything an exercise run leaves for scoring."""

    sim: Simulation
    start: datetime
    duration_s: float
    owner: dict[int, str]
    recorders: dict[str, _Recorder]
    nodes: dict[str, Node]
    centre: Centre
    watcher: _Watcher
    detections: Counter[str]
    outboxes: dict[str, Path]
    store_url: str
    speed: float
    wall_s: float
    held_wall_s: float


async def _wait_for(
    condition: Callable[[], bool], timeout: float, what: str, poll_s: float = 0.02
) -> bool:
    """Poll ``condition()`` every ``poll_s``; False (logged) when it is not met within
    ``timeout`` (s, wall)."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(poll_s)
    except TimeoutError:
        log.warning("exercise: %s not reached within %.0f s", what, timeout)
        return False
    return True


def _all_connected(nodes: Sequence[Node], centre: Centre, watcher: _Watcher) -> bool:
    return (
        centre.connected
        and watcher.ready.is_set()
        and all(n.mqtt is not None and n.mqtt.connected for n in nodes)
        and all(h.connected for n in nodes for h in n.sensor_health())
    )


def _at_least(count: Callable[[str], int], key: str, n: int) -> bool:
    return count(key) >= n


def _taken(node: Node) -> int:
    """Messages the node's sensor stage has handled (every detection message is one)."""
    return sum(c.messages for c in node.stage.counters.values())


def _caught_up(
    nodes: Sequence[Node], recorders: dict[str, _Recorder], centre: Centre, watcher: _Watcher
) -> bool:
    """Every outbox is empty, the centre has every node alert event, the console every
    centre alert event."""
    sent = sum(len(r.alerts) for r in recorders.values())
    return (
        all(n.mqtt is None or n.mqtt.backlog()[0] == 0 for n in nodes)
        and centre.stats.messages["alert"] >= sent
        and watcher.centre_events >= centre.stats.centre_alert_events
    )


async def _progress(
    clock: ExerciseClock,
    console: _Console,
    recorders: dict[str, _Recorder],
    watcher: _Watcher,
    duration_s: float,
) -> None:
    while True:
        await asyncio.sleep(0.25)
        t = min(clock.scenario_t(), duration_s)
        tracks = " ".join(f"{n} {r.tracks_now}" for n, r in recorders.items())
        fused = len(watcher.pictures[-1].tracks) if watcher.pictures else 0
        console.progress(
            t,
            f"  t = {t:5.0f} s of {duration_s:.0f} | tracks: {tracks}, centre {fused} | "
            f"alert events: nodes {watcher.node_events}, centre {watcher.centre_events}",
        )


async def _run(
    sim: Simulation,
    out_dir: Path,
    speed: float,
    broker_url: str | None,
    console: _Console,
    web: socket.socket | None = None,
) -> _Run:
    duration_s = sim.scenario.duration_s
    layout = node_sensors(sim.scenario)
    if not layout:
        raise ExerciseError(f"scenario {sim.scenario.name} has no sensor on a platform: no nodes")
    owner = {j: node_id for node_id, sensors in layout.items() for j in sensors}
    write_border(out_dir / "border.geojson", sim)
    async with mqtt_broker(broker_url) as url:
        clock = ExerciseClock(float(int(time.time())), speed)
        start = datetime.fromtimestamp(clock.start, UTC)
        recorders = {n: _Recorder(start, n) for n in layout}
        outboxes = {n: out_dir / f"{n}-outbox.sqlite3" for n in layout}
        for path in outboxes.values():  # a fresh outbox: nothing of an earlier run is sent
            for stale in path.parent.glob(path.name + "*"):
                stale.unlink()
        nodes = {
            n: Node(
                scaled_node_config(
                    node_config(n, [sim.sensor_ids[j] for j in sensors], sim, url, out_dir),
                    speed,
                ),
                [recorders[n]],
                clock=clock,
            )
            for n, sensors in layout.items()
        }
        for n, node in nodes.items():
            recorders[n].attach(node)
        centre_cfg = centre_config(sim, url, out_dir, speed)
        (out_dir / "centre.db").unlink(missing_ok=True)
        centre = Centre(centre_cfg, clock=clock)
        watcher = _Watcher(url, CentreTopics(CENTRE_ID), console, start)
        server = None if web is None else _console_server(centre, out_dir, web)
        wall0 = time.monotonic()
        async with asyncio.TaskGroup() as tasks:
            web_task = None if server is None else tasks.create_task(server.run(), name="web")
            centre_task = tasks.create_task(centre.run(), name="centre")
            node_tasks = [tasks.create_task(n.run(), name=i) for i, n in nodes.items()]
            watch_task = tasks.create_task(watcher.run(), name="console")
            if not await _wait_for(
                lambda: _all_connected(list(nodes.values()), centre, watcher),
                READY_TIMEOUT_S,
                "every service connected",
            ):
                for node in nodes.values():
                    node.stop()
                centre.stop()
                watch_task.cancel()
                raise ExerciseError(f"the services did not all connect to {url}")
            clock.begin()
            progress_task = tasks.create_task(
                _progress(clock, console, recorders, watcher, duration_s), name="progress"
            )
            detections = await feed(sim, url, clock, owner, duration_s, lambda n: _taken(nodes[n]))
            await clock.until(duration_s + SETTLE_S)
            await _wait_for(
                lambda: _caught_up(list(nodes.values()), recorders, centre, watcher),
                DRAIN_TIMEOUT_S,
                "outboxes drained and alerts received",
            )
            for node in nodes.values():
                node.stop()
            await asyncio.gather(*node_tasks)
            centre.stop()
            await centre_task
            watch_task.cancel()
            progress_task.cancel()
            if server is not None and web_task is not None:
                server.stop()
                await web_task
        console.end_progress()
        wall_s = time.monotonic() - wall0
    return _Run(
        sim=sim,
        start=start,
        duration_s=duration_s,
        owner=owner,
        recorders=recorders,
        nodes=nodes,
        centre=centre,
        watcher=watcher,
        detections=detections,
        outboxes=outboxes,
        store_url=centre_cfg.store.url,
        speed=speed,
        wall_s=wall_s,
        held_wall_s=clock.held_wall_s,
    )


def _console_server(centre: Centre, out_dir: Path, sock: socket.socket) -> ConsoleServer:
    """The centre's web console on the listening socket ``sock``, showing the border."""
    from borderwatch.config.web import WebSettings
    from borderwatch.edge.web.centre import CentreConsole
    from borderwatch.edge.web.server import ConsoleServer

    view = CentreConsole(centre, WebSettings(border=out_dir / "border.geojson"))
    host, port = sock.getsockname()[:2]
    return ConsoleServer(view, f"{host}:{port}", sock=sock)


# ----------------------------------------------------------------------------------- scoring


def _platforms(sim: Simulation) -> dict[str, Trajectory]:
    duration = sim.scenario.duration_s
    return {p.name: platform_trajectory(p, duration) for p in sim.scenario.platforms}


def _seen_by(
    sim: Simulation,
    platforms: dict[str, Trajectory],
    sensors: Sequence[int],
    times: np.ndarray[Any, np.dtype[np.float64]],
    xy: np.ndarray[Any, np.dtype[np.float64]],
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Which points ``xy`` (m, one per entry of ``times``) lie in the field of view of any of
    ``sensors`` at their time (range and sector; detection probability aside)."""
    seen = np.zeros(len(times), dtype=bool)
    unique, inverse = np.unique(times, return_inverse=True)
    for j in sensors:
        cfg = sim.scenario.sensors[j]
        pose = sensor_pose(cfg, platforms, unique)
        for k in range(unique.size):
            rows = np.flatnonzero(inverse == k)
            seen[rows] |= in_view(cfg.fov, pose.xy[k], float(pose.heading_rad[k]), xy[rows])
    return seen


def visible_truth(
    sim: Simulation, sensors: Sequence[int], times: np.ndarray[Any, np.dtype[np.float64]]
) -> StateTable:
    """Truth at ``times`` (s), only the targets in view of ``sensors`` at each time."""
    times = np.unique(times[(times >= 0.0) & (times <= sim.scenario.duration_s)])
    truth = truth_table(sim.targets, times)
    keep = np.flatnonzero(_seen_by(sim, _platforms(sim), sensors, truth.t, truth.xy))
    ids = sim.target_ids
    return StateTable(
        t=truth.t[keep],
        ids=[ids[i] for i in truth.truth_id[keep].tolist()],
        xy=truth.xy[keep],
        v=truth.v[keep],
    )


def _state_table(
    sim: Simulation, rows: Sequence[tuple[float, str, float, float, float, float]]
) -> StateTable:
    if not rows:
        return StateTable(np.zeros(0), [], np.zeros((0, 2)), np.zeros((0, 2)))
    t = np.array([r[0] for r in rows], dtype=np.float64)
    lat = np.array([r[2] for r in rows], dtype=np.float64)
    lon = np.array([r[3] for r in rows], dtype=np.float64)
    xy = sim.frame.to_enu(lat, lon)
    v = np.array([(r[4], r[5]) for r in rows], dtype=np.float64).reshape(-1, 2)
    keep = t <= sim.scenario.duration_s
    return StateTable(
        t[keep], [r[1] for r, k in zip(rows, keep, strict=True) if k], xy[keep], v[keep]
    )


def _alert_rows(sim: Simulation, alerts: Sequence[Alert], start: datetime) -> list[AlertRow]:
    crossing = [a for a in alerts if a.kind is AlertKind.CROSSING]
    if not crossing:
        return []
    p = [a.after.position for a in crossing]
    xy = sim.frame.to_enu(np.array([q.lat_deg for q in p]), np.array([q.lon_deg for q in p]))
    return [
        AlertRow(
            t=(a.time - start).total_seconds(),
            track_id=a.track_id,
            event=a.event.value,
            direction=a.direction,
            x=float(xy[i, 0]),
            y=float(xy[i, 1]),
            p_cross=a.after.p_cross,
        )
        for i, a in enumerate(crossing)
    ]


def score_crossings(
    sim: Simulation,
    sensors: Sequence[int],
    alerts: Sequence[AlertRow],
    crossings: Sequence[TruthCrossing],
    rules: CrossingRules | None = None,
) -> dict[str, Any]:
    """Crossings in view of ``sensors`` against ``alerts`` (``new`` events matched one-to-one;
    an alert matches a crossing in the same direction within ``rules.radius_m`` and the time
    window). ``in_view`` counts the crossings whose point was in view at their time, plus any
    alerted outside it; ``false_alerts`` are ``new`` alerts matched to no crossing."""
    t = np.array([c.t for c in crossings], dtype=np.float64)
    xy = np.array([(c.x, c.y) for c in crossings], dtype=np.float64).reshape(-1, 2)
    seen = _seen_by(sim, _platforms(sim), sensors, t, xy)
    result = match_crossings(crossings, alerts, [None] * len(alerts), rules or CrossingRules())
    matched = {c for c, _a in result.matches}
    in_view = {i for i in range(len(crossings)) if seen[i]} | matched
    d = result.delay_s
    return {
        "in_view": len(in_view),
        "alerted": len(matched),
        "missed": len(in_view - matched),
        "false_alerts": result.false_alerts,
        "new_alerts": result.new_alerts,
        "delay_s": {
            "median": round(float(np.median(d)), 2) if d.size else None,
            "max": round(float(np.max(d)), 2) if d.size else None,
        },
    }


def score_picture(truth: StateTable, tracks: StateTable) -> dict[str, Any]:
    """GOSPA (c = 50 m, p = 2), RMSE and identity figures of a track picture against truth."""
    s = score_run(truth, tracks, c=GOSPA_C_M, p=GOSPA_P)
    g = s["gospa"]
    return {
        "snapshots": s["steps"],
        "gospa_m": g["mean"],
        "gospa_per_target_m": g["mean_per_target_normalised"],
        "missed_per_snapshot": g["mean_missed_count"],
        "false_per_snapshot": g["mean_false_count"],
        "rmse_m": s["rmse_m"],
        "id_switches": s["id_switches"],
        "truths": s["truths"]["ids"],
        "tracks": s["tracks"]["ids"],
    }


def _picture_rows(
    pictures: Sequence[Picture], start: datetime
) -> list[tuple[float, str, float, float, float, float]]:
    rows: list[tuple[float, str, float, float, float, float]] = []
    last = -math.inf
    for picture in pictures:
        t = (picture.time - start).total_seconds()
        if t <= last:  # a re-sent picture (reconnect) or one for the same time
            continue
        last = t
        rows.extend(
            (
                t,
                k.track_id,
                k.position.lat_deg,
                k.position.lon_deg,
                k.velocity.vx_mps,
                k.velocity.vy_mps,
            )
            for k in picture.tracks
        )
    return rows


def _received(store_url: str) -> tuple[Counter[str], list[list[Alert]]]:
    """Node alert events the centre stored, per node (distinct msg_ids), and each centre
    alert's events in lifecycle order."""
    per_node: Counter[str] = Counter()
    centre_alerts: list[list[Alert]] = []
    with AlertStore.open(store_url) as store:
        for view in store.alerts(limit=1_000_000):
            node_id = view.latest.provenance.node_id
            if node_id == CENTRE_ID:
                centre_alerts.append(store.alert_events(view.alert_id))
            else:
                per_node[node_id] += view.event_count
    return per_node, centre_alerts


def _in_outbox(path: Path, msg_ids: set[str]) -> int:
    """How many of ``msg_ids`` still wait in the outbox file at ``path``."""
    if not path.exists():
        return 0
    with Outbox(path) as outbox:
        return sum(1 for item in outbox.peek(1_000_000) if item.msg_id in msg_ids)


def summarise(run: _Run) -> dict[str, Any]:
    """The exercise's JSON summary (see ``docs/exercise.md``)."""
    sim = run.sim
    crossings = truth_crossings(truth_states(sim), sim.border)
    crossings = [c for c in crossings if c.t <= run.duration_s]
    received, centre_alerts = _received(run.store_url)
    layout: dict[str, list[int]] = {}
    for j, node_id in sorted(run.owner.items()):
        layout.setdefault(node_id, []).append(j)
    nodes: dict[str, Any] = {}
    for node_id, sensors in layout.items():
        recorder = run.recorders[node_id]
        ids = {a.msg_id for a in recorder.alerts}
        pending = _in_outbox(run.outboxes[node_id], ids)
        tracks = _state_table(sim, recorder.rows)
        nodes[node_id] = {
            "sensors": [sim.sensor_ids[j] for j in sensors],
            "detections_published": run.detections[node_id],
            "tracker": run.nodes[node_id].tracker.stats.as_dict(),
            "readings_dropped": run.nodes[node_id].dropped,
            "step_ms_p90": round(
                float(np.percentile(run.nodes[node_id].step_seconds or [0.0], 90)) * 1e3, 1
            ),
            "steps": len(run.nodes[node_id].step_seconds),
            "alert_events": {
                "sent": len(ids),
                "received_by_centre": received[node_id],
                "in_outbox_at_stop": pending,
                "lost": len(ids) - received[node_id] - pending,
            },
            "crossings": score_crossings(
                sim, sensors, _alert_rows(sim, recorder.alerts, run.start), crossings
            ),
            "tracks": score_picture(visible_truth(sim, sensors, tracks.t), tracks),
        }
    all_sensors = sorted(run.owner)
    centre_events = [e for events in centre_alerts for e in events]
    merged = sum(
        1 for events in centre_alerts if len(events[-1].provenance.contributing_node_ids) > 1
    )
    picture = _state_table(sim, _picture_rows(run.watcher.pictures, run.start))
    stats = run.centre.stats
    return {
        "scenario": sim.scenario.name,
        "seed": sim.seed,
        "duration_s": run.duration_s,
        "speed": run.speed,
        "wall_s": round(run.wall_s, 1),
        "held_wall_s": round(run.held_wall_s, 1),
        "start_utc": run.start.isoformat(),
        "truth": {
            "targets": len(sim.targets),
            "crossings": len(crossings),
        },
        "nodes": nodes,
        "centre": {
            "alerts": len(centre_alerts),
            "alert_events": len(centre_events),
            "merged_alerts": merged,
            "nodes_heard": sorted(n for n, k in received.items() if k),
            "node_alert_events_received": sum(received.values()),
            "duplicates_dropped": stats.duplicates,
            "rejected": dict(stats.rejected),
            "crossings": score_crossings(
                sim, all_sensors, _alert_rows(sim, centre_events, run.start), crossings
            ),
            "picture": score_picture(visible_truth(sim, all_sensors, picture.t), picture),
        },
        "console": {
            "node_alert_events": run.watcher.node_events,
            "centre_alert_events": run.watcher.centre_events,
            "pictures": len(run.watcher.pictures),
            "not_understood": run.watcher.rejected,
        },
        "notes": [
            "crossings in_view: truth crossings whose point was in a sensor's field of view at "
            "the crossing time (plus any alerted outside it); an alert matches a crossing in "
            "the same direction within 50 m, from 10 s before to 30 s after it",
            "tracks and picture: GOSPA (c = 50 m, p = 2) against the targets in view of the "
            "node's (the centre: every node's) sensors, at each published snapshot",
            "paced by the wall clock: figures of two runs are close, not bit-identical",
        ],
    }


# ----------------------------------------------------------------------------- entry points


def run_exercise(
    scenario: str | Path | Scenario,
    out_dir: Path,
    *,
    speed: float = 10.0,
    seed: int | None = None,
    broker_url: str | None = None,
    duration_s: float | None = None,
    stream: TextIO | None = None,
    http: str | None = None,
) -> dict[str, Any]:
    """Run the exercise, print its alerts, progress and summary to ``stream``, and write
    ``out_dir/summary.json``; returns the summary.

    Args:
        scenario: a scenario (file path, shipped name, or a validated :class:`Scenario`).
        out_dir: where the border, the outboxes, the centre's database and the summary go.
        speed: scenario seconds per wall-clock second.
        seed: overrides the scenario's seed.
        broker_url: ``mqtt://HOST:PORT`` of a broker to use; None: start one for the run.
        duration_s: run only this many scenario seconds (at most the scenario's duration).
        stream: where the console lines go (default standard output); on a terminal the
            progress line is redrawn in place.
        http: ``HOST:PORT`` to serve the centre's web console on while the exercise runs
            (the next free port of the following 20 if it is taken); None: not served.

    Raises:
        ConfigError: the scenario does not validate, or a platform name is not a node id.
        BrokerError: no broker was given and none could be started.
        ExerciseError: the services did not connect, or no sensor is on a platform.
    """
    from borderwatch.config.scenario import load_scenario
    from borderwatch.scenarios import resolve_scenario

    if not isinstance(scenario, Scenario):
        scenario = load_scenario(resolve_scenario(scenario))
    if duration_s is not None:
        scenario = scenario.model_copy(
            update={"duration_s": min(float(duration_s), scenario.duration_s)}
        )
    sim = simulate(scenario, seed=seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    console = _Console(stream or sys.stdout)
    web = _console_socket(http)
    _introduce(console, sim, speed)
    if web is not None:
        host, port = web.getsockname()[:2]
        console.line(f"  live picture: http://{host}:{port}/ (the centre's console, while it runs)")
        console.line("")
    try:
        run = asyncio.run(_run(sim, out_dir, speed, broker_url, console, web))
    finally:
        if web is not None:
            web.close()
    summary = summarise(run)
    (out_dir / "summary.json").write_text(
        json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    for line in summary_lines(summary, out_dir):
        console.line(line)
    return summary


def _console_socket(http: str | None) -> socket.socket | None:
    """A listening socket for the console at ``http`` or one of the next 20 ports (None
    without ``http``; logged and None when none is free)."""
    if http is None:
        return None
    from borderwatch.config.web import parse_http
    from borderwatch.edge.web.server import listen

    try:
        host, port = parse_http(http)
        return listen(host, port, tries=20)
    except (ValueError, BorderwatchError) as exc:
        log.error("exercise: the console is not served: %s", exc)
        return None


def _introduce(console: _Console, sim: Simulation, speed: float) -> None:
    layout = node_sensors(sim.scenario)
    sc = sim.scenario
    console.line(f"borderwatch exercise: {sc.name} (seed {sim.seed})")
    if sc.description:
        console.line(f"  {sc.description}")
    for node_id, sensors in layout.items():
        names = ", ".join(f"{sim.sensor_ids[j]} ({sc.sensors[j].type})" for j in sensors)
        console.line(f"  node {node_id:<9} {names}")
    console.line(f"  centre {CENTRE_ID}: fuses the nodes' tracks, one alert per crossing")
    console.line(
        f"  {len(sim.targets)} targets, {sc.duration_s:.0f} s of scenario at {speed:g}x "
        f"(about {sc.duration_s / speed:.0f} s)"
    )
    console.line("")


def _delay(crossings: dict[str, Any]) -> str:
    median = crossings["delay_s"]["median"]
    return "   n/a" if median is None else f"{median:5.1f} s"


def summary_lines(summary: dict[str, Any], out_dir: Path) -> list[str]:
    """The printed summary of a :func:`summarise` result."""
    truth = summary["truth"]
    centre = summary["centre"]
    lines = [
        "",
        f"Summary, scored against the simulation's truth ({truth['crossings']} real crossings, "
        f"{truth['targets']} targets; {summary['wall_s']:.0f} s wall time, "
        f"{summary['held_wall_s']:.0f} s of it waiting for busy nodes)",
        "  crossings   in view  alerted  missed  false  median delay   alert events "
        "sent/received   tracks GOSPA  RMSE",
    ]
    for node_id, node in summary["nodes"].items():
        c, a, k = node["crossings"], node["alert_events"], node["tracks"]
        lines.append(
            f"  {node_id:<10} {c['in_view']:>8} {c['alerted']:>8} {c['missed']:>7} "
            f"{c['false_alerts']:>6}  {_delay(c):>12}   "
            f"{a['sent']:>12}/{a['received_by_centre']:<8}"
            f"  {_m(k['gospa_m']):>12} {_m(k['rmse_m']):>6}"
        )
    c, p = centre["crossings"], centre["picture"]
    lines.append(
        f"  {'centre':<10} {c['in_view']:>8} {c['alerted']:>8} {c['missed']:>7} "
        f"{c['false_alerts']:>6}  {_delay(c):>12}   {'':>12} {'':<8}  {_m(p['gospa_m']):>12} "
        f"{_m(p['rmse_m']):>6}"
    )
    lost = sum(n["alert_events"]["lost"] for n in summary["nodes"].values())
    kept = sum(n["alert_events"]["in_outbox_at_stop"] for n in summary["nodes"].values())
    lines += [
        f"  centre: {centre['alerts']} alerts ({centre['merged_alerts']} merged from several "
        f"nodes) from {centre['node_alert_events_received']} node alert events of "
        f"{', '.join(centre['nodes_heard']) or 'no node'}; {lost} lost, {kept} left in "
        "outboxes at stop",
        f"  fused picture: {p['tracks']} tracks for {p['truths']} targets in view, "
        f"{p['false_per_snapshot']} false and {p['missed_per_snapshot']} missed per snapshot, "
        f"{p['id_switches']} ID switches",
        f"  files: {out_dir}/summary.json, centre.db (alerts, track histories), "
        "border.geojson, <node>-outbox.sqlite3",
    ]
    return lines


def _m(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} m"
