"""``borderwatch bench e2e``: detection to fused alert, through a real broker, end to end.

Four parties and two MQTT brokers on the loopback interface (one broker for all with
``--broker``)::

    load generator ──det (QoS 0, boat broker)──▶ node (own process)
        ──alerts, tracks (QoS 1, outbox; link broker)──▶ centre (own process)
        ──centre alert events (QoS 1, link broker)──▶ console (observer)

The boat broker stands for the boat's own network, where its sensors publish; the link
broker for the radio link to the centre. ``outage_s`` stops the link broker for that long
(:meth:`~borderwatch.edge.broker.EmbeddedBroker.interrupt`) while the boat's sensors go on:
the node's outbox keeps what it cannot send, and the figures say whether every alert still
reached the centre once.

* The **load generator** (this process) moves ``targets`` simulated people on a grid south of a
  straight green border; most walk north and cross it at times staggered over the run, the
  rest walk away from it. Each target is detected once a second (position, σ = 5 m); the
  targets are split into :data:`BURSTS_PER_S` bursts a second, like a sensor sweeping its
  field of view. Every detection of a burst is stamped with the burst's scheduled publish time
  (wall clock, UTC) and the burst is published as one MQTT message, a JSON array of Detection
  messages (a networked sensor's scan), to the node's ``mqtt_detections`` topic
  (``borderwatch/v1/node/<node>/sensor/<sensor>/det``).
* The **node** runs :class:`~borderwatch.edge.node.Node` as in the field: MQTT detections
  driver, sensor stage, tracker (``reorder_lag_s = 0``: nothing here is stamped late, unlike
  AIS fix times), MQTT output through its SQLite outbox.
* The **centre** runs :class:`~borderwatch.edge.centre.Centre` (SQLite store): it fuses the
  node's tracks and turns its alerts into centre alert events.
* The **console** (an observer client in this process) subscribes to the centre's alert topic
  and, for diagnosis, to the nodes' alert topic, and notes when each message arrives.

Latency of an alert event is the time the console receives the centre's alert event minus the
time of the detections whose scan raised it. A scan's alert carries the scan's time, which is
the burst's stamp, so the event is matched to its burst exactly (events the tracker raises
without a scan, such as the end of an alert of a lost track, match no burst and are counted
apart). All four clocks are the one wall clock of this machine.

The node and the centre run in processes of their own (``multiprocessing``, spawned) so that
the generator's and console's work does not share their interpreter; on a machine of two
cores the four processes (and the broker) still share the CPUs, which the figures include.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import multiprocessing
import os
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, Final
from urllib.parse import urlsplit

import aiomqtt
import numpy as np
from pydantic import TypeAdapter

from borderwatch import __version__
from borderwatch.config.centre import CentreConfig, CentreStoreSettings
from borderwatch.config.devices import MqttDetectionsDevice
from borderwatch.config.mqtt import MqttSettings
from borderwatch.config.node import FrameSettings, FusionSettings, NodeConfig
from borderwatch.config.tracker import TrackerConfig
from borderwatch.edge.broker import EmbeddedBroker
from borderwatch.edge.centre import Centre, CentreAlertEvent, CentreTopics
from borderwatch.edge.mqtt import topics
from borderwatch.edge.node import Node
from borderwatch.edge.outbox import Outbox
from borderwatch.errors import BorderwatchError
from borderwatch.fusion.borders import Border, BorderKind
from borderwatch.fusion.detections import DetectionBatch, FloatArray, IntArray, TargetClass
from borderwatch.schema import (
    Alert,
    Detection,
    Envelope,
    Publisher,
    batch_to_detections,
    parse_message,
)

log = logging.getLogger(__name__)

NODE_ID: Final = "bench-node"
SENSOR_ID: Final = "bench-det"
#: Encoder of a burst: one JSON array of Detection messages.
DETECTION_LIST: Final = TypeAdapter(list[Detection])
CENTRE_ID: Final = "bench-centre"
#: Deployment origin (WGS-84): the Drina near Zvornik; any origin would do.
ORIGIN: Final = FrameSettings(lat_deg=44.387, lon_deg=19.104, alt_m=150.0)
#: Bursts a second: at ``rate_hz`` a target is in every ``BURSTS_PER_S / rate_hz``-th one.
BURSTS_PER_S: Final = 10
#: Bursts are built before the run when they hold at most this many detections in all.
PREBUILD_MAX_DETECTIONS: Final = 400_000
#: Detection rates a target may have, Hz (divisors of :data:`BURSTS_PER_S`).
RATES_HZ: Final = (1, 2, 5, 10)
#: An outage (``outage_s``) of the centre's broker begins this long after the first burst, s.
OUTAGE_START_S: Final = 8.0
#: Load kept up after an outage ends, at least, s: the node's reconnect backoff is capped at
#: 30 s (its default), and its outbox must then drain.
AFTER_OUTAGE_S: Final = 40.0
#: Spacing of the targets' grid, m: far more than a gate, so the load is association-easy
#: and the figures measure the pipeline, not ambiguity.
SPACING_M: Final = 150.0
#: 1-σ position noise of a detection, m.
SIGMA_M: Final = 5.0
#: Share of the targets that cross the border during the run.
CROSSING_SHARE: Final = 0.7
#: Walking speeds, m/s.
SPEED_MPS: Final = (1.0, 2.0)
#: Seconds after the first detection before the first crossing: tracks must be confirmed and
#: their velocity known before a crossing can be alerted.
FIRST_CROSSING_S: Final = 4.0
#: Longest wait for the node, the centre and the broker to be ready, s.
READY_TIMEOUT_S: Final = 60.0
#: After the load stops: longest wait for the node's queue and outbox to empty, s.
DRAIN_TIMEOUT_S: Final = 20.0
#: After the node has drained: wait for the centre's last events to reach the console, s.
SETTLE_S: Final = 1.0


class BenchError(BorderwatchError):
    """The benchmark could not run (no broker, a party failed to start)."""


# ------------------------------------------------------------------------------------ load


@dataclass(frozen=True, slots=True)
class CrossingLoad:
    """Motion of the simulated targets, in the local plane (x east, y north, metres).

    The targets stand on a grid of cells :data:`SPACING_M` wide and ``band_m`` tall, one target
    a cell, so no two come closer than a gate. Each row of cells has a border line of its own
    along its northern edge (``lines_y``). Target ``i`` walks north or south at ``vy[i]`` m/s:
    at ``t`` s after the first burst it is at ``(x[i], y0[i] + vy[i] * t)``. Crossers reach
    their line at times spread evenly over ``[FIRST_CROSSING_S, seconds]``; the others start
    50 m south of their line and walk away from it.
    """

    x: FloatArray
    y0: FloatArray
    vy: FloatArray
    lines_y: FloatArray
    half_width_m: float
    crossers: int

    @classmethod
    def make(cls, targets: int, seconds: float, rng: np.random.Generator) -> CrossingLoad:
        """``targets`` targets for a run of ``seconds``, from ``rng``."""
        if targets < 1:
            raise ValueError("at least one target is needed")
        # Tall enough that a target never walks into its neighbour's path within the run.
        band = max(600.0, 200.0 + 3.0 * SPEED_MPS[1] * seconds)
        # About as wide as tall: columns * SPACING_M ~ rows * band.
        rows = max(1, round(math.sqrt(targets * SPACING_M / band)))
        columns = math.ceil(targets / rows)
        cell = rng.permutation(targets)  # crossers are spread over the grid and the bursts
        x = (cell % columns - (columns - 1) / 2) * SPACING_M
        line = (cell // columns) * -band
        speed = rng.uniform(*SPEED_MPS, targets)
        crossers = round(CROSSING_SHARE * targets)
        first = min(FIRST_CROSSING_S, seconds / 2)
        t_cross = rng.permutation(np.linspace(first, max(first, seconds), crossers))
        crossing = np.arange(targets) < crossers
        offset = np.full(targets, -50.0)
        offset[:crossers] = -t_cross * speed[:crossers]
        return cls(
            x=x.astype(np.float64),
            y0=(line + offset).astype(np.float64),
            vy=np.where(crossing, speed, -speed),
            lines_y=(np.arange(rows) * -band).astype(np.float64),
            half_width_m=(columns + 10) * SPACING_M / 2,
            crossers=crossers,
        )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def positions(self, t: float, index: IntArray) -> FloatArray:
        """True positions ``(n, 2)`` of targets ``index`` at ``t`` s, m."""
        return np.column_stack((self.x[index], self.y0[index] + self.vy[index] * t))

    def border(self) -> Border:
        """The green border lines, one a row of cells, each wider than the grid."""
        w = self.half_width_m
        lines = [np.array([[-w, y], [0.0, y], [w, y]]) for y in self.lines_y.tolist()]
        return Border(
            lines, [BorderKind.GREEN] * len(lines), [f"line-{k}" for k in range(len(lines))]
        )


class BurstMaker:
    """Detection messages of one burst: the targets of burst ``k % BURSTS_PER_S``, seen at a
    given time with Gaussian noise from ``rng``.

    Args:
        load: the targets' motion.
        start: wall time of the first burst (Unix seconds); also the messages' time axis.
        rng: noise source.
    """

    def __init__(
        self, load: CrossingLoad, start: float, rng: np.random.Generator, rate_hz: int = 1
    ) -> None:
        if rate_hz not in RATES_HZ:
            raise ValueError(f"rate_hz must be one of {RATES_HZ}, not {rate_hz}")
        self.load = load
        self.start = start
        self.rng = rng
        self.rate_hz = rate_hz
        origin = ORIGIN.local_frame()
        self.publisher = Publisher(
            frame=origin,
            node_id=NODE_ID,
            epoch=datetime.fromtimestamp(start, UTC),
            sensor_ids=[SENSOR_ID],
            software_version=__version__,
            simulated=True,
            exercise=False,
        )
        groups = BURSTS_PER_S // rate_hz
        slots = np.arange(len(load)) % groups
        self._members = [np.flatnonzero(slots == k) for k in range(groups)]

    def burst(self, k: int) -> tuple[datetime, list[Detection]]:
        """The stamp (scheduled time) and detections of burst ``k`` (at ``k / BURSTS_PER_S`` s)."""
        t = k / BURSTS_PER_S
        index = self._members[k % len(self._members)]
        xy = self.load.positions(t, index) + self.rng.normal(0.0, SIGMA_M, (index.size, 2))
        n = index.size
        batch = DetectionBatch.positions(
            np.full(n, t), xy, np.full(n, SIGMA_M), sensor=np.zeros(n, dtype=np.int64)
        )
        batch = dataclasses.replace(
            batch, cls=np.full(n, int(TargetClass.PERSON), dtype=np.int64), cls_conf=np.full(n, 0.8)
        )
        messages = batch_to_detections(batch, self.publisher)
        stamp = messages[0].time if messages else self.publisher.epoch
        return stamp, messages


# ---------------------------------------------------------------------------------- broker


# ------------------------------------------------------------------------------ the parties


def node_config(
    broker: str, workdir: Path, border: Path, sensor_broker: str | None = None
) -> NodeConfig:
    """The benchmark's node: one MQTT detections sensor (on ``sensor_broker``, default
    ``broker``), MQTT output to ``broker`` with its outbox in ``workdir``, no reorder window,
    steps at most every 20 ms."""
    parts = urlsplit(sensor_broker or broker)
    det_topic = topics.sensor_detections(NODE_ID, SENSOR_ID)
    return NodeConfig(
        node_id=NODE_ID,
        frame=ORIGIN,
        border=border,
        simulated=True,
        devices=[
            MqttDetectionsDevice(
                sensor_id=SENSOR_ID, url=f"mqtt://{parts.hostname}:{parts.port}/{det_topic}"
            )
        ],
        fusion=FusionSettings(min_step_interval_s=0.02, tracker=TrackerConfig(reorder_lag_s=0.0)),
        mqtt=MqttSettings(url=broker, outbox_path=workdir / "outbox.sqlite3"),
    )


def centre_config(broker: str, workdir: Path) -> CentreConfig:
    """The benchmark's centre: defaults (a persistent session on a broker started for the run),
    with its SQLite store in ``workdir``."""
    return CentreConfig(
        centre_id=CENTRE_ID,
        frame=ORIGIN,
        mqtt=MqttSettings(url=broker),
        store=CentreStoreSettings(url=f"sqlite:///{workdir / 'centre.db'}"),
    )


class _AlertCounter:
    """A node output that counts the alert events the node raises."""

    name = "bench-count"

    def __init__(self) -> None:
        self.alerts = 0

    async def publish(self, message: Envelope) -> None:
        if isinstance(message, Alert):
            self.alerts += 1


class _CountingCentre(Centre):
    """A centre that counts how often each node alert event gets past its de-duplication."""

    def __init__(self, config: CentreConfig) -> None:
        super().__init__(config)
        self.alert_deliveries: Counter[str] = Counter()

    async def _alert(self, alert: Alert, received_at: datetime) -> None:
        self.alert_deliveries[alert.msg_id] += 1
        await super()._alert(alert, received_at)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _until(ready: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def _serve(
    conn: Connection,
    run: Callable[[], Any],
    ready: Callable[[], bool],
    drained: Callable[[], bool],
    stop: Callable[[], None],
    count: Callable[[], int] = lambda: 0,
) -> dict[str, float]:
    """Run a party: say ``ready``; at ``go`` and ``stop`` note its CPU seconds, wall time and
    ``count``; then wait until ``drained`` (bounded) and stop it. Returns the notes."""
    task = asyncio.create_task(run())
    if not await _until(ready, READY_TIMEOUT_S):
        stop()
        await task
        raise BenchError("not ready in time (broker unreachable?)")
    conn.send("ready")
    marks: dict[str, float] = {}
    for mark in ("go", "stop"):
        command = await asyncio.to_thread(conn.recv)
        if command != mark:
            raise BenchError(f"expected {mark!r}, got {command!r}")
        marks[f"{mark}_cpu_s"], marks[f"{mark}_wall_s"] = _cpu_s(), time.monotonic()
        marks[f"{mark}_count"] = count()
    marks["drained"] = float(await _until(drained, DRAIN_TIMEOUT_S))
    stop()
    await task
    return marks


def _quiet_logs() -> None:
    # The parties' warnings (one per alert, one per message paho's full queue discards) would
    # flood the terminal; what they report is counted and returned instead.
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("mqtt").setLevel(logging.ERROR)


def _node_process(config_json: str, conn: Connection) -> None:
    """Entry of the node's process: run the node, then send its counters through ``conn``."""
    _quiet_logs()
    config = NodeConfig.model_validate_json(config_json)
    conn.send(asyncio.run(_node_party(config, conn)))


async def _node_party(config: NodeConfig, conn: Connection) -> dict[str, Any]:
    counter = _AlertCounter()
    node = Node(config, [counter])
    mqtt = node.mqtt
    assert mqtt is not None

    def drained() -> bool:
        # A burst is taken from the stage as a whole before its step ends: wait for the step.
        stats = node.tracker.stats
        taken = sum(c.detections for c in node.stage.counters.values())
        stepped = stats.detections_processed + sum(stats.rejected.values()) >= taken
        return (
            node.queue.empty()
            and not node.stage.has_detections()
            and stepped
            and len(mqtt.outbox) == 0
        )

    marks = await _serve(
        conn,
        node.run,
        lambda: mqtt.connected and all(d.health().connected for d in node.drivers),
        drained,
        node.stop,
        lambda: node.tracker.stats.detections_processed,
    )
    with Outbox(mqtt.outbox.path) as box:  # closed by the node: reopened to count what waits
        pending = sum(1 for item in box.peek(len(box)) if item.topic == topics.alert())
    (health,) = node.sensor_health()
    stage = node.stage.counters[SENSOR_ID]
    stats = node.tracker.stats
    steps = np.array(node.step_seconds) * 1000.0
    return {
        **marks,
        "alerts_raised": counter.alerts,
        "alerts_pending": pending,
        # Detections that reached the parser: one payload carries a whole burst.
        "received": stage.detections + sum(stage.skipped.values()) + health.errors,
        "parser_rejected": health.errors,
        "stage_skipped": sum(stage.skipped.values()),
        "queue_dropped": node.dropped,
        "tracker_rejected": sum(stats.rejected.values()),
        "processed": stats.detections_processed,
        "scans": stats.scans,
        "tracks_confirmed": stats.tracks_confirmed,
        "step_p50_ms": float(np.percentile(steps, 50)) if steps.size else math.nan,
        "step_p99_ms": float(np.percentile(steps, 99)) if steps.size else math.nan,
        "outbox_published": mqtt.stats.outbox_published,
    }


def _centre_process(config_json: str, conn: Connection) -> None:
    """Entry of the centre's process: run the centre, then send its counters."""
    _quiet_logs()
    config = CentreConfig.model_validate_json(config_json)
    conn.send(asyncio.run(_centre_party(config, conn)))


async def _centre_party(config: CentreConfig, conn: Connection) -> dict[str, Any]:
    centre = _CountingCentre(config)
    marks = await _serve(
        conn,
        centre.run,
        lambda: centre.connected,
        centre.idle,
        centre.stop,
    )
    deliveries = centre.alert_deliveries
    return {
        **marks,
        "alerts_received": len(deliveries),
        "alerts_duplicated": sum(n - 1 for n in deliveries.values()),
        "redelivered": centre.stats.duplicates,
        "tracks": centre.stats.messages["track"],
        "centre_alert_events": centre.stats.centre_alert_events,
        "dropped_inbox": centre.stats.dropped_inbox,
        "rejected": sum(centre.stats.rejected.values()),
    }


# ------------------------------------------------------------------- generator and console


def _client(broker: str, name: str) -> aiomqtt.Client:
    parts = urlsplit(broker)
    return aiomqtt.Client(
        parts.hostname or "127.0.0.1",
        parts.port or 1883,
        identifier=f"borderwatch-bench-{name}-{os.getpid()}",
        protocol=aiomqtt.ProtocolVersion.V5,
        max_queued_incoming_messages=0,
    )


def _payload(maker: BurstMaker, k: int) -> tuple[int, bytes]:
    _stamp, messages = maker.burst(k)
    return len(messages), DETECTION_LIST.dump_json(messages)


def _prebuilt_maker(
    load: CrossingLoad, rng: np.random.Generator, rate_hz: int, bursts: int
) -> tuple[BurstMaker, list[tuple[int, bytes]] | None]:
    """The load's burst maker and, when they fit in memory, every burst's payload built in
    advance: building a burst costs about as much as the node's reading it, and the load
    generator shares the machine's cores with the node. The first burst is scheduled after
    the building is done (its time estimated from a few trial bursts)."""
    if len(load) * rate_hz * bursts / BURSTS_PER_S > PREBUILD_MAX_DETECTIONS:
        return BurstMaker(load, time.time() + 0.5, rng, rate_hz), None
    trial = BurstMaker(load, time.time(), np.random.default_rng(0), rate_hz)
    began = time.perf_counter()
    for k in range(min(bursts, BURSTS_PER_S)):
        _payload(trial, k)
    per_burst = (time.perf_counter() - began) / min(bursts, BURSTS_PER_S)
    maker = BurstMaker(load, time.time() + 1.0 + 1.5 * per_burst * bursts, rng, rate_hz)
    return maker, [_payload(maker, k) for k in range(bursts)]


async def _generate(
    broker: str,
    maker: BurstMaker,
    bursts: int,
    late_s: list[float],
    prebuilt: list[tuple[int, bytes]] | None = None,
) -> int:
    """Publish ``bursts`` bursts on schedule (QoS 0, as a networked sensor does); returns the
    number of detections published. ``late_s`` collects how late each burst started, s."""
    topic = topics.sensor_detections(NODE_ID, SENSOR_ID)
    published = 0
    async with _client(broker, "sensor") as client:
        for k in range(bursts):
            # Built before its slot, so the stamp is the time the burst starts going out.
            count, payload = _payload(maker, k) if prebuilt is None else prebuilt[k]
            due = maker.start + k / BURSTS_PER_S
            await asyncio.sleep(max(0.0, due - time.time()))
            late_s.append(time.time() - due)
            # One scan, one message: the form a networked sensor should use (docs/drivers.md).
            await client.publish(topic, payload, qos=0)
            published += count
    return published


async def _console(
    broker: str, subscribed: asyncio.Event, into: list[tuple[float, str, bytes]]
) -> None:
    """Receive the centre's alert events and the nodes' alerts until cancelled, noting the
    wall time of each (parsed afterwards, so parsing does not delay the next receipt).
    Reconnects at once when the broker goes away (an outage run)."""
    while True:
        try:
            async with _client(broker, "console") as client:
                await client.subscribe([(CentreTopics(CENTRE_ID).alert(), 1), (topics.alert(), 1)])
                subscribed.set()
                async for message in client.messages:
                    payload = message.payload
                    into.append(
                        (
                            time.time(),
                            str(message.topic),
                            payload if isinstance(payload, bytes) else b"",
                        )
                    )
        except aiomqtt.MqttError:
            await asyncio.sleep(0.05)


# ----------------------------------------------------------------------------- the run


@dataclass(frozen=True, slots=True)
class _Party:
    name: str
    process: multiprocessing.process.BaseProcess
    conn: Connection

    async def receive(self, timeout_s: float) -> Any:
        if not await asyncio.to_thread(self.conn.poll, timeout_s):
            raise BenchError(f"{self.name}: no answer within {timeout_s:g} s")
        try:
            return self.conn.recv()
        except EOFError:
            raise BenchError(
                f"{self.name}: process ended (exit status {self.process.exitcode})"
            ) from None

    def end(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(10.0)


def _start_party(name: str, target: Callable[[str, Connection], None], config_json: str) -> _Party:
    context = multiprocessing.get_context("spawn")
    conn, child = context.Pipe()
    # Not a daemon: the centre starts its store's process. Each party is ended by _Party.end.
    process = context.Process(target=target, args=(config_json, child), name=f"bench-{name}")
    process.start()
    child.close()
    return _Party(name, process, conn)


def _percentiles_ms(seconds: list[float]) -> dict[str, float | None]:
    if not seconds:
        return {"p50": None, "p99": None, "max": None}
    ms = np.array(seconds) * 1000.0
    return {
        "p50": round(float(np.percentile(ms, 50)), 1),
        "p99": round(float(np.percentile(ms, 99)), 1),
        "max": round(float(ms.max()), 1),
    }


def _latencies(
    received: list[tuple[float, str, bytes]], start: float, bursts: int
) -> tuple[list[float], list[float], int, int]:
    """Latencies of centre alert events and of node alerts that match a burst, s; and the
    counts of distinct centre alert events received and of those matching no burst."""
    centre_topic = CentreTopics(CENTRE_ID).alert()
    centre: list[float] = []
    node: list[float] = []
    seen: set[str] = set()
    unmatched = 0
    for t_rx, topic, payload in received:
        if topic == centre_topic:
            alert = CentreAlertEvent.model_validate_json(payload).alert
        else:
            message = parse_message(payload)
            if not isinstance(message, Alert):
                continue
            alert = message
        if alert.msg_id in seen:
            continue
        seen.add(alert.msg_id)
        stamp = alert.time.timestamp()
        k = round((stamp - start) * BURSTS_PER_S)
        matched = 0 <= k < bursts and abs(stamp - (start + k / BURSTS_PER_S)) < 1e-3
        if topic == centre_topic:
            if matched:
                centre.append(t_rx - stamp)
            else:
                unmatched += 1
        elif matched:
            node.append(t_rx - stamp)
    events = sum(1 for _t, topic, _p in received if topic == centre_topic)
    return centre, node, events, unmatched


def _cpu_percent(report: dict[str, Any]) -> float:
    wall = float(report["stop_wall_s"] - report["go_wall_s"])
    return round(100.0 * float(report["stop_cpu_s"] - report["go_cpu_s"]) / wall, 1)


@dataclass(frozen=True, slots=True)
class _Run:
    """What one run is: the load and where its parties connect."""

    targets: int
    seconds: float
    rate_hz: int
    broker: str  # the node's output, the centre and the console
    sensor_broker: str  # the load generator and the node's detections driver
    outage: Callable[[float], Awaitable[None]] | None  # stops ``broker`` for that long
    outage_s: float


async def _run(
    run: _Run, workdir: Path, seed: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    targets, seconds, broker = run.targets, run.seconds, run.broker
    rng = np.random.default_rng(seed)
    load = CrossingLoad.make(targets, seconds, rng)
    border_path = workdir / "border.geojson"
    border_path.write_text(json.dumps(load.border().to_geojson()), encoding="utf-8")
    node_json = node_config(broker, workdir, border_path, run.sensor_broker).model_dump_json()
    parties = [
        _start_party("node", _node_process, node_json),
        _start_party("centre", _centre_process, centre_config(broker, workdir).model_dump_json()),
    ]
    node, centre = parties
    received: list[tuple[float, str, bytes]] = []
    subscribed = asyncio.Event()
    console = asyncio.create_task(_console(broker, subscribed, received))
    try:
        for party in parties:
            if await party.receive(READY_TIMEOUT_S) != "ready":
                raise BenchError(f"{party.name} did not start")
        async with asyncio.timeout(READY_TIMEOUT_S):
            await subscribed.wait()
        progress(f"node and centre ready; {targets} targets at {run.rate_hz} Hz for {seconds:g} s")
        bursts = max(1, round(seconds * BURSTS_PER_S))
        maker, prebuilt = _prebuilt_maker(load, rng, run.rate_hz, bursts)
        # The parties' counts and CPU time start with the load, not while it is being built.
        await asyncio.sleep(max(0.0, maker.start - time.time() - 0.1))
        for party in parties:
            party.conn.send("go")
        late_s: list[float] = []
        outage = None
        if run.outage is not None:
            outage = asyncio.create_task(_outage(run.outage, run.outage_s, maker.start, progress))
        published = await _generate(run.sensor_broker, maker, bursts, late_s, prebuilt)
        if outage is not None:
            await outage
        node.conn.send("stop")
        node_report: dict[str, Any] = await node.receive(DRAIN_TIMEOUT_S + 30.0)
        await asyncio.sleep(SETTLE_S)
        centre.conn.send("stop")
        centre_report: dict[str, Any] = await centre.receive(DRAIN_TIMEOUT_S + 30.0)
        await asyncio.sleep(SETTLE_S)
    finally:
        console.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await console
        for party in parties:
            party.end()
    centre_lat, node_lat, events, unmatched = _latencies(received, maker.start, bursts)
    return _result(
        run,
        published,
        late_s,
        node_report,
        centre_report,
        centre_lat,
        node_lat,
        events,
        unmatched,
    )


async def _outage(
    interrupt: Callable[[float], Awaitable[None]],
    seconds: float,
    start: float,
    progress: Callable[[str], None],
) -> None:
    await asyncio.sleep(max(0.0, start + OUTAGE_START_S - time.time()))
    progress(f"centre broker down for {seconds:g} s")
    await interrupt(seconds)
    progress("centre broker back")


def _result(
    run: _Run,
    published: int,
    late_s: list[float],
    node: dict[str, Any],
    centre: dict[str, Any],
    centre_lat: list[float],
    node_lat: list[float],
    events: int,
    unmatched: int,
) -> dict[str, Any]:
    load_s = node["stop_wall_s"] - node["go_wall_s"]
    rejected = node["parser_rejected"] + node["stage_skipped"] + node["tracker_rejected"]
    latency = _percentiles_ms(centre_lat)
    node_latency = _percentiles_ms(node_lat)
    return {
        "targets": run.targets,
        "rate_hz": run.rate_hz,
        "outage_s": run.outage_s,
        "seconds": round(load_s, 1),
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
        "max_ms": latency["max"],
        "latency_events": len(centre_lat),
        "detections_published": published,
        "detections_processed": node["processed"],
        "detections_per_s": round((node["stop_count"] - node["go_count"]) / load_s, 1),
        "drops": published - node["processed"],
        "drops_by_cause": {
            "mqtt": published - node["received"],
            "queue": node["queue_dropped"],
            "rejected": rejected,
        },
        "alerts_raised": node["alerts_raised"],
        "alerts_sent": node["alerts_raised"] - node["alerts_pending"],
        "alerts_pending": node["alerts_pending"],
        "alerts_received": centre["alerts_received"],
        "alerts_duplicated": centre["alerts_duplicated"],
        "alerts_lost": node["alerts_raised"] - node["alerts_pending"] - centre["alerts_received"],
        "redelivered": centre["redelivered"],
        "centre_alert_events": centre["centre_alert_events"],
        "centre_alert_events_received": events,
        "centre_alert_events_without_scan": unmatched,
        "node_alert_p50_ms": node_latency["p50"],
        "node_alert_p99_ms": node_latency["p99"],
        "node_step_p50_ms": round(node["step_p50_ms"], 2),
        "node_step_p99_ms": round(node["step_p99_ms"], 2),
        "node_cpu_percent": _cpu_percent(node),
        "centre_cpu_percent": _cpu_percent(centre),
        "centre_tracks_received": centre["tracks"],
        "centre_dropped": centre["dropped_inbox"],
        "centre_rejected": centre["rejected"],
        "tracks_confirmed": node["tracks_confirmed"],
        "generator_late_max_ms": round(1000.0 * max(late_s, default=0.0), 1),
        "drained": bool(node["drained"] and centre["drained"]),
    }


def run_e2e_bench(
    targets: int = 1000,
    seconds: float = 60.0,
    broker: str | None = None,
    *,
    rate_hz: int = 1,
    outage_s: float = 0.0,
    seed: int = 7,
    progress: Callable[[str], None] = lambda msg: None,
) -> dict[str, Any]:
    """Run the end-to-end benchmark (see the module docstring); returns its figures, JSON-ready,
    with a one-paragraph summary under ``"text"``.

    Args:
        targets: simultaneous targets.
        seconds: duration of the load, s (tracks need about 4 s before the first alert).
        broker: ``mqtt://HOST:PORT`` of a running broker for every party; None: start two on
            loopback, one between the load generator and the node (the boat's), one between
            the node and the centre.
        rate_hz: detections of each target a second (1, 2, 5 or 10).
        outage_s: stop the node-centre broker this long, starting :data:`OUTAGE_START_S`
            into the load (only with the brokers the bench starts); 0: no outage.
        seed: seed of the targets' motion and the detection noise.
        progress: called with a line of progress now and then.
    """
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    if rate_hz not in RATES_HZ:
        raise ValueError(f"rate_hz must be one of {RATES_HZ}, not {rate_hz}")
    if outage_s < 0:
        raise ValueError("outage_s must not be negative")
    if outage_s and broker is not None:
        raise ValueError("an outage needs the brokers the bench starts (no --broker)")
    if outage_s and seconds < OUTAGE_START_S + outage_s + AFTER_OUTAGE_S:
        raise ValueError(
            f"an outage of {outage_s:g} s needs seconds >= "
            f"{OUTAGE_START_S + outage_s + AFTER_OUTAGE_S:g} (it starts {OUTAGE_START_S:g} s in, "
            f"and the node needs up to {AFTER_OUTAGE_S:g} s after it to reconnect and drain)"
        )
    if broker is not None:
        MqttSettings(url=broker)  # refuses a bad URL before anything starts

    async def main() -> dict[str, Any]:
        with TemporaryDirectory(prefix="borderwatch-bench-e2e-") as tmp:
            workdir = Path(tmp)
            if broker is not None:
                run = _Run(targets, seconds, rate_hz, broker, broker, None, 0.0)
                result = await _run(run, workdir, seed, progress)
                result["broker"] = "external"
                return result
            # The link broker runs as a centre's does (persistent sessions, a deep queue): a
            # broker that forgot the centre's subscription at a restart would take the node's
            # backlog and deliver it to no one.
            boat, link = EmbeddedBroker(), EmbeddedBroker(persistent=bool(outage_s))
            async with boat as boat_url, link as url:
                progress(f"{link.backend} brokers: boat {boat_url}, node-centre {url}")
                outage = link.interrupt if outage_s else None
                run = _Run(targets, seconds, rate_hz, url, boat_url, outage, outage_s)
                result = await _run(run, workdir, seed, progress)
                result["broker"] = link.backend
                return result

    result = asyncio.run(main())
    result["text"] = _summary(result)
    return result


def _summary(r: dict[str, Any]) -> str:
    return (
        f"e2e ({r['broker']} broker): {r['targets']} targets at {r['rate_hz']} Hz for "
        f"{r['seconds']:g} s"
        + (f" with a {r['outage_s']:g} s outage of the centre's broker" if r["outage_s"] else "")
        + "; "
        f"detection to centre alert p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max "
        f"{r['max_ms']} ms over {r['latency_events']} events (target p50 <= 50, p99 <= 250); "
        f"node processed {r['detections_per_s']:g} detections/s, {r['drops']} dropped; alerts "
        f"sent {r['alerts_sent']}, received {r['alerts_received']}, lost {r['alerts_lost']}, "
        f"duplicated {r['alerts_duplicated']}; CPU node {r['node_cpu_percent']} %, centre "
        f"{r['centre_cpu_percent']} % of one core"
    )
