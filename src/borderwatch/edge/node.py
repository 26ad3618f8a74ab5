"""The edge node: devices → sensor stage → tracker → outputs, as one asyncio service.

::

    driver tasks ──sink──▶ readings queue (bounded, drops counted)
                                 │
                       ingest task: SensorStage (nav, radar, AIS, CO2, networked sensors)
                                 │ detections
                       fusion task: Tracker.step in a worker thread when detections arrive
                                    (at most every min_step_interval_s, at least every
                                    scan_interval_s)
                                 │ tracks, alerts, concealment events
                       outputs (log, JSON lines, MQTT ...)      health task: NodeState

All tasks live in one :class:`asyncio.TaskGroup`: when the node stops (``stop()``, a signal, or
cancellation) every task ends and every driver closes its device. Nothing a device sends can end
the node: drivers count bad input, the stage counts what it cannot use, and an output that fails
is logged and counted while the others go on.

The wall clock is read here and only here: a reading's reception time and the tracker's step
time come from ``clock``, so a test can drive the node on a clock of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from borderwatch import __version__
from borderwatch.config.node import NodeConfig
from borderwatch.drivers.base import Driver, Reading, SensorHealth
from borderwatch.drivers.registry import make_driver
from borderwatch.edge.ingest import SensorStage
from borderwatch.edge.mqtt import MqttOutput
from borderwatch.edge.tak import TakOutput
from borderwatch.errors import CommandError
from borderwatch.fusion.borders import load_border
from borderwatch.fusion.outputs import AlertEvent, BorderAlert, TrackTable
from borderwatch.fusion.reporting import DeadReckoningReporter
from borderwatch.fusion.tracker import StepResult, Tracker
from borderwatch.schema import (
    Alert,
    BorderKindName,
    ClassHint,
    Detection,
    Envelope,
    GeoPoint,
    NodeState,
    NodeStatus,
    PositionMeasurement,
    Publisher,
    QueueState,
    SensorState,
    SensorStatus,
    TargetClassName,
    Track,
    TrackStatus,
    alert_from_core,
    concealment_from_event,
    tracks_from_table,
)
from borderwatch.schema.convert import COAST_AFTER_S, time_at

log = logging.getLogger(__name__)

#: How long a stopping node lets its MQTT output send what is waiting, s.
OUTBOX_DRAIN_S = 2.0
#: Operator commands a node answers (``borderwatch/v1/node/<id>/cmd/<verb>``).
COMMAND_VERBS = ("state", "co2_start", "co2_mark", "co2_finish")


class Output(Protocol):
    """Where the node's messages go (log, file, MQTT, ...)."""

    name: str

    async def publish(self, message: Envelope) -> None:
        """Send or store one message; raising is logged and counted, never fatal."""


@runtime_checkable
class BatchOutput(Output, Protocol):
    """An output that stores a tracker step's alerts and track summaries together (one
    transaction each)."""

    async def publish_batch(self, messages: Sequence[Alert | Track]) -> None:
        """Send or store the messages; raising is logged and counted, never fatal."""


@runtime_checkable
class TrackView(Output, Protocol):
    """An output that also shows every confirmed track at each report interval (the full
    table, not only the dead-reckoned summaries that go over the radio): a console on the node
    itself. ``show_tracks`` runs on the event loop and must return at once (keep the table, it
    is not changed afterwards); raising is logged and counted, never fatal."""

    def show_tracks(self, table: TrackTable) -> None:
        """Take the confirmed tracks of the latest step."""


class Node:
    """One edge node (a boat or a mobile unit) running its devices and the fusion core.

    Args:
        config: validated node configuration.
        outputs: where tracks, alerts, concealment events and health reports go.
        clock: wall clock, Unix seconds (tests may pass their own).
        track_interval_s: seconds between track reports (alerts go out as soon as raised).
    """

    def __init__(
        self,
        config: NodeConfig,
        outputs: Sequence[Output] = (),
        *,
        clock: Callable[[], float] = time.time,
        track_interval_s: float = 1.0,
    ) -> None:
        self.config = config
        self.outputs = list(outputs)
        self.clock = clock
        self.track_interval_s = track_interval_s
        # Without MQTT settings, every track is reported every interval.
        self.reporter = DeadReckoningReporter(0.0, track_interval_s, COAST_AFTER_S)
        self.frame = config.frame.local_frame()
        start = clock()
        self.started_at = start
        self.epoch = datetime.fromtimestamp(int(start), UTC)
        self.stage = SensorStage(config, self.frame, self.epoch)
        border = load_border(config.border, self.frame) if config.border else None
        own = frozenset(m for d in config.devices if d.type == "ais" for m in d.own_mmsi)
        tracker_config = config.fusion.tracker
        if own:
            tracker_config = tracker_config.model_copy(
                update={"own_identities": own | tracker_config.own_identities}
            )
        self.tracker = Tracker(tracker_config, border)
        self.publisher = Publisher(
            frame=self.frame,
            node_id=config.node_id,
            epoch=self.epoch,
            sensor_ids=[d.sensor_id for d in config.devices],
            software_version=__version__,
            simulated=config.simulated,
            exercise=config.exercise,
        )
        self.queue: asyncio.Queue[Reading] = asyncio.Queue(config.queues.readings)
        self.drivers: list[Driver[Any]] = [
            make_driver(device, self._on_reading, clock=clock) for device in config.devices
        ]
        self.mqtt: MqttOutput | None = None
        if config.mqtt is not None:
            self.mqtt = MqttOutput(
                config.mqtt,
                config.node_id,
                border_kind_of=self._border_kind_of,
                simulated=config.simulated,
                exercise=config.exercise,
            )
            self.outputs.append(self.mqtt)
            self.track_interval_s = config.mqtt.track_interval_s
            self.reporter = DeadReckoningReporter(
                config.mqtt.track_dead_reckoning_m, config.mqtt.track_heartbeat_s, COAST_AFTER_S
            )
            for verb in COMMAND_VERBS:
                self.mqtt.on_command(verb, self._command_handler(verb))
        self.tak: TakOutput | None = None
        if config.tak is not None:
            self.tak = TakOutput(config.tak, self.publisher, clock=clock)
            self.outputs.append(self.tak)
        self.border = border
        self.dropped = 0
        self.published = 0
        self.errors: Counter[str] = Counter()
        self._open_alerts: dict[int, Alert] = {}
        self._reported: dict[str, Track] = {}
        self._last_tracks_t = -float("inf")
        self._last_pli_t = -float("inf")
        self._stop = asyncio.Event()
        self._detections_ready = asyncio.Event()
        self._flushed = False
        self.step_seconds: list[float] = []

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Ask the node to shut down cleanly (safe to call from a signal handler)."""
        self._stop.set()

    async def run(self) -> None:
        """Run until :meth:`stop` is called or the task is cancelled."""
        log.info("node %s starting with %d devices", self.config.node_id, len(self.config.devices))
        # Start-up objects (config, parsers, numpy) live for the node's life: keep them out of
        # the collector's generations so a full collection never stalls a tracker step.
        gc.collect()
        gc.freeze()
        try:
            async with asyncio.TaskGroup() as tasks:
                runners = [
                    tasks.create_task(d.run(), name=d.config.sensor_id) for d in self.drivers
                ]
                runners.append(tasks.create_task(self._ingest(), name="ingest"))
                runners.append(tasks.create_task(self._fusion(), name="fusion"))
                runners.append(tasks.create_task(self._health(), name="health"))
                mqtt = (
                    tasks.create_task(self.mqtt.run(), name="mqtt")
                    if self.mqtt is not None
                    else None
                )
                await self._stop.wait()
                for runner in runners:
                    runner.cancel()
                # The last step's alerts and the offline state go out while the link is up;
                # what the broker does not take in time stays in the outbox for the next start.
                await asyncio.gather(*runners, return_exceptions=True)
                await self._flush_final()
                if mqtt is not None:
                    await self._drain_outbox()
                    mqtt.cancel()
        finally:
            if not self._flushed:  # cancelled rather than stopped: still record the end
                await self._flush_final()
            if self.mqtt is not None:
                self.mqtt.close()
            if self.tak is not None:
                await self.tak.aclose()
            log.info("node %s stopped", self.config.node_id)

    async def _drain_outbox(self) -> None:
        """Wait up to ``OUTBOX_DRAIN_S`` for the MQTT output to send what is waiting."""
        assert self.mqtt is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + OUTBOX_DRAIN_S
        while self.mqtt.connected and self.mqtt.backlog()[0] and loop.time() < deadline:
            await asyncio.sleep(0.02)

    async def _flush_final(self) -> None:
        """Process what is still queued and publish the last state as offline."""
        self._flushed = True
        with contextlib.suppress(Exception):
            self._drain()
            await self._step()
        await self._publish(self.state(status=NodeStatus.OFFLINE))

    # ------------------------------------------------------------------ stages

    def _on_reading(self, reading: Reading) -> None:
        try:
            self.queue.put_nowait(reading)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("readings queue full: %d readings dropped so far", self.dropped)

    def _handle(self, reading: Reading) -> None:
        try:
            self.stage.handle(reading)
        except Exception:  # a reading the stage did not foresee must not stop the node
            self.errors["ingest"] += 1
            log.exception("reading from %s could not be handled; dropped", reading.sensor_id)

    def _drain(self) -> int:
        n = 0
        while True:
            try:
                reading = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                return n
            self._handle(reading)
            n += 1

    async def _ingest(self) -> None:
        while True:
            self._handle(await self.queue.get())
            self._drain()
            if self.stage.has_detections():
                self._detections_ready.set()

    async def _fusion(self) -> None:
        """Step the tracker soon after detections arrive (at most every min_step_interval_s,
        so a burst is taken whole) and at least every scan_interval_s (coasting, deletions
        and the reorder window's releases go on without new data)."""
        settings = self.config.fusion
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.scan_interval_s):
                    await self._detections_ready.wait()
            self._detections_ready.clear()
            started = loop.time()
            try:
                await self._step()
            except Exception:  # counted and logged; the next step starts afresh
                self.errors["fusion"] += 1
                log.exception("tracker step failed; its detections are dropped")
            await asyncio.sleep(max(0.0, settings.min_step_interval_s - (loop.time() - started)))

    async def _step(self) -> None:
        t = self.stage.time_of(self.clock())
        detections = self.stage.take_detections()
        started = time.perf_counter()
        result: StepResult = await asyncio.to_thread(self.tracker.step, detections, t)
        self.step_seconds.append(time.perf_counter() - started)
        del self.step_seconds[:-1000]
        # Alerts go out first, on their own: they do not wait for the track summaries.
        await self._publish_batch(
            [message for alert in result.alerts if (message := self._alert(alert)) is not None]
        )
        if result.tables and result.tracks.t - self._last_tracks_t >= self.track_interval_s:
            self._last_tracks_t = result.tracks.t
            self._show_tracks(result.tracks)
            # Building a thousand messages takes tens of milliseconds: in a worker thread,
            # so that readings and the outbox's sending go on meanwhile.
            tracks = await asyncio.to_thread(
                tracks_from_table,
                result.tracks,
                self.publisher,
                vessels=self.stage.ais.lookup,
                rows=self.reporter.select(result.tracks),
            )
            await self._publish_batch(tracks + self._ended_tracks(tracks))
        await self._concealments(t)
        if t - self._last_pli_t >= self.track_interval_s:
            self._last_pli_t = t
            await self._pli(t)

    async def _pli(self, t: float) -> None:
        """Publish the node's own position (its GPS estimate) as a position detection."""
        gps = next((d.sensor_id for d in self.config.devices if d.type == "gps"), None)
        nav = self.stage.nav_state(t)
        if gps is None or nav is None or not nav.valid:
            return
        cov = nav.cov[:2, :2]
        message = Detection(
            msg_id=self.publisher.make_msg_id(),
            time=time_at(nav.t, self.epoch),
            provenance=self.publisher.provenance((gps,)),
            measurement=PositionMeasurement(
                position=GeoPoint(lat_deg=nav.lat, lon_deg=nav.lon, alt_m=nav.alt_m),
                cov_m2=(
                    (float(cov[0, 0]), float(cov[0, 1])),
                    (float(cov[1, 0]), float(cov[1, 1])),
                ),
            ),
            class_hint=ClassHint(label=TargetClassName.BOAT, confidence=1.0),
        )
        await self._publish(message)

    async def _concealments(self, t: float) -> None:
        events = self.stage.take_events()
        if not events:
            return
        nav = self.stage.nav_state(t)
        position = GeoPoint(lat_deg=nav.lat, lon_deg=nav.lon) if nav and nav.valid else None
        for event in events:
            log.warning(
                "CO2 %s: vehicle %s %s (confidence %.2f, rise %.0f ppm): %s",
                event.sensor_id,
                event.vehicle_id,
                event.verdict,
                event.confidence,
                event.rise_ppm,
                event.reason,
            )
            try:
                message = concealment_from_event(event, self.publisher, position=position)
            except ValueError as exc:
                self.errors["concealment_conversion"] += 1
                log.error("CO2 session %s could not be converted: %s", event.session_id, exc)
                continue
            await self._publish(message)

    def _alert(self, alert: BorderAlert) -> Alert | None:
        """The alert message of a core alert (logged), or None when it cannot be converted."""
        previous = self._open_alerts.get(alert.alert_id)
        try:
            message = alert_from_core(alert, self.publisher, previous=previous)
        except ValueError as exc:
            self.errors["alert_conversion"] += 1
            log.error("alert %s could not be converted: %s", alert.alert_id, exc)
            return None
        if alert.event is AlertEvent.END:
            self._open_alerts.pop(alert.alert_id, None)
        else:
            self._open_alerts[alert.alert_id] = message
        log.warning(
            "ALERT %s %s %s track %s %s (p=%.2f)",
            message.alert_id,
            message.kind.value,
            message.event.value,
            message.track_id,
            message.direction,
            message.after.p_cross,
        )
        return message

    async def _publish(self, message: Envelope) -> None:
        for output in self.outputs:
            try:
                await output.publish(message)
            except Exception as exc:  # an output must never take the node down
                self.errors[f"output_{output.name}"] += 1
                log.error("output %s failed on %s: %s", output.name, message.type, exc)
            else:
                self.published += 1

    async def _publish_batch(self, messages: Sequence[Alert | Track]) -> None:
        """A step's alerts, then its track summaries: in one call to an output that takes
        them together, one by one to the others."""
        if not messages:
            return
        for output in self.outputs:
            try:
                if isinstance(output, BatchOutput):
                    await output.publish_batch(messages)
                else:
                    for message in messages:
                        await output.publish(message)
            except Exception as exc:  # an output must never take the node down
                self.errors[f"output_{output.name}"] += 1
                log.error("output %s failed on %d messages: %s", output.name, len(messages), exc)
            else:
                self.published += len(messages)

    def _ended_tracks(self, reported: list[Track]) -> list[Track]:
        """Remember the summaries just reported; for each track the tracker ended since the
        last report, its last summary again with status ``ended`` (receivers drop the track
        and, over MQTT, its retained topic is cleared)."""
        for track in reported:
            self._reported[track.track_id] = track
        ended = []
        for number in self.reporter.ended.tolist():
            last = self._reported.pop(f"{self.config.node_id}:{number}", None)
            if last is not None:
                ended.append(
                    last.model_copy(
                        update={"status": TrackStatus.ENDED, "msg_id": self.publisher.make_msg_id()}
                    )
                )
        return ended

    def _show_tracks(self, table: TrackTable) -> None:
        for output in self.outputs:
            if not isinstance(output, TrackView):
                continue
            try:
                output.show_tracks(table)
            except Exception as exc:  # a view must never take the node down
                self.errors[f"output_{output.name}"] += 1
                log.error("output %s failed on %d tracks: %s", output.name, len(table), exc)

    async def _health(self) -> None:
        while True:
            await asyncio.sleep(self.config.health.interval_s)
            await self._publish(self.state())

    def _camera_queues(self) -> list[QueueState]:
        """Each camera's frames handed to detection and not yet done, against its bound, and
        the frames dropped because detection was behind (``<sensor_id>.frames``)."""
        from borderwatch.drivers.camera import CameraDriver  # OpenCV only with cameras

        if not self.stage.cameras:
            return []
        out = []
        for driver in self.drivers:
            if isinstance(driver, CameraDriver):
                bound = driver.config.max_frames_in_flight
                out.append(
                    QueueState(
                        name=f"{driver.config.sensor_id}.frames",
                        depth=min(driver.credits.in_flight, bound),
                        capacity=bound,
                        dropped=driver.health().rejected.get("frames_dropped", 0),
                    )
                )
        return out

    # ------------------------------------------------------------------ commands

    def _border_kind_of(self, track: Track) -> BorderKindName:
        """Green or blue: the kind of the border segment nearest the track (blue without one)."""
        if self.border is None or track.border is None:
            return BorderKindName.BLUE
        return BorderKindName.from_core(int(self.border.kind[track.border.segment]))

    def _command_handler(self, verb: str) -> Callable[[dict[str, Any]], Awaitable[Any]]:
        async def handle(args: dict[str, Any]) -> Any:
            return await self.command(verb, args)

        return handle

    async def command(self, verb: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Carry out an operator command; returns the reply (JSON-ready).

        Verbs: ``co2_start`` (``sensor_id``, ``vehicle_id``, optional ``officer``) opens an
        inspection session on a CO2 probe; ``co2_mark`` (``sensor_id``) says the probe is in;
        ``co2_finish`` (``sensor_id``) ends the session (its verdict goes out as a Concealment
        message); ``state`` returns the health report. Raises :class:`CommandError` for an
        unknown verb or bad arguments, changing nothing.
        """
        t = self.stage.time_of(self.clock())
        if verb == "state":
            return self.state().model_dump(mode="json")
        if verb not in COMMAND_VERBS or verb == "state":
            raise CommandError(f"unknown command {verb!r}")
        sensor_id = args.get("sensor_id")
        detector = self.stage.co2.get(sensor_id) if isinstance(sensor_id, str) else None
        if detector is None:
            known = ", ".join(sorted(self.stage.co2)) or "none"
            raise CommandError(f"{sensor_id!r} is not a CO2 probe of this node (probes: {known})")
        if verb == "co2_start":
            vehicle_id = args.get("vehicle_id")
            officer = args.get("officer")
            if not isinstance(vehicle_id, str) or not vehicle_id.strip():
                raise CommandError("co2_start needs a vehicle_id")
            if officer is not None and not isinstance(officer, str):
                raise CommandError("officer must be a string")
            session_id = detector.start(t, vehicle_id.strip(), officer=officer)
            return {"ok": True, "session_id": session_id}
        if not detector.active:
            raise CommandError(f"no inspection session is open on {sensor_id}")
        if verb == "co2_mark":
            detector.mark_sample(t)
            return {"ok": True}
        self.stage.add_events(detector.finish(t))
        await self._concealments(t)
        return {"ok": True}

    # ------------------------------------------------------------------ health

    def sensor_health(self) -> list[SensorHealth]:
        """Each driver's health now."""
        now = self.clock()
        return [d.health(now) for d in self.drivers]

    def state(self, status: NodeStatus = NodeStatus.ONLINE) -> NodeState:
        """The node's health report now."""
        now = self.clock()
        t = self.stage.time_of(now)
        sensors = []
        error_counts: Counter[str] = Counter(self.errors)
        for health in self.sensor_health():
            counters = self.stage.counters[health.sensor_id]
            error_counts.update({f"{health.sensor_id}.{k}": v for k, v in health.rejected.items()})
            sensor_status = (
                SensorStatus(health.status)
                if health.status in ("ok", "stale", "fault")
                else SensorStatus.STALE
            )
            detail = health.detail or ("starting" if health.status == "starting" else "")
            sensors.append(
                SensorState(
                    sensor_id=health.sensor_id,
                    status=sensor_status,
                    last_data_time=None
                    if health.last_data_time is None
                    else datetime.fromtimestamp(health.last_data_time, UTC),
                    messages=health.messages,
                    detections=counters.detections,
                    errors=health.errors,
                    detail=detail[:200],
                )
            )
        for reason, count in self.tracker.stats.rejected.items():
            error_counts[f"fusion.{reason}"] += count
        if self.tak is not None:
            error_counts.update(self.tak.error_counts())
        if self.dropped:
            error_counts["queue.readings"] = self.dropped
        backlog, oldest = self.mqtt.backlog() if self.mqtt is not None else (0, None)
        nav = self.stage.nav_state(t)
        position = None
        if nav is not None and nav.valid:
            position = GeoPoint(lat_deg=nav.lat, lon_deg=nav.lon)
        return NodeState(
            msg_id=self.publisher.make_msg_id(),
            time=time_at(t, self.epoch),
            provenance=self.publisher.provenance(()),
            status=status,
            uptime_s=max(0.0, now - self.started_at),
            position=position,
            sensors=tuple(sensors),
            messages_received=sum(h.messages for h in self.sensor_health()),
            messages_published=self.published,
            errors=sum(error_counts.values()),
            error_counts=dict(sorted(error_counts.items())),
            queues=(
                QueueState(
                    name="readings",
                    depth=self.queue.qsize(),
                    capacity=self.config.queues.readings,
                    dropped=self.dropped,
                ),
                *self._camera_queues(),
                *(self.tak.queue_states() if self.tak is not None else ()),
            ),
            outbox_backlog=backlog,
            outbox_oldest_time=oldest,
        )
