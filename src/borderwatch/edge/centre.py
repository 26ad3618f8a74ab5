"""The control centre: every node's tracks and alerts in; one picture, one alert per crossing out.

::

    broker ──link task (aiomqtt, reconnects)──▶ inbox (bounded, drops counted)
           alerts, states, positions, commands      │
    broker ──track link (own connection)─────▶ track inbox (bounded, drops counted)
           track summaries only                     │
                                   process task: the inbox first, then up to track_batch
                                     track summaries; decode ▸ de-duplicate by msg_id ▸
                                     tracks  → TrackToTrackFuser (centre frame, one update
                                               per node and time) + history batch
                                     alerts  → AlertDeduplicator ▸ centre alert events
                                               (queued to publish) ▸ alert writer → store
                                     states  → latest per node
                                     commands (acknowledge / assign / close) → store ▸ reply
                                                   │
    broker ◀──link task── outgoing (bounded) ◀── centre alert events, replies, fused picture
                                                   ▲
                                   picture task: every picture_interval_s, fuse and publish
                                   history task: every track_batch_s, write track batch
                                   alert writer: node alerts and centre events → store, in
                                     order (bounded queue), behind their publication

Topics of the centre (``docs/centre.md``), besides the node tree it reads (``docs/mqtt.md``)::

    borderwatch/v1/centre/<centre_id>/alert        CentreAlertEvent (QoS 1)
    borderwatch/v1/centre/<centre_id>/picture      Picture, one document (QoS 1, retained)
    borderwatch/v1/centre/<centre_id>/cmd/<verb>   operator commands; reply to the response topic

Alerts never wait behind track summaries: a node sends a thousand of those a second, and
were they on one connection, an alert would queue behind them at the broker and in the
client. The track link subscribes with ``intake.track_qos`` (0 by default: no
acknowledgements and no stored session; the retained track topics resynchronise it after a
reconnect); the main link keeps its persistent session, so alerts published while the
centre is down are delivered when it is back.

All tasks live in one :class:`asyncio.TaskGroup`; :meth:`Centre.stop` ends them, lets the
alert writer store what was published, writes the pending track batch and closes the store.
Nothing a node sends can end the centre: every bad payload is counted in :class:`CentreStats`
by reason and logged at most once per ``intake.log_interval_s`` per reason.

The wall clock (``clock``) is read here only: reception times, operator action times and, with
``fusion.time_source: wall``, the picture time. Fusion times are seconds since ``epoch`` (the
centre's start, whole seconds, UTC); positions are metres in the deployment's local ENU plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, Protocol

import aiomqtt
import numpy as np
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from borderwatch import __version__
from borderwatch.config.centre import CentreConfig, load_centre_config
from borderwatch.config.mqtt import MqttSettings
from borderwatch.drivers.base import Backoff, LogLimiter
from borderwatch.edge.mqtt import (
    ROOT,
    CommandReply,
    Publication,
    _payload_bytes,
    _properties,
    raise_if_cancelled,
    topic_level,
    topics,
)
from borderwatch.edge.signals import stop_on_signals
from borderwatch.edge.store import AlertActionError, AsyncAlertStore, StoreError, UnknownAlertError
from borderwatch.fusion.alertdedup import SWEEP_S, AlertDeduplicator, DedupResult, NodeAlert
from borderwatch.fusion.outputs import AlertEvent
from borderwatch.fusion.t2t import FusedTable, TrackToTrackFuser
from borderwatch.schema import (
    Alert,
    AlertEndReason,
    ClassHint,
    Concealment,
    Detection,
    EnuOrigin,
    GeoPoint,
    MessageError,
    NodeState,
    PositionMeasurement,
    Provenance,
    Track,
    TrackStatus,
    Velocity,
    new_msg_id,
    parse_message,
)
from borderwatch.schema.common import check_schema_version, matrix2
from borderwatch.schema.convert import _geo_points, _plane_xy, seconds_since, time_at
from borderwatch.schema.messages import AnyMessage, escalate

if TYPE_CHECKING:
    from borderwatch.edge.tak import TakView

log = logging.getLogger(__name__)

#: Queued centre messages published before their acknowledgements are awaited together.
SEND_WINDOW: Final = 32

SWEEP: Final = timedelta(seconds=SWEEP_S)

#: Most queued alerts stored in one transaction.
STORE_BATCH: Final = 200

#: Verbs of the operator commands.
VERBS: Final = ("acknowledge", "assign", "close")

RejectReason = Literal[
    "oversized",
    "malformed_json",
    "schema_version",
    "schema",
    "unknown_topic",
    "wrong_type",
    "topic_mismatch",
    "empty",
]

InboundKind = Literal["track", "track_cleared", "alert", "node_state", "pli", "command"]

#: Which message types each node topic may carry.
_EXPECTED: Final[dict[str, tuple[type[AnyMessage], ...]]] = {
    "track": (Track,),
    "alert": (Alert, Concealment),
    "node_state": (NodeState,),
    "pli": (Detection,),
}


# ----------------------------------------------------------------------------------- topics


@dataclass(frozen=True, slots=True)
class CentreTopics:
    """The topics of one centre, under ``borderwatch/v1/centre/<centre_id>``."""

    centre_id: str

    @property
    def base(self) -> str:
        """Prefix of every topic of this centre."""
        return f"{ROOT}/centre/{topic_level(self.centre_id)}"

    def alert(self) -> str:
        """Centre alert events (:class:`CentreAlertEvent`), not retained."""
        return f"{self.base}/alert"

    def picture(self) -> str:
        """The fused picture (:class:`Picture`), retained: a console sees it at once."""
        return f"{self.base}/picture"

    def command(self, verb: str) -> str:
        """Operator commands; ``+`` for the subscription filter."""
        return f"{self.base}/cmd/{verb}"

    def command_verb(self, topic: str) -> str | None:
        """The verb of a command topic of this centre, or None for any other topic."""
        prefix = f"{self.base}/cmd/"
        if topic.startswith(prefix) and "/" not in topic[len(prefix) :]:
            return topic[len(prefix) :]
        return None


# ------------------------------------------------------------------------------- wire models


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertMember(_Wire):
    """A node alert merged into a centre alert."""

    node_id: str = Field(description="The raising node.")
    alert_id: str = Field(description="The node's alert id.")


class CentreAlertEvent(_Wire):
    """One event of a centre alert (one per crossing, whichever nodes raised it)."""

    type: Literal["centre_alert"] = Field(default="centre_alert", description="Message type.")
    centre_id: str = Field(description="The centre that de-duplicated the alert.")
    members: tuple[AlertMember, ...] = Field(
        description="Node alerts merged into this one, in joining order."
    )
    cause_msg_id: str = Field(description="msg_id of the node alert event that caused this one.")
    alert: Alert = Field(
        description="The centre alert event: alert_id <centre_id>:<n>, new / update / end with "
        "before / after, position in the centre's plane, provenance.contributing_node_ids."
    )


class PictureMember(_Wire):
    """A node track fused into a centre track."""

    node_id: str = Field(description="The reporting node.")
    track_id: str = Field(description="The node's track id.")


class PictureTrack(_Wire):
    """One fused track at the picture's time."""

    track_id: str = Field(description="Stable centre track id, <centre_id>:<n>.")
    position: GeoPoint = Field(description="Fused position (WGS-84 and local x_m/y_m).")
    velocity: Velocity = Field(description="Fused velocity.")
    cov_m2: tuple[tuple[float, float], tuple[float, float]] = Field(
        description="Fused position covariance, east/north, m²."
    )
    last_report_time: datetime = Field(description="Latest report among the members, UTC.")
    members: tuple[PictureMember, ...] = Field(description="Node tracks fused, anchor first.")
    class_hint: ClassHint | None = Field(
        default=None,
        description="The most confident class among the members' latest reports; null when "
        "none is known (the summaries were received before this centre started).",
    )


class NodeSummary(_Wire):
    """What the centre last heard from a node."""

    node_id: str = Field(description="The node.")
    status: str | None = Field(description="Status of its latest NodeState; null if none.")
    state_time: datetime | None = Field(description="Time of that NodeState, UTC.")
    position: GeoPoint | None = Field(description="Its latest own position (pli), if any.")


class Picture(_Wire):
    """The centre's fused picture: every fused track with its members, and the nodes."""

    type: Literal["picture"] = Field(default="picture", description="Message type.")
    schema_version: Literal["1"] = Field(default="1", description="Major schema version.")
    msg_id: str = Field(description="ULID of this picture.")
    centre_id: str = Field(description="The centre.")
    time: datetime = Field(description="Time the tracks are predicted to, UTC.")
    enu_origin: EnuOrigin = Field(description="Origin of every x_m/y_m.")
    tracks: tuple[PictureTrack, ...] = Field(description="Fused tracks, by id.")
    nodes: tuple[NodeSummary, ...] = Field(description="Nodes heard from, by id.")


class OperatorRequest(_Wire):
    """The payload of an operator command."""

    alert_id: str = Field(min_length=1, description="The alert (node or centre alert id).")
    operator: str = Field(min_length=1, description="Who acts.")
    assignee: str | None = Field(default=None, description="Who is sent (assign only).")
    note: str = Field(default="", description="Free text, at most 500 characters.")


class AlertAction(_Wire):
    """What an operator did to an alert, as the store recorded it (shown to every view)."""

    type: Literal["alert_action"] = Field(default="alert_action", description="Message type.")
    verb: str = Field(description="acknowledge, assign or close.")
    alert_id: str = Field(description="The centre alert acted on.")
    operator: str = Field(description="Who acted.")
    time: datetime = Field(description="When the store recorded it, UTC.")
    status: str = Field(description="The alert's status afterwards.")
    acknowledged_by: str | None = Field(description="Who acknowledged it, if anyone.")
    assignee: str | None = Field(description="Who it is assigned to, if anyone.")
    closed_by: str | None = Field(description="Who closed it, if anyone.")


ViewItem = Picture | CentreAlertEvent | NodeState | Detection | AlertAction
"""What a :class:`CentreView` is shown: the fused picture, centre alert events, node states and
own positions (``pli`` detections) as received, and operator actions as stored."""


class CentreView(Protocol):
    """Something that shows the centre's live picture (web console, TAK).

    ``show`` runs on the centre's event loop and must return at once (queue what is slow);
    raising is logged and counted (``stats.errors['view_<name>']``), never fatal.
    """

    name: str

    def show(self, item: ViewItem) -> None:
        """Take one new item of the picture."""


# ---------------------------------------------------------------------------------- decoding


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a payload was refused: ``reason`` is a counter key, ``detail`` for the log."""

    reason: RejectReason
    detail: str


@dataclass(frozen=True, slots=True)
class Inbound:
    """A payload the centre will process."""

    kind: InboundKind
    message: AnyMessage | None = None
    track_id: str | None = None
    verb: str | None = None
    payload: bytes = b""


def decode(
    topic: str, payload: bytes, centre_topics: CentreTopics, max_bytes: int
) -> Inbound | Rejection:
    """Classify one received payload; never raises.

    Checked in order: size, topic (a node topic the centre reads, or one of its command
    topics), empty payload (only a track's end), JSON, schema version, schema, message type
    against topic, ids in the topic against the payload.
    """
    if len(payload) > max_bytes:
        return Rejection("oversized", f"{len(payload)} bytes > {max_bytes} on {topic}")
    verb = centre_topics.command_verb(topic)
    if verb is not None:
        return Inbound("command", verb=verb, payload=payload)
    match = topics.parse(topic)
    if match is None or match.kind not in _EXPECTED:
        return Rejection("unknown_topic", topic)
    if not payload:
        if match.kind == "track":
            return Inbound("track_cleared", track_id=match.track_id)
        return Rejection("empty", topic)
    try:
        message = parse_message(payload)
    except MessageError as exc:
        # Parsed once on the way in; only a payload that fails is looked at again, to say why.
        try:
            data = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError) as bad_json:
            return Rejection("malformed_json", f"{topic}: {bad_json}")
        try:
            check_schema_version(data)
        except ValueError as other_version:
            return Rejection("schema_version", f"{topic}: {other_version}")
        return Rejection("schema", f"{topic}: {exc}")
    if not isinstance(message, _EXPECTED[match.kind]):
        return Rejection("wrong_type", f"{message.type} on {topic}")
    if isinstance(message, Track) and message.track_id != match.track_id:
        return Rejection("topic_mismatch", f"track {message.track_id} on {topic}")
    if match.node_id is not None and message.provenance.node_id != match.node_id:
        return Rejection("topic_mismatch", f"node {message.provenance.node_id} on {topic}")
    return Inbound(match.kind, message=message)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ stats


@dataclass(slots=True)
class CentreStats:
    """Counters of a :class:`Centre` since it was made.

    ``messages`` by inbound kind (track, track_cleared, alert, concealment, node_state, pli,
    command); ``rejected`` by :data:`RejectReason`; ``errors`` by where (store, internal).
    """

    messages: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    dropped_inbox: int = 0
    dropped_track_inbox: int = 0
    dropped_outgoing: int = 0
    centre_alert_events: int = 0
    commands: int = 0
    command_errors: int = 0
    tracks_stored: int = 0
    pictures: int = 0
    published: int = 0
    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    errors: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class _Received:
    topic: str
    payload: bytes
    received_at: datetime
    response_topic: str | None
    correlation: bytes | None
    retain: bool


@dataclass(frozen=True, slots=True)
class _Outgoing:
    pub: Publication
    correlation: bytes | None = None


class _SeenIds:
    """The last ``capacity`` message ids, for dropping re-deliveries (QoS 1, bridges)."""

    def __init__(self, capacity: int) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def add(self, msg_id: str) -> bool:
        """Remember ``msg_id``; False when it was already remembered."""
        if msg_id in self._ids:
            return False
        self._ids[msg_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True


# ----------------------------------------------------------------------------------- centre


class Centre:
    """The control centre service (see the module docstring).

    Args:
        config: validated centre configuration.
        clock: wall clock, Unix seconds (tests may pass their own).
        rng: random source of the reconnect jitter.
        views: what shows the live picture (console, TAK); more may be appended to ``views``
            before :meth:`run`.
    """

    def __init__(
        self,
        config: CentreConfig,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        views: Sequence[CentreView] = (),
    ) -> None:
        self.config = config
        self.views = list(views)
        self.clock = clock
        self.centre_id = config.centre_id
        self.topics = CentreTopics(config.centre_id)
        self.frame = config.frame.local_frame()
        self.origin = EnuOrigin.from_frame(self.frame)
        self.epoch = datetime.fromtimestamp(int(clock()), UTC)
        fusion = config.fusion
        self.fuser = TrackToTrackFuser(
            fusion.gate_chi2,
            fusion.stale_s,
            q_m2ps3=fusion.q_m2ps3,
            max_gate_m=fusion.max_gate_m,
        )
        d = config.dedup
        self.dedup = AlertDeduplicator(
            config.centre_id,
            window_s=d.window_s,
            radius_m=d.radius_m,
            segment_slack=d.segment_slack,
            retention_s=d.retention_s,
        )
        self.stats = CentreStats()
        self.links_up = {"main": False, "tracks": False}
        self.picture: Picture | None = None
        self.node_states: dict[str, NodeState] = {}
        self.positions: dict[str, Detection] = {}
        self.store: AsyncAlertStore | None = None
        self._rng = rng or random.Random()
        self._limiter = LogLimiter(log, config.intake.log_interval_s, time.monotonic)
        self._inbox: asyncio.Queue[_Received] = asyncio.Queue(config.intake.queue)
        self._track_inbox: deque[_Received] = deque()
        self._work = asyncio.Event()
        self._outgoing: deque[_Outgoing] = deque()
        self._picture_pub: _Outgoing | None = None
        self._out_wake = asyncio.Event()
        self._seen = _SeenIds(config.intake.remembered_msg_ids)
        self._pending_tracks: list[Track] = []
        self._alert_writes: asyncio.Queue[tuple[Alert, list[Alert], datetime]] = asyncio.Queue(
            config.intake.queue
        )
        self._centre_alerts: dict[str, Alert] = {}
        self._swept: datetime | None = None
        self._centre_track_of: dict[tuple[str, str], int] = {}
        self._class_of: dict[tuple[str, str], ClassHint] = {}
        self._latest_track_t = -float("inf")
        self._picture_t = -float("inf")
        self._stop = asyncio.Event()
        self.tak: TakView | None = None
        if config.tak is not None:
            from borderwatch.edge.tak import TakView  # it imports this module's models

            self.tak = TakView(config.tak, clock=clock, rng=self._rng)
            self.views.append(self.tak)

    @property
    def connected(self) -> bool:
        """True while both broker links are up and subscribed."""
        return all(self.links_up.values())

    def idle(self) -> bool:
        """Nothing received is waiting to be processed or published."""
        return (
            self._inbox.empty()
            and not self._track_inbox
            and not self._outgoing
            and self._alert_writes.empty()
        )

    # ------------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Ask the centre to shut down cleanly (safe to call from a signal handler)."""
        self._stop.set()

    async def run(self) -> None:
        """Open the store, then receive, fuse, store and publish until :meth:`stop`."""
        log.info("centre %s starting; store %s", self.centre_id, self._store_name())
        self.store = await AsyncAlertStore.open(
            self.config.store.url, process=self.config.store.process
        )
        try:
            async with asyncio.TaskGroup() as tasks:
                runners = [
                    tasks.create_task(self._link(), name="centre-link"),
                    tasks.create_task(self._process(), name="centre-process"),
                    tasks.create_task(self._pictures(), name="centre-picture"),
                ]
                # The history writer is not cancelled: it ends at the stop, after its write, so
                # a batch in flight is neither lost nor left uncounted.
                tasks.create_task(self._histories(), name="centre-history")
                writer = tasks.create_task(self._alert_writer(), name="centre-alert-writer")
                await self._stop.wait()
                for runner in runners:
                    runner.cancel()
                # Alerts already published are stored before the store closes.
                await self._alert_writes.join()
                writer.cancel()
        finally:
            await self._flush_tracks()
            await self.store.close()
            if self.tak is not None:
                await self.tak.aclose()
            log.info("centre %s stopped", self.centre_id)

    def _store_name(self) -> str:
        # The URL may hold a password: name the backend only.
        return self.config.store.url.split(":", 1)[0]

    # ------------------------------------------------------------------------ broker link

    async def _link(self) -> None:
        """Stay connected on both links: the main one (subscribe, receive into the inbox,
        publish the outgoing queue) and the track link (receive into the track inbox)."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._stay("main", self._connection), name="centre-main-link")
            tasks.create_task(
                self._stay("tracks", self._track_connection), name="centre-track-link"
            )

    async def _stay(
        self, name: Literal["main", "tracks"], connect: Callable[[Backoff], Awaitable[None]]
    ) -> None:
        m = self.config.mqtt
        backoff = Backoff(m.backoff.initial_s, m.backoff.max_s, self._rng)
        while True:
            connects = self.stats.connects
            try:
                await connect(backoff)
            except* aiomqtt.MqttError as group:
                self._link_failed(str(group.exceptions[0]), self.stats.connects > connects)
            except* Exception as group:
                self.stats.errors["link"] += 1
                log.error("centre %s link failed; reconnecting", name, exc_info=group)
            finally:
                self.links_up[name] = False
            if self._stop.is_set():
                # Stopping: on Python 3.11 a TaskGroup whose child failed as the link closed
                # may hand this loop that error instead of its cancellation; do not reconnect.
                return
            await asyncio.sleep(backoff.next_delay())

    def _link_failed(self, reason: str, was_connected: bool) -> None:
        if was_connected:
            self.stats.disconnects += 1
            log.warning("centre: broker %s lost (%s)", self.config.mqtt.url, reason)
        else:
            self.stats.connect_failures += 1
            self._limiter.log(
                logging.WARNING,
                "connect",
                "centre: cannot connect to %s (%s)",
                self.config.mqtt.url,
                reason,
            )

    def _client(self, *, tracks: bool = False) -> aiomqtt.Client:
        m: MqttSettings = self.config.mqtt
        # The track link needs no stored session: retained track topics resynchronise it.
        expiry = 0 if tracks else self.config.intake.session_expiry_s
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if expiry:
            # A persistent session: the broker queues QoS 1 alerts while the centre restarts.
            props.SessionExpiryInterval = expiry
        tls = None
        if m.uses_tls:
            t = m.tls
            tls = aiomqtt.TLSParameters(
                ca_certs=None if t is None or t.ca_file is None else str(t.ca_file),
                certfile=None if t is None or t.cert_file is None else str(t.cert_file),
                keyfile=None if t is None or t.key_file is None else str(t.key_file),
            )
        identifier = m.client_id or f"borderwatch-centre-{self.centre_id}"
        return aiomqtt.Client(
            m.host,
            m.port,
            identifier=f"{identifier}-tracks" if tracks else identifier,
            protocol=aiomqtt.ProtocolVersion.V5,
            username=m.username,
            password=None if m.password is None else m.password.get_secret_value(),
            clean_start=not expiry,
            properties=props,
            keepalive=m.keepalive_s,
            timeout=m.publish_timeout_s,
            tls_params=tls,
            max_queued_incoming_messages=self.config.intake.queue,
        )

    async def _connection(self, backoff: Backoff) -> None:
        async with self._client() as client:
            self.stats.connects += 1
            log.info("centre %s: connected to %s", self.centre_id, self.config.mqtt.url)
            filters = [
                topics.node_state("+"),
                topics.pli("+"),
                topics.alert(),
                self.topics.command("+"),
            ]
            await client.subscribe([(f, 1) for f in filters])
            self.links_up["main"] = True  # subscribed: from now on nothing published is missed
            backoff.reset()
            self._out_wake.set()  # send what waited for the link
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._receive(client), name="centre-receive")
                tasks.create_task(self._send(client), name="centre-send")

    async def _track_connection(self, backoff: Backoff) -> None:
        async with self._client(tracks=True) as client:
            self.stats.connects += 1
            log.info("centre %s: track link connected", self.centre_id)
            await client.subscribe(topics.all_tracks(), qos=self.config.intake.track_qos)
            self.links_up["tracks"] = True
            backoff.reset()
            await self._receive(client, tracks=True)

    async def _receive(self, client: aiomqtt.Client, *, tracks: bool = False) -> None:
        async for message in client.messages:
            props = message.properties
            received = _Received(
                topic=str(message.topic),
                payload=_payload_bytes(message.payload),
                received_at=self._now(),
                response_topic=getattr(props, "ResponseTopic", None) or None,
                correlation=getattr(props, "CorrelationData", None),
                retain=bool(message.retain),
            )
            if tracks:
                if len(self._track_inbox) < self.config.intake.track_queue:
                    self._track_inbox.append(received)
                    self._work.set()
                    continue
                self.stats.dropped_track_inbox += 1
            else:
                try:
                    self._inbox.put_nowait(received)
                    self._work.set()
                    continue
                except asyncio.QueueFull:
                    self.stats.dropped_inbox += 1
            self._limiter.log(
                logging.WARNING,
                "track_inbox" if tracks else "inbox",
                "centre: %s full, message on %s dropped",
                "track inbox" if tracks else "inbox",
                received.topic,
            )

    async def _send(self, client: aiomqtt.Client) -> None:
        """Publish queued events and replies first, then the latest picture; an item leaves
        the queue only once the broker acknowledged it.

        Up to :data:`SEND_WINDOW` queued items go out back to back (in order, on one
        connection) before their acknowledgements are awaited together: one round trip per
        window, not per event, so a busy second's alert events do not queue behind each
        other's round trips.
        """
        while True:
            await self._out_wake.wait()
            self._out_wake.clear()
            while self._outgoing:
                window = list(itertools.islice(self._outgoing, SEND_WINDOW))
                # gather, not a TaskGroup: a TaskGroup nested in the link's may swallow the
                # link's cancellation (Python 3.11) and leave this task waiting for ever.
                results = await asyncio.gather(
                    *(self._publish(client, item) for item in window), return_exceptions=True
                )
                failed = next((r for r in results if isinstance(r, BaseException)), None)
                if failed is not None:
                    raise failed
                for item in window:  # unless the queue overflowed and dropped it meanwhile
                    if self._outgoing and self._outgoing[0] is item:
                        self._outgoing.popleft()
            picture = self._picture_pub
            if picture is not None:
                await self._publish(client, picture)
                if self._picture_pub is picture:  # not replaced while in flight
                    self._picture_pub = None

    async def _publish(self, client: aiomqtt.Client, item: _Outgoing) -> None:
        try:
            await client.publish(
                item.pub.topic,
                item.pub.payload,
                qos=1,
                retain=item.pub.retain,
                properties=_properties(
                    PacketTypes.PUBLISH, json_payload=True, correlation=item.correlation
                ),
            )
            self.stats.published += 1
        except ValueError as exc:  # paho refuses a malformed (response) topic
            self.stats.dropped_outgoing += 1
            log.warning("centre: not published to %r: %s", item.pub.topic, exc)
        raise_if_cancelled()

    def _queue(self, item: _Outgoing) -> None:
        if len(self._outgoing) >= self.config.intake.outgoing:
            self._outgoing.popleft()
            self.stats.dropped_outgoing += 1
            self._limiter.log(logging.WARNING, "outgoing", "centre: outgoing queue full")
        self._outgoing.append(item)
        self._out_wake.set()

    # ------------------------------------------------------------------------ processing

    async def _process(self) -> None:
        """Everything in the inbox first (alerts, states, commands), then a batch of track
        summaries; repeat."""
        while True:
            if self._inbox.empty() and not self._track_inbox:
                self._work.clear()
                await self._work.wait()
            while not self._inbox.empty():
                item = self._inbox.get_nowait()
                await self._guarded(item.topic, self._handle(item))
            if self._track_inbox:
                n = min(len(self._track_inbox), self.config.intake.track_batch)
                batch = [self._track_inbox.popleft() for _ in range(n)]
                await self._guarded(batch[0].topic, self._handle_tracks(batch))
            await asyncio.sleep(0)  # let the links receive between turns

    async def _guarded(self, topic: str, work: Awaitable[None]) -> None:
        try:
            await work
        except StoreError as exc:
            self.stats.errors["store"] += 1
            self._limiter.log(logging.ERROR, "store", "centre: store failed: %s", exc)
        except Exception:
            self.stats.errors["internal"] += 1
            log.exception("centre: message on %s could not be processed", topic)

    def _decoded(self, item: _Received) -> Inbound | None:
        """The decoded payload, or None when it was rejected (counted and logged)."""
        decoded = decode(
            item.topic, item.payload, self.topics, self.config.intake.max_payload_bytes
        )
        if isinstance(decoded, Rejection):
            self.stats.rejected[decoded.reason] += 1
            self._limiter.log(
                logging.WARNING,
                decoded.reason,
                "centre: rejected (%s): %s",
                decoded.reason,
                decoded.detail[:300],
            )
            return None
        return decoded

    async def _handle_tracks(self, batch: list[_Received]) -> None:
        """Fuse a batch of received track summaries (anything else is handled one by one)."""
        tracks: list[Track] = []
        for item in batch:
            decoded = self._decoded(item)
            if decoded is None:
                continue
            message = decoded.message
            if decoded.kind != "track" or not isinstance(message, Track):
                await self._handle(item)  # a track's end, or a message on a track topic
                continue
            if not self._seen.add(message.msg_id):
                self.stats.duplicates += 1
                continue
            self.stats.messages["track"] += 1
            tracks.append(message)
        await self._tracks(tracks)

    async def _handle(self, item: _Received) -> None:
        decoded = self._decoded(item)
        if decoded is None:
            return
        if decoded.kind == "command":
            assert decoded.verb is not None
            await self._command(decoded.verb, item)
            return
        if decoded.kind == "track_cleared":
            assert decoded.track_id is not None
            self.stats.messages["track_cleared"] += 1
            self.fuser.drop(decoded.track_id.split(":", 1)[0], [decoded.track_id])
            return
        message = decoded.message
        assert message is not None
        if not self._seen.add(message.msg_id):
            self.stats.duplicates += 1
            return
        self.stats.messages[message.type] += 1
        if isinstance(message, Track):
            await self._tracks([message])
        elif isinstance(message, Alert):
            await self._alert(message, item.received_at)
        elif isinstance(message, NodeState):
            held = self.node_states.get(message.node_id)
            if held is None or held.time <= message.time:
                self.node_states[message.node_id] = message
                self._show(message)
        elif isinstance(message, Detection):
            held_pli = self.positions.get(message.provenance.node_id)
            if held_pli is None or held_pli.time <= message.time:
                self.positions[message.provenance.node_id] = message
                self._show(message)
        else:
            # Concealments are logged, not stored: the alert table's columns (border segment,
            # direction, track) do not describe a vehicle inspection.
            log.info(
                "concealment from %s: vehicle %s %s (confidence %.2f)",
                message.provenance.node_id,
                message.vehicle_id,
                message.verdict.value,
                message.confidence,
            )

    # ---------------------------------------------------------------------------- tracks

    async def _tracks(self, tracks: list[Track]) -> None:
        """Fuse track summaries in arrival order: one fuser update per run of one node's
        summaries of one time, and keep them for the history."""
        for node_id, ended, run in _runs(tracks):
            if ended:
                self.fuser.drop(node_id, [t.track_id for t in run])
                continue
            for t in run:
                self._class_of[(node_id, t.track_id)] = t.class_hint
            xy = _plane_xy(self.frame, [(t.enu_origin, t.position) for t in run])
            v = np.array([(t.velocity.vx_mps, t.velocity.vy_mps) for t in run])
            t_s = seconds_since(run[0].time, self.epoch)
            self.fuser.update(
                t_s,
                node_id,
                [t.track_id for t in run],
                np.hstack([xy, v]),
                np.array([t.state_cov for t in run]),
            )
            self._latest_track_t = max(self._latest_track_t, t_s)
        self._pending_tracks.extend(tracks)
        if len(self._pending_tracks) >= self.config.store.track_batch_max:
            await self._flush_tracks()

    async def _histories(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.store.track_batch_s):
                    await self._stop.wait()
            try:
                await self._flush_tracks()
            except StoreError as exc:
                self.stats.errors["store"] += 1
                self._limiter.log(logging.ERROR, "store", "centre: track history: %s", exc)

    async def _flush_tracks(self) -> None:
        batch, self._pending_tracks = self._pending_tracks, []
        if not batch or self.store is None:
            return
        self.stats.tracks_stored += await self.store.record_tracks(batch)

    # ---------------------------------------------------------------------------- alerts

    async def _alert(self, alert: Alert, received_at: datetime) -> None:
        # Repeats within this centre's memory were dropped by msg_id before this point; the
        # store, written behind the publication, catches those from before a restart.
        node_id = alert.provenance.node_id
        xy = _plane_xy(self.frame, [(alert.enu_origin, alert.after.position)])[0]
        result = self.dedup.observe(
            NodeAlert(
                node_id=node_id,
                alert_id=alert.alert_id,
                kind=alert.kind.value,
                direction=alert.direction,
                border_segment=alert.border_segment,
                t=seconds_since(alert.time, self.epoch),
                x_m=float(xy[0]),
                y_m=float(xy[1]),
                centre_track_id=self._centre_track_of.get((node_id, alert.track_id)),
                ended=alert.event is AlertEvent.END,
            )
        )
        events = self._centre_events(result, alert, (float(xy[0]), float(xy[1])))
        for event in events:
            self._centre_alerts[event.alert_id] = event
            self.stats.centre_alert_events += 1
            published = CentreAlertEvent(
                centre_id=self.centre_id,
                members=tuple(AlertMember(node_id=n, alert_id=a) for n, a in result.members),
                cause_msg_id=alert.msg_id,
                alert=event,
            )
            self._queue(_Outgoing(Publication(self.topics.alert(), _json(published), False)))
            self._show(published)
        self._forget_centre_alerts(alert.time)
        # Published first, stored by the alert writer: an operator sees the event without
        # waiting for two disk commits. Bounded: a store far behind holds intake back.
        await self._alert_writes.put((alert, events, received_at))

    async def _alert_writer(self) -> None:
        """Store node alerts and the centre events they raised, in order of arrival: what
        has queued up meanwhile goes in one transaction (up to :data:`STORE_BATCH`), so a
        backlog after an outage costs one commit per batch, not per event."""
        while True:
            batch = [await self._alert_writes.get()]
            while len(batch) < STORE_BATCH and not self._alert_writes.empty():
                batch.append(self._alert_writes.get_nowait())
            try:
                await self._store_alerts(batch)
            except StoreError as exc:
                self.stats.errors["store"] += 1
                self._limiter.log(
                    logging.ERROR, "store", "centre: %d alerts not stored: %s", len(batch), exc
                )
            finally:
                for _ in batch:
                    self._alert_writes.task_done()

    async def _store_alerts(self, batch: list[tuple[Alert, list[Alert], datetime]]) -> None:
        assert self.store is not None
        items: list[tuple[Alert, datetime]] = []
        for alert, events, received_at in batch:
            items.append((alert, received_at))
            items += [(event, received_at) for event in events]  # idempotent by msg_id
        stored = iter(await self.store.record_alerts(items))
        for alert, events, _ in batch:
            if not next(stored):
                # Stored before this centre's memory began (a restart): its events went out
                # again.
                self.stats.duplicates += 1
                self._limiter.log(
                    logging.WARNING,
                    "stored_alert",
                    "centre: alert message %s was stored before a restart; its centre events "
                    "were published again",
                    alert.msg_id,
                )
            for _ in events:
                next(stored)

    def _centre_events(
        self, result: DedupResult, alert: Alert, xy: tuple[float, float]
    ) -> list[Alert]:
        """The centre alert events a node alert event causes: new (and end, if the node alert
        was first seen at its end), update, end, or none once the centre alert has ended."""
        previous = self._centre_alerts.get(result.centre_alert_id)
        if previous is not None and previous.event is AlertEvent.END:
            return []  # a late event of an ended crossing: stored as a node event only
        events: list[Alert] = []
        if previous is None:
            previous = self._centre_alert(AlertEvent.NEW, result, alert, xy, None)
            events.append(previous)
            if not result.all_ended:
                return events
        event = AlertEvent.END if result.all_ended else AlertEvent.UPDATE
        events.append(self._centre_alert(event, result, alert, xy, previous))
        return events

    def _centre_alert(
        self,
        event: AlertEvent,
        result: DedupResult,
        alert: Alert,
        xy: tuple[float, float],
        previous: Alert | None,
    ) -> Alert:
        # Events of several nodes may arrive out of order; the centre alert's own times never
        # go back, so its before/after chain stays valid.
        at = alert.time if previous is None else max(alert.time, previous.time)
        p = alert.after.position
        after = alert.after.model_copy(
            update={
                "time": at,
                "position": GeoPoint(
                    lat_deg=p.lat_deg, lon_deg=p.lon_deg, alt_m=p.alt_m, x_m=xy[0], y_m=xy[1]
                ),
                "priority": escalate(
                    alert.after.priority, None if previous is None else previous.after.priority
                ),
            }
        )
        centre_track = self._centre_track_of.get((alert.provenance.node_id, alert.track_id))
        flags = [alert.provenance] + ([] if previous is None else [previous.provenance])
        return Alert(
            msg_id=new_msg_id(),
            time=at,
            received_at=alert.received_at,
            provenance=Provenance(
                node_id=self.centre_id,
                contributing_node_ids=tuple(sorted({n for n, _ in result.members})),
                software_version=__version__,
                simulated=any(f.simulated for f in flags),
                exercise=any(f.exercise for f in flags),
            ),
            enu_origin=self.origin,
            alert_id=result.centre_alert_id,
            kind=alert.kind,
            event=event,
            track_id=alert.track_id if centre_track is None else f"{self.centre_id}:{centre_track}",
            border_kind=alert.border_kind,
            border_segment=alert.border_segment,
            direction=alert.direction,
            end_reason=(alert.end_reason or AlertEndReason.CONFIRMED)
            if event is AlertEvent.END
            else None,
            before=None if previous is None else previous.after,
            after=after,
        )

    def _forget_centre_alerts(self, now: datetime) -> None:
        """Bound memory like the deduplicator does: drop centre alerts quiet for retention_s
        (swept at most once per SWEEP_S of alert time, as the deduplicator sweeps)."""
        if self._swept is not None and timedelta(0) <= now - self._swept < SWEEP:
            return
        self._swept = now
        retention = self.config.dedup.retention_s
        old = [
            cid
            for cid, a in self._centre_alerts.items()
            if (now - a.time).total_seconds() > retention
        ]
        for cid in old:
            del self._centre_alerts[cid]

    # -------------------------------------------------------------------------- commands

    async def _command(self, verb: str, item: _Received) -> None:
        self.stats.messages["command"] += 1
        if item.retain:
            log.warning("centre: retained command %s ignored", item.topic)
            return
        self.stats.commands += 1
        reply = await self._execute(verb, item.payload)
        if not reply.ok:
            self.stats.command_errors += 1
        if item.response_topic is None:
            log.info("centre: command %s without response topic: %s", verb, reply.error or "ok")
            return
        self._queue(
            _Outgoing(Publication(item.response_topic, _json(reply), False), item.correlation)
        )

    async def _execute(self, verb: str, payload: bytes) -> CommandReply:
        if verb not in VERBS:
            return self._error(verb, f"unknown command {verb!r} (known: {', '.join(VERBS)})")
        try:
            request = OperatorRequest.model_validate_json(payload or b"{}")
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(x) for x in first["loc"]) or "request"
            return self._error(verb, f"bad request: {where}: {first['msg']}")
        return await self.act(verb, request)

    async def act(self, verb: str, request: OperatorRequest) -> CommandReply:
        """Carry out an operator's request (from the command topic or the console): record it
        in the store, show it to every view, and say what became of the alert. Unknown alerts
        and actions the alert's status forbids are refused in the reply, not raised."""
        assert self.store is not None, "act() needs a running centre"
        if verb not in VERBS:
            return self._error(verb, f"unknown command {verb!r} (known: {', '.join(VERBS)})")
        # Every alert received before the request is in the store before it runs.
        await self._alert_writes.join()
        at = self._now()
        try:
            view = await self.store.act(
                request.alert_id,
                verb,
                request.operator,
                at,
                assignee=request.assignee,
                note=request.note,
            )
        except (UnknownAlertError, AlertActionError) as exc:
            return self._error(verb, str(exc))
        self._show(
            AlertAction(
                verb=verb,
                alert_id=view.alert_id,
                operator=request.operator,
                time=at,
                status=view.status.value,
                acknowledged_by=view.acknowledged_by,
                assignee=view.assignee,
                closed_by=view.closed_by,
            )
        )
        result = {
            "alert_id": view.alert_id,
            "status": view.status.value,
            "acknowledged_by": view.acknowledged_by,
            "assignee": view.assignee,
            "closed_by": view.closed_by,
        }
        return CommandReply(ok=True, node_id=self.centre_id, verb=verb, result=result)

    def _show(self, item: ViewItem) -> None:
        for view in self.views:
            try:
                view.show(item)
            except Exception as exc:  # a view must never take the centre down
                self.stats.errors[f"view_{view.name}"] += 1
                self._limiter.log(
                    logging.ERROR, f"view_{view.name}", "centre: view %s failed: %s", view.name, exc
                )

    def _error(self, verb: str, error: str) -> CommandReply:
        return CommandReply(ok=False, node_id=self.centre_id, verb=verb, error=error)

    # --------------------------------------------------------------------------- picture

    async def _pictures(self) -> None:
        while True:
            await asyncio.sleep(self.config.fusion.picture_interval_s)
            fused = self._fuse_picture()
            if fused is None:
                continue
            # A thousand tracks take tens of milliseconds to turn into messages: in a thread,
            # so that alerts arriving meanwhile are not held up behind them.
            picture, payload = await asyncio.to_thread(self._picture_message, *fused)
            self.picture = picture
            self.stats.pictures += 1
            self._show(picture)
            self._picture_pub = _Outgoing(Publication(self.topics.picture(), payload, retain=True))
            self._out_wake.set()

    def make_picture(self) -> Picture | None:
        """Fuse the node tracks held now into a :class:`Picture` (None before any track
        time is known when pictures follow message times)."""
        fused = self._fuse_picture()
        if fused is None:
            return None
        self.picture, _ = self._picture_message(*fused)
        self.stats.pictures += 1
        return self.picture

    def _fuse_picture(self) -> tuple[float, FusedTable, tuple[NodeSummary, ...]] | None:
        """Fuse at the picture's time and note which centre track each node track joined
        (on the event loop: the fuser is not shared with threads)."""
        if self.config.fusion.time_source == "wall":
            t = seconds_since(self._now(), self.epoch)
        else:
            t = self._latest_track_t
        t = max(t, self._picture_t)
        if not np.isfinite(t):
            return None
        self._picture_t = t
        table = self.fuser.picture(t)
        self._centre_track_of = {
            member: int(cid)
            for cid, members in zip(table.ids, table.members, strict=True)
            for member in members
        }
        # Classes of node tracks the fuser has let go are forgotten with them.
        self._class_of = {
            m: hint for m, hint in self._class_of.items() if m in self._centre_track_of
        }
        return t, table, self._node_summaries()

    def _picture_message(
        self, t: float, table: FusedTable, nodes: tuple[NodeSummary, ...]
    ) -> tuple[Picture, bytes]:
        """The picture message of a fused table, and its JSON (safe in a worker thread)."""
        picture = Picture(
            msg_id=new_msg_id(),
            centre_id=self.centre_id,
            time=time_at(t, self.epoch),
            enu_origin=self.origin,
            tracks=self._picture_tracks(table),
            nodes=nodes,
        )
        return picture, _json(picture)

    def _picture_tracks(self, table: FusedTable) -> tuple[PictureTrack, ...]:
        points = _geo_points(self.frame, table.x[:, :2])
        return tuple(
            PictureTrack(
                track_id=f"{self.centre_id}:{int(table.ids[k])}",
                position=points[k],
                velocity=Velocity.from_enu(float(table.x[k, 2]), float(table.x[k, 3])),
                cov_m2=matrix2(table.P[k, :2, :2]),
                last_report_time=time_at(float(table.last_report_t[k]), self.epoch),
                members=tuple(PictureMember(node_id=n, track_id=tid) for n, tid in members),
                class_hint=max(
                    (h for m in members if (h := self._class_of.get(m)) is not None),
                    key=lambda h: h.confidence,
                    default=None,
                ),
            )
            for k, members in enumerate(table.members)
        )

    def _node_summaries(self) -> tuple[NodeSummary, ...]:
        summaries = []
        for node_id in sorted(self.node_states.keys() | self.positions.keys()):
            state = self.node_states.get(node_id)
            pli = self.positions.get(node_id)
            position = None
            if pli is not None and isinstance(pli.measurement, PositionMeasurement):
                # Without the node's own plane metres: the picture's x_m/y_m are the centre's.
                p = pli.measurement.position
                position = GeoPoint(lat_deg=p.lat_deg, lon_deg=p.lon_deg, alt_m=p.alt_m)
            summaries.append(
                NodeSummary(
                    node_id=node_id,
                    status=None if state is None else state.status.value,
                    state_time=None if state is None else state.time,
                    position=position,
                )
            )
        return tuple(summaries)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)


def _runs(tracks: list[Track]) -> list[tuple[str, bool, list[Track]]]:
    """Split summaries, in order, into runs that one fuser call can take: the same node, the
    same time, all ended or none, each track at most once."""
    runs: list[tuple[str, bool, list[Track]]] = []
    key: tuple[str, datetime, bool] | None = None
    ids: set[str] = set()
    for track in tracks:
        ended = track.status is TrackStatus.ENDED
        k = (track.provenance.node_id, track.time, ended)
        if k != key or track.track_id in ids:
            runs.append((k[0], ended, []))
            key, ids = k, set()
        runs[-1][2].append(track)
        ids.add(track.track_id)
    return runs


def _json(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


# ------------------------------------------------------------------------------ entry point


def load_with_broker(config_path: str | Path, broker: str | None) -> CentreConfig:
    """The configuration at ``config_path``, with ``mqtt.url`` replaced by ``broker`` if given
    (validated as in the file)."""
    config = load_centre_config(config_path)
    if broker is None:
        return config
    mqtt = MqttSettings.model_validate({**config.mqtt.model_dump(), "url": broker})
    return config.model_copy(update={"mqtt": mqtt})


async def serve_centre(config: CentreConfig, *, http: str | None = None) -> Centre:
    """Run a centre until SIGINT or SIGTERM; returns it (for its counters).

    ``http`` (``HOST:PORT``) serves the web console; it overrides ``web.http`` of the config.
    """
    centre = Centre(config)
    address = http or (config.web.http if config.web is not None else None)
    with stop_on_signals(centre.stop):
        if address is None:
            await centre.run()
        else:
            from borderwatch.config.web import WebSettings
            from borderwatch.edge.web.centre import CentreConsole
            from borderwatch.edge.web.server import ConsoleServer, serve_alongside

            console = CentreConsole(centre, config.web or WebSettings())
            await serve_alongside(ConsoleServer(console, address), centre.run)
    return centre


def run_centre(config_path: str | Path, broker: str | None = None, http: str | None = None) -> int:
    """Entry point of ``borderwatch centre --config FILE [--broker mqtt://HOST:PORT]
    [--http HOST:PORT]``; exit status 0 after a clean shutdown. Configuration errors raise
    :class:`~borderwatch.errors.ConfigError` naming the file and line."""
    config = load_with_broker(config_path, broker)
    centre = asyncio.run(serve_centre(config, http=http))
    log.info("centre %s: %s", config.centre_id, centre.stats)
    return 0


__all__ = [
    "VERBS",
    "AlertAction",
    "AlertMember",
    "Centre",
    "CentreAlertEvent",
    "CentreStats",
    "CentreTopics",
    "CentreView",
    "Inbound",
    "NodeSummary",
    "OperatorRequest",
    "Picture",
    "PictureMember",
    "PictureTrack",
    "Rejection",
    "ViewItem",
    "decode",
    "run_centre",
    "serve_centre",
]
