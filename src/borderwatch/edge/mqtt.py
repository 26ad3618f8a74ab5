"""MQTT for nodes and the centre: the topic tree, and a node's output with a durable outbox.

The topic tree is a contract between nodes, the centre and partners (``docs/mqtt.md``); every
topic is built and parsed by :data:`topics` so that no other module spells one out::

    borderwatch/v1/node/<node_id>/state                      NodeState, retained (birth, will)
    borderwatch/v1/node/<node_id>/pli                        own position (Detection), retained
    borderwatch/v1/node/<node_id>/sensor/<sensor_id>/det     detections from networked sensors
    borderwatch/v1/node/<node_id>/sensor/<sensor_id>/state   SensorState, retained
    borderwatch/v1/node/<node_id>/cmd/<verb>                 commands (MQTT 5 request/response)
    borderwatch/v1/track/<green|blue>/<track_id>             Track, retained; empty at its end
    borderwatch/v1/alert                                     Alert events: new, update, end
    borderwatch/v1/reply/<requester_id>[/...]                command replies (bridged out)

:class:`MqttOutput` is a node output (``borderwatch.edge.node.Output``). ``publish()`` never
touches the network: alerts and track summaries go to the :class:`~borderwatch.edge.outbox.Outbox`
(SQLite) and health reports and the own position to an in-memory slot holding only the latest.
``run()`` connects (MQTT 5, clean start, last will), publishes the birth state, answers commands
and drains the outbox in order with QoS 1, deleting each message only after the broker's PUBACK;
when the link drops it reconnects with capped, jittered exponential backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from borderwatch import __version__
from borderwatch.config.mqtt import MqttSettings
from borderwatch.drivers.base import Backoff
from borderwatch.edge.outbox import Outbox, OutboxItem, Pending
from borderwatch.schema import (
    Alert,
    BorderKindName,
    Concealment,
    Detection,
    Envelope,
    NodeState,
    NodeStatus,
    PositionMeasurement,
    Provenance,
    Track,
    TrackStatus,
    new_msg_id,
)

log = logging.getLogger(__name__)

#: Root of every borderwatch topic; the major version changes only with the tree.
ROOT: Final = "borderwatch/v1"
#: Pass as an id to a :class:`TopicTree` method to get a subscription filter for any id.
ANY: Final = "+"

_VERB: Final = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

TopicKind = Literal[
    "node_state", "pli", "sensor_detection", "sensor_state", "command", "track", "alert", "reply"
]


# -------------------------------------------------------------------------------- topics


def topic_level(value: str) -> str:
    """``value`` as one topic level: ``/`` (allowed in sensor ids) becomes ``%2F``, ``%``
    becomes ``%25``; :data:`ANY` passes as the wildcard. Raises ValueError for an empty value
    or one holding ``+``, ``#`` or NUL, which no topic level may contain."""
    if value == ANY:
        return value
    if not value or any(c in value for c in "+#\0"):
        raise ValueError(f"{value!r} cannot be an MQTT topic level")
    return value.replace("%", "%25").replace("/", "%2F")


def level_value(level: str) -> str:
    """The id a topic level stands for (the inverse of :func:`topic_level`)."""
    return level.replace("%2F", "/").replace("%25", "%")


@dataclass(frozen=True, slots=True)
class TopicMatch:
    """What a topic is about (:meth:`TopicTree.parse`); fields that do not apply are None."""

    kind: TopicKind
    node_id: str | None = None
    sensor_id: str | None = None
    verb: str | None = None
    border_kind: BorderKindName | None = None
    track_id: str | None = None
    requester_id: str | None = None


@dataclass(frozen=True, slots=True)
class TopicTree:
    """Builds and parses the borderwatch topics (``docs/mqtt.md``). Use :data:`topics`."""

    root: str = ROOT

    def node_state(self, node_id: str) -> str:
        """A node's health (NodeState, retained): birth when it connects, its will when lost."""
        return f"{self.root}/node/{topic_level(node_id)}/state"

    def pli(self, node_id: str) -> str:
        """A node's own position (a position Detection of its navigation sensor, retained)."""
        return f"{self.root}/node/{topic_level(node_id)}/pli"

    def sensor_detections(self, node_id: str, sensor_id: str) -> str:
        """Detections a networked sensor sends to its node (inbound to the node)."""
        return f"{self.root}/node/{topic_level(node_id)}/sensor/{topic_level(sensor_id)}/det"

    def sensor_state(self, node_id: str, sensor_id: str) -> str:
        """Health of one sensor of a node (SensorState, retained)."""
        return f"{self.root}/node/{topic_level(node_id)}/sensor/{topic_level(sensor_id)}/state"

    def command(self, node_id: str, verb: str) -> str:
        """A command to a node; the reply goes to the request's MQTT 5 response topic."""
        if verb != ANY and _VERB.fullmatch(verb) is None:
            raise ValueError(f"{verb!r} is not a command verb (lower case letters, digits, _-)")
        return f"{self.root}/node/{topic_level(node_id)}/cmd/{verb}"

    def track(self, border_kind: BorderKindName | str, track_id: str) -> str:
        """A track (retained; an empty retained payload when it ends)."""
        kind = border_kind if border_kind == ANY else BorderKindName(border_kind).value
        return f"{self.root}/track/{kind}/{topic_level(track_id)}"

    def alert(self) -> str:
        """Every alert event of every node."""
        return f"{self.root}/alert"

    def reply(self, requester_id: str) -> str:
        """Where a requester (the centre, a console) asks for command replies; the boats'
        bridges forward this subtree to the centre. A requester may add levels below it."""
        return f"{self.root}/reply/{topic_level(requester_id)}"

    def all_tracks(self) -> str:
        """Filter: every track of every node and border kind."""
        return f"{self.root}/track/#"

    def everything(self) -> str:
        """Filter: the whole tree (what a bridge forwards)."""
        return f"{self.root}/#"

    def parse(self, topic: str) -> TopicMatch | None:
        """What a received topic is about, or None when it is not in the tree."""
        prefix = self.root + "/"
        if not topic.startswith(prefix):
            return None
        levels = topic[len(prefix) :].split("/")
        match levels:
            case ["alert"]:
                return TopicMatch("alert")
            case ["track", ("green" | "blue") as kind, track_id] if track_id:
                return TopicMatch(
                    "track", border_kind=BorderKindName(kind), track_id=level_value(track_id)
                )
            case ["reply", requester_id, *_] if requester_id:
                return TopicMatch("reply", requester_id=level_value(requester_id))
            case ["node", node_id, *rest] if node_id:
                return _node_topic(level_value(node_id), rest)
        return None


def _node_topic(node_id: str, rest: list[str]) -> TopicMatch | None:
    match rest:
        case ["state"]:
            return TopicMatch("node_state", node_id)
        case ["pli"]:
            return TopicMatch("pli", node_id)
        case ["sensor", sensor_id, "det"] if sensor_id:
            return TopicMatch("sensor_detection", node_id, sensor_id=level_value(sensor_id))
        case ["sensor", sensor_id, "state"] if sensor_id:
            return TopicMatch("sensor_state", node_id, sensor_id=level_value(sensor_id))
        case ["cmd", verb] if _VERB.fullmatch(verb):
            return TopicMatch("command", node_id, verb=verb)
    return None


#: The borderwatch topic tree.
topics: Final = TopicTree()


# ---------------------------------------------------------------------------- publications


@dataclass(frozen=True, slots=True)
class Publication:
    """One MQTT message to publish (always QoS 1)."""

    topic: str
    payload: bytes
    retain: bool


def _json(message: BaseModel) -> bytes:
    return message.model_dump_json().encode()


def alert_publication(alert: Alert | Concealment) -> Publication:
    """An alert event (a border alert or a CO2 inspection result), not retained: every event
    matters, not only the last."""
    return Publication(topics.alert(), _json(alert), retain=False)


def track_publications(track: Track, border_kind: BorderKindName) -> list[Publication]:
    """A track summary (retained), or for an ended track its final summary (not retained, so
    it is not left behind) followed by an empty retained payload that clears the topic."""
    topic = topics.track(border_kind, track.track_id)
    if track.status is TrackStatus.ENDED:
        return [Publication(topic, _json(track), retain=False), Publication(topic, b"", True)]
    return [Publication(topic, _json(track), retain=True)]


def state_publications(state: NodeState) -> list[Publication]:
    """A node's health (retained) and each of its sensors' (retained)."""
    node_id = state.provenance.node_id
    return [Publication(topics.node_state(node_id), _json(state), retain=True)] + [
        Publication(topics.sensor_state(node_id, s.sensor_id), _json(s), retain=True)
        for s in state.sensors
    ]


def pli_publication(position: Detection) -> Publication:
    """A node's own position (retained: the centre sees where a boat last was)."""
    return Publication(topics.pli(position.provenance.node_id), _json(position), retain=True)


def raise_if_cancelled() -> None:
    """Raise ``CancelledError`` when the current task has been asked to stop.

    On Python 3.11, ``asyncio.wait_for`` (with which aiomqtt awaits a publication's
    acknowledgement) can return the result and drop a cancellation that arrives as the
    acknowledgement does; a sending loop would then go back to waiting for work and never end,
    and neither would the service's shutdown. Call it after each acknowledged publication, in
    tasks that own no TaskGroup (on 3.11 a TaskGroup can leave a cancellation count behind on
    the task that owns it after a child failed).
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _properties(packet: int, *, json_payload: bool, correlation: bytes | None = None) -> Properties:
    props = Properties(packet)  # type: ignore[no-untyped-call]
    if json_payload:
        # MQTT 5 lets receivers and bridges know what the bytes are without parsing them.
        props.PayloadFormatIndicator = 1
        props.ContentType = "application/json"
    if correlation is not None:
        props.CorrelationData = correlation
    return props


# ------------------------------------------------------------------------------- commands


class CommandReply(BaseModel):
    """The reply to a command, published to the request's response topic with its correlation
    data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ok: bool = Field(description="True when the handler ran and returned a result.")
    node_id: str = Field(description="The node that answers.")
    verb: str = Field(description="The command, as in its topic.")
    result: JsonValue = Field(default=None, description="What the handler returned (ok only).")
    error: str | None = Field(default=None, description="Why the command failed (not ok only).")


CommandHandler = Callable[[dict[str, Any]], Awaitable[JsonValue]]
"""An async command handler: the request's JSON object in, a JSON-able result out; raising
sends an error reply."""


# ---------------------------------------------------------------------------------- output


@dataclass(slots=True)
class MqttStats:
    """Counters of an :class:`MqttOutput` since it was made."""

    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    outbox_published: int = 0
    live_published: int = 0
    commands: int = 0
    command_errors: int = 0
    skipped: int = 0
    errors: int = 0
    last_error: str = ""


class MqttOutput:
    """A node's MQTT output: durable outbox in front, one broker connection behind.

    Args:
        settings: broker, timing and outbox settings.
        node_id: the node's id (topics, client id, birth and will).
        outbox_path: the outbox file; None: ``settings.outbox_path``.
        border_kind_of: the border kind of a track (its topic); None: always
            ``settings.track_border_kind``. Asked once per track: a track keeps its topic.
        simulated: the ``provenance.simulated`` flag of the birth and will messages when no
            health report has been published yet (afterwards, the latest report's flags).
        exercise: the same for ``provenance.exercise``.
        rng: random source of the backoff jitter.
    """

    name = "mqtt"

    def __init__(
        self,
        settings: MqttSettings,
        node_id: str,
        outbox_path: str | Path | None = None,
        *,
        border_kind_of: Callable[[Track], BorderKindName] | None = None,
        simulated: bool = False,
        exercise: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        topics.node_state(node_id)  # refuses an id that cannot be a topic level
        self.settings = settings
        self.node_id = node_id
        self.client_id = settings.client_id or f"borderwatch-{node_id}"
        self.outbox = Outbox(
            settings.outbox_path if outbox_path is None else outbox_path,
            max_keyed_rows=settings.max_track_rows,
        )
        self.stats = MqttStats()
        self.connected = False
        self._border_kind_of = border_kind_of
        self._track_kinds: dict[str, BorderKindName] = {}
        self._flags = (simulated, exercise)
        self._rng = rng or random.Random()
        self._handlers: dict[str, CommandHandler] = {}
        self._started = time.monotonic()
        self._last_state: tuple[NodeState, float] | None = None
        # Latest health and position publications by topic: waiting ones, and the last of
        # each (sent again on every connection, in case the broker lost its retained messages).
        self._live: dict[str, Publication] = {}
        self._last_live: dict[str, Publication] = {}
        self._outbox_wake = asyncio.Event()
        self._live_wake = asyncio.Event()

    # ------------------------------------------------------------------ Output protocol

    async def publish(self, message: Envelope) -> None:
        """Queue a message: alerts and tracks in the outbox, health and position in memory.

        Never waits for the network. Detections other than the node's own position are not
        published (the ``det`` topics carry networked sensors' detections to the node).
        """
        if isinstance(message, Alert | Concealment | Track):
            await self.publish_batch([message])
        elif isinstance(message, NodeState):
            self._last_state = (message, time.monotonic())
            self._set_live(state_publications(message))
        elif isinstance(message, Detection) and _is_own_position(message, self.node_id):
            self._set_live([pli_publication(message)])
        else:
            self.stats.skipped += 1
            if self.stats.skipped == 1:
                log.info(
                    "mqtt output: %s messages other than alerts, tracks, health and own "
                    "position are not published",
                    message.type,
                )

    async def publish_batch(self, messages: Sequence[Alert | Concealment | Track]) -> None:
        """Queue a tracker step's alerts and track summaries in the outbox: the alerts in one
        durable transaction (one disk sync however many a step raised), the summaries in one
        ordinary one.

        Each track's rows replace its waiting ones, as :meth:`publish` does one at a time; one
        commit for the whole step keeps a thousand tracks a second affordable.
        """
        alerts = [
            self._pending(m, alert_publication(m))
            for m in messages
            if isinstance(m, Alert | Concealment)
        ]
        groups = [
            (
                track.track_id,
                [
                    self._pending(track, p)
                    for p in track_publications(track, self._track_kind(track))
                ],
            )
            for track in messages
            if isinstance(track, Track)
        ]
        if alerts:
            self.outbox.put(alerts, durable=True)
        if groups:
            self.outbox.put_groups(groups, durable=False)
        if alerts or groups:
            self._outbox_wake.set()

    def backlog(self) -> tuple[int, datetime | None]:
        """Messages waiting in the outbox, and the time of the oldest (None when empty)."""
        return self.outbox.backlog()

    def forward(self, topic: str, payload: bytes, *, msg_id: str, at: datetime) -> int:
        """Queue one durable publication (QoS 1, not retained) through the outbox, in order
        with the alerts: an operator's action forwarded to the centre. Returns its sequence
        number (see :meth:`delivered`)."""
        seq = self.outbox.put(Pending(msg_id, topic, payload, False, at), durable=True)[0]
        self._outbox_wake.set()
        return seq

    def delivered(self, seq: int) -> bool:
        """True once the broker has acknowledged the outbox message ``seq`` (or it is gone)."""
        waiting = self.outbox.peek(1)
        return not waiting or waiting[0].coalesce_key is not None or waiting[0].seq > seq

    def on_command(self, verb: str, handler: CommandHandler) -> None:
        """Answer ``borderwatch/v1/node/<node_id>/cmd/<verb>`` requests with ``handler``."""
        topics.command(self.node_id, verb)  # refuses a verb that is not a topic level
        self._handlers[verb] = handler

    def close(self) -> None:
        """Close the outbox (after :meth:`run` has ended)."""
        self.outbox.close()

    def _pending(self, message: Envelope, pub: Publication) -> Pending:
        return Pending(message.msg_id, pub.topic, pub.payload, pub.retain, message.time)

    def _track_kind(self, track: Track) -> BorderKindName:
        kind = self._track_kinds.get(track.track_id)
        if kind is None:
            kind = (
                self._border_kind_of(track)
                if self._border_kind_of is not None
                else BorderKindName(self.settings.track_border_kind)
            )
        if track.status is TrackStatus.ENDED:
            self._track_kinds.pop(track.track_id, None)
        else:
            self._track_kinds[track.track_id] = kind
        return kind

    def _set_live(self, pubs: Sequence[Publication]) -> None:
        for pub in pubs:
            self._live[pub.topic] = pub
            self._last_live[pub.topic] = pub
        self._live_wake.set()

    # ------------------------------------------------------------------ health messages

    def own_state(self, status: NodeStatus) -> NodeState:
        """This node's state now, for birth (online) and will (offline) messages: the latest
        health report re-issued (new ``msg_id`` and ``time``, current outbox backlog), or a
        minimal one before the first report."""
        now = datetime.now(UTC)
        backlog, oldest = self.backlog()
        if self._last_state is None:
            simulated, exercise = self._flags
            return NodeState(
                msg_id=new_msg_id(),
                time=now,
                provenance=Provenance(
                    node_id=self.node_id,
                    software_version=__version__,
                    simulated=simulated,
                    exercise=exercise,
                ),
                status=status,
                uptime_s=time.monotonic() - self._started,
                messages_received=0,
                messages_published=0,
                errors=0,
                outbox_backlog=backlog,
                outbox_oldest_time=oldest,
            )
        state, received = self._last_state
        return NodeState.model_validate(
            {
                **state.model_dump(),
                "msg_id": new_msg_id(),
                "time": now,
                "status": status,
                "uptime_s": state.uptime_s + (time.monotonic() - received),
                "outbox_backlog": backlog,
                "outbox_oldest_time": oldest,
            }
        )

    # ------------------------------------------------------------------------ running

    async def run(self) -> None:
        """Connect, publish, answer commands and reconnect until cancelled.

        A lost or refused connection is logged and retried after the backoff delay; so is any
        other failure (counted in ``stats.errors``), so the node's output outlives a bad moment
        of its disk or broker.
        """
        backoff = Backoff(self.settings.backoff.initial_s, self.settings.backoff.max_s, self._rng)
        while True:
            connects = self.stats.connects
            try:
                await self._connection(backoff)
            except* aiomqtt.MqttError as group:
                self._link_failed(group, was_connected=self.stats.connects > connects)
            except* Exception as group:
                self.stats.errors += 1
                self.stats.last_error = repr(group.exceptions[0])
                log.error("mqtt output failed; retrying", exc_info=group)
            await asyncio.sleep(backoff.next_delay())

    def _link_failed(
        self, group: BaseExceptionGroup[aiomqtt.MqttError], *, was_connected: bool
    ) -> None:
        reason = str(group.exceptions[0])
        if was_connected:
            self.stats.disconnects += 1
            log.warning("mqtt %s: connection lost (%s)", self.settings.url, reason)
        else:
            self.stats.connect_failures += 1
            if self.stats.connect_failures == 1 or self.stats.connect_failures % 100 == 0:
                log.warning(
                    "mqtt %s: cannot connect (%s); %d messages wait in the outbox",
                    self.settings.url,
                    reason,
                    len(self.outbox),
                )
        self.stats.last_error = reason

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        will = self.own_state(NodeStatus.OFFLINE)
        tls = None
        if s.uses_tls:
            t = s.tls
            tls = aiomqtt.TLSParameters(
                ca_certs=None if t is None or t.ca_file is None else str(t.ca_file),
                certfile=None if t is None or t.cert_file is None else str(t.cert_file),
                keyfile=None if t is None or t.key_file is None else str(t.key_file),
            )
        client = aiomqtt.Client(
            s.host,
            s.port,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            username=s.username,
            password=None if s.password is None else s.password.get_secret_value(),
            will=aiomqtt.Will(
                topics.node_state(self.node_id),
                _json(will),
                qos=1,
                retain=True,
                properties=_properties(PacketTypes.WILLMESSAGE, json_payload=True),
            ),
            # Clean start: the outbox, not the broker session, holds what must not be lost;
            # and commands sent while the boat was away are stale by the time it is back.
            clean_start=True,
            keepalive=s.keepalive_s,
            timeout=s.publish_timeout_s,
            tls_params=tls,
            max_inflight_messages=s.max_inflight,
            max_queued_incoming_messages=256,
        )
        # The drain keeps max_inflight publications waiting on purpose.
        client.pending_calls_threshold = s.max_inflight + 16
        return client

    async def _connection(self, backoff: Backoff) -> None:
        client = self._client()
        async with client:
            self.connected = True
            self.stats.connects += 1
            log.info("mqtt %s: connected as %s", self.settings.url, self.client_id)
            try:
                await self._session(client, backoff)
            except asyncio.CancelledError:
                await self._goodbye(client)
                raise
            finally:
                self.connected = False

    async def _session(self, client: aiomqtt.Client, backoff: Backoff) -> None:
        await self._send(client, self._birth())
        backoff.reset()  # only once the broker has acknowledged something
        self._live.update(
            (t, p) for t, p in self._last_live.items() if t != topics.node_state(self.node_id)
        )
        self._live_wake.set()
        if self._handlers:
            await client.subscribe(topics.command(self.node_id, ANY), qos=1)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._listen(client, tasks), name="mqtt-commands")
            tasks.create_task(self._drain(client), name="mqtt-outbox")
            tasks.create_task(self._send_live(client), name="mqtt-live")

    def _birth(self) -> Publication:
        return Publication(
            topics.node_state(self.node_id), _json(self.own_state(NodeStatus.ONLINE)), True
        )

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        """On a clean stop, say offline before disconnecting (a clean disconnect suppresses
        the will)."""
        offline = Publication(
            topics.node_state(self.node_id), _json(self.own_state(NodeStatus.OFFLINE)), True
        )
        try:
            async with asyncio.timeout(min(2.0, self.settings.publish_timeout_s)):
                await self._send(client, offline)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            log.warning("mqtt: offline state not sent at stop: %s", exc)

    async def _send(self, client: aiomqtt.Client, pub: Publication) -> None:
        """Publish with QoS 1; returns once the broker has acknowledged (PUBACK)."""
        await client.publish(
            pub.topic,
            pub.payload,
            qos=1,
            retain=pub.retain,
            properties=_properties(PacketTypes.PUBLISH, json_payload=bool(pub.payload)),
        )

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Publish the outbox in order, a window of ``max_inflight`` at a time.

        The window's messages go out back to back on one connection, so the broker receives
        (and forwards) them in order; those acknowledged (PUBACK) are deleted together, in one
        transaction, when the window ends. The next window
        starts only when the whole window is acknowledged, so after a failure nothing later
        than the first unacknowledged message has been deleted, and the resend restarts there.
        """
        while True:
            self._outbox_wake.clear()
            window = self.outbox.peek(self.settings.max_inflight)
            if not window:
                await self._outbox_wake.wait()
                continue
            acked: list[OutboxItem] = []
            try:
                # gather, not a TaskGroup: a TaskGroup nested in the session's may swallow the
                # session's cancellation (Python 3.11) and leave this task waiting for ever.
                results = await asyncio.gather(
                    *(self._deliver(client, item, acked) for item in window),
                    return_exceptions=True,
                )
                failed = next((r for r in results if isinstance(r, BaseException)), None)
                if failed is not None:
                    raise failed
            finally:
                # One transaction deletes what the broker acknowledged, also when the window
                # failed part-way (the rest is sent again on the next connection).
                self.outbox.ack_many(acked)

    async def _deliver(
        self, client: aiomqtt.Client, item: OutboxItem, acked: list[OutboxItem]
    ) -> None:
        await self._send(client, Publication(item.topic, item.payload, item.retain))
        acked.append(item)
        self.stats.outbox_published += 1
        raise_if_cancelled()

    async def _send_live(self, client: aiomqtt.Client) -> None:
        """Publish the latest health and position messages; older ones are skipped."""
        while True:
            await self._live_wake.wait()
            self._live_wake.clear()
            while self._live:
                topic, pub = next(iter(self._live.items()))
                await self._send(client, pub)
                self.stats.live_published += 1
                if self._live.get(topic) is pub:  # not replaced while it was in flight
                    del self._live[topic]
                raise_if_cancelled()

    # ------------------------------------------------------------------------ commands

    async def _listen(self, client: aiomqtt.Client, tasks: asyncio.TaskGroup) -> None:
        """Hand each command to a task; ends with MqttError when the connection drops."""
        async for message in client.messages:
            tasks.create_task(self._command(client, message))

    async def _command(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        match = topics.parse(str(message.topic))
        if match is None or match.kind != "command" or match.node_id != self.node_id:
            log.warning("mqtt: message on unexpected topic %s ignored", message.topic)
            return
        assert match.verb is not None
        if message.retain:
            # A retained command would run again at every reconnect.
            log.warning("mqtt: retained command %s ignored", message.topic)
            return
        self.stats.commands += 1
        reply = await self._execute(match.verb, _payload_bytes(message.payload))
        if not reply.ok:
            self.stats.command_errors += 1
        props = message.properties
        response_topic = getattr(props, "ResponseTopic", None)
        if not response_topic:
            log.info(
                "mqtt: command %s had no response topic; reply %s not sent",
                match.verb,
                reply.model_dump_json(),
            )
            return
        correlation = getattr(props, "CorrelationData", None)
        try:
            await client.publish(
                response_topic,
                _json(reply),
                qos=1,
                properties=_properties(
                    PacketTypes.PUBLISH, json_payload=True, correlation=correlation
                ),
            )
        except ValueError as exc:  # paho refuses a wildcard or malformed topic
            log.warning("mqtt: reply to %s not sent: bad response topic: %s", match.verb, exc)

    async def _execute(self, verb: str, payload: bytes) -> CommandReply:
        handler = self._handlers.get(verb)
        if handler is None:
            known = ", ".join(sorted(self._handlers)) or "none"
            return self._error(verb, f"unknown command {verb!r} (known: {known})")
        try:
            request = json.loads(payload) if payload.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return self._error(verb, f"request is not JSON: {exc}")
        if not isinstance(request, dict):
            return self._error(verb, "request must be a JSON object")
        try:
            async with asyncio.timeout(self.settings.command_timeout_s):
                result = await handler(request)
            return CommandReply(ok=True, node_id=self.node_id, verb=verb, result=result)
        except TimeoutError:
            return self._error(verb, f"timed out after {self.settings.command_timeout_s} s")
        except ValidationError as exc:
            return self._error(verb, f"result is not JSON: {exc.errors()[0]['msg']}")
        except Exception as exc:  # a handler's failure is the requester's answer, not ours
            log.exception("mqtt: command %s failed", verb)
            return self._error(verb, f"{type(exc).__name__}: {exc}")

    def _error(self, verb: str, error: str) -> CommandReply:
        return CommandReply(ok=False, node_id=self.node_id, verb=verb, error=error)


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()


def _is_own_position(message: Detection, node_id: str) -> bool:
    return message.provenance.node_id == node_id and isinstance(
        message.measurement, PositionMeasurement
    )


# ---------------------------------------------------------------------------- reference doc


def doc_examples() -> dict[str, list[Publication]]:
    """The publications ``docs/mqtt.md`` shows, made from the schema's reference messages by
    the same functions the output uses."""
    from borderwatch.schema.reference import examples

    ex = examples()
    track, state = ex["track"], ex["node-state"]
    assert isinstance(track, Track)
    assert isinstance(state, NodeState)
    ended = Track.model_validate(
        {**track.model_dump(), "status": "ended", "msg_id": "01JXPQ8A2B3C4D5E6F7G8H9J0K"}
    )
    update = ex["alert-update"]
    assert isinstance(update, Alert)
    end = Alert.model_validate(
        {
            **update.model_dump(),
            "msg_id": "01JXPQ8C1D2E3F4G5H6J7K8M9N",
            "event": "end",
            "end_reason": "confirmed",
            "before": update.after.model_dump(),
        }
    )
    offline = NodeState.model_validate(
        {**state.model_dump(), "msg_id": "01JXPQ8E5F6G7H8J9K0M1N2P3Q", "status": "offline"}
    )
    pli = Detection.model_validate(
        {
            **ex["detection-position"].model_dump(),
            "msg_id": "01JXPQ7X8A9B0C1D2E3F4G5H6K",
            "time": state.time,
            "received_at": state.time,
            "measurement": {
                "model": "position",
                "position": state.position.model_dump() if state.position else None,
                "cov_m2": ((4.0, 0.0), (0.0, 4.0)),
            },
            "class_hint": {"label": "boat", "confidence": 1.0},
            "provenance": {**state.provenance.model_dump(), "sensor_ids": ("gps-1",)},
        }
    )
    node_id = state.provenance.node_id
    inbound = ex["detection-bearing-only"]
    reply = CommandReply(ok=True, node_id=node_id, verb="status", result={"outbox_backlog": 1840})
    request = Publication(topics.command(node_id, "status"), b"{}", retain=False)
    return {
        "node-state": state_publications(state)[:1],
        "node-will": state_publications(offline)[:1],
        "sensor-state": state_publications(state)[1:2],
        "pli": [pli_publication(pli)],
        "sensor-detection": [
            Publication(
                topics.sensor_detections(node_id, inbound.provenance.sensor_ids[0]),
                _json(inbound),
                retain=False,
            )
        ],
        "track": track_publications(track, BorderKindName.BLUE),
        "track-end": track_publications(ended, BorderKindName.BLUE),
        "alert-new": [alert_publication(ex["alert-new"])],  # type: ignore[arg-type]
        "alert-update": [alert_publication(update)],
        "alert-end": [alert_publication(end)],
        "command": [request],
        "command-reply": [Publication(topics.reply("centre-1"), _json(reply), retain=False)],
    }


_BLOCK: Final = re.compile(
    r"(<!-- generated: (?P<what>mqtt|mqtt-fields) (?P<name>[\w-]+) -->\n)(?P<body>.*?)"
    r"(<!-- end generated -->)",
    re.DOTALL,
)


def _field_models() -> dict[str, type[BaseModel]]:
    from borderwatch.config.mqtt import BackoffSettings, TlsSettings

    return {m.__name__: m for m in (MqttSettings, BackoffSettings, TlsSettings, CommandReply)}


def _render_publication(pub: Publication) -> str:
    from borderwatch.schema import parse_message
    from borderwatch.schema.reference import pretty_json

    flags = "QoS 1, retained" if pub.retain else "QoS 1"
    head = f"Topic `{pub.topic}` ({flags}), payload:\n\n"
    if not pub.payload:
        return head + "```\n(empty: zero bytes)\n```\n"
    data = json.loads(pub.payload)
    if data.get("type") in ("detection", "track", "alert", "node_state"):
        text = pretty_json(parse_message(pub.payload))
    else:
        text = json.dumps(data, indent=2, ensure_ascii=False)
    return head + f"```json\n{text}\n```\n"


def render_docs(text: str) -> str:
    """``text`` with every generated block (``<!-- generated: mqtt NAME -->`` for an example,
    ``mqtt-fields MODEL`` for a settings table) made anew."""
    from borderwatch.schema.reference import field_table

    examples = doc_examples()
    models = _field_models()

    def replace(m: re.Match[str]) -> str:
        name = m["name"]
        if m["what"] == "mqtt-fields":
            body = field_table(models[name]) + "\n"
        elif name in examples:
            body = "\n".join(_render_publication(p) for p in examples[name])
        else:
            raise KeyError(f"no MQTT example named {name!r}")
        return m.group(1) + body + m.group(5)

    return _BLOCK.sub(replace, text)


def generated_names(text: str) -> list[str]:
    """Names of the generated example blocks in ``text`` (not the settings tables)."""
    return [m["name"] for m in _BLOCK.finditer(text) if m["what"] == "mqtt"]


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the generated blocks of the markdown files named in ``argv``."""
    for name in sys.argv[1:] if argv is None else argv:
        path = Path(name)
        path.write_text(render_docs(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
