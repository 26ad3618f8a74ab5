"""TAK output: tracks, own units and alerts as CoT events to TAK clients and servers.

::

    node: alerts, own position, track table ─┐                   ┌─ sender udp://…  (datagrams)
                                             ├─ CotPicture ─ put ┼─ sender tcp://…  (stream)
    centre: picture, alert events, PLI, ─────┘  (what to send)   └─ sender tls://…  (stream)
            operator actions                                         bounded queue each

:class:`CotPicture` decides what to send: every confirmed track at most once per
``track_min_interval_s`` (at once when it is new or changes type), a final stale event (and a
``t-x-d-d`` delete) when a track leaves the picture, own units, alerts with their remarks.
Each :class:`CotSender` keeps a bounded queue: alert events in order (up to
``max_queued_alerts``), tracks and units as the latest event per uid (up to
``max_queued_tracks``); alerts go first and are never dropped to make room for tracks. A
stream sender reconnects with capped, jittered exponential backoff, logs a failure at most
once per ``log_interval_s`` per reason, counts everything in :class:`TakStats`, and after a
reconnect sends again the latest event of every open alert, so an alert state written into a
connection that died is not lost.

The senders start on the first message, on the running loop, and end with :meth:`aclose`
(the node and the centre call it when they stop). Nothing here can stop the service: a
destination that is down, refuses or drops the connection is an error counted, logged and
retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import itertools
import logging
import random
import socket
import ssl
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from borderwatch.config.tak import TakOutputSettings, TakSettings
from borderwatch.drivers.base import Backoff, LogLimiter
from borderwatch.edge.cot import (
    CotEvent,
    CotTrack,
    alert_event,
    alert_uid,
    circular_error_m,
    to_xml,
    track_event,
    track_type,
    track_uid,
    unit_event,
)
from borderwatch.fusion.outputs import AlertEvent, AlertKind, TrackTable
from borderwatch.schema import (
    Alert,
    Detection,
    Envelope,
    NodeState,
    NodeStatus,
    PositionMeasurement,
    Publisher,
    QueueState,
    TargetClassName,
    Track,
)
from borderwatch.schema.convert import COAST_AFTER_S, time_at

if TYPE_CHECKING:  # the centre imports this module when it has TAK settings
    from borderwatch.edge.centre import AlertAction, Picture, ViewItem

log = logging.getLogger(__name__)

Flags = Callable[[CotTrack], tuple[bool, bool]]
"""Whether a track's data is (simulated, exercise)."""

#: Events handed to a stream's kernel buffer before waiting for it to drain.
BATCH: Final = 64
#: Open alerts remembered for operator actions and affiliations (the oldest are forgotten).
MAX_OPEN_ALERTS: Final = 10_000
#: Tracks turned into events between two chances for the event loop to run other work.
TRACK_CHUNK: Final = 32
#: Longest wait of :meth:`CotSender.drain` at a stop, s.
DRAIN_S: Final = 1.0


# ---------------------------------------------------------------------------------- queue


@dataclass(slots=True)
class TakStats:
    """Counters of one TAK output since it was made."""

    sent: int = 0
    dropped_alerts: int = 0
    dropped_tracks: int = 0
    connects: int = 0
    disconnects: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def dropped(self) -> int:
        """Events dropped because the queue was full."""
        return self.dropped_alerts + self.dropped_tracks


@dataclass(frozen=True, slots=True)
class _Item:
    seq: int
    uid: str
    data: bytes


class CotQueue:
    """Alert events in order (bounded), tracks and units as the latest event per uid (bounded).

    :meth:`peek` hands out what to send next (alerts first) without removing it; :meth:`done`
    removes what was sent, unless a newer event of the same uid replaced it meanwhile.
    """

    def __init__(self, max_alerts: int, max_tracks: int, stats: TakStats) -> None:
        self.max_alerts = max_alerts
        self.max_tracks = max_tracks
        self.stats = stats
        self._alerts: deque[_Item] = deque()
        self._tracks: OrderedDict[str, _Item] = OrderedDict()
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._alerts) + len(self._tracks)

    def put(self, uid: str, data: bytes, *, alert: bool) -> None:
        """Queue one event; the oldest of its kind is dropped (counted) beyond the bound."""
        item = _Item(next(self._seq), uid, data)
        if alert:
            self._alerts.append(item)
            if len(self._alerts) > self.max_alerts:
                self._alerts.popleft()
                self.stats.dropped_alerts += 1
            return
        self._tracks[uid] = item
        self._tracks.move_to_end(uid)
        if len(self._tracks) > self.max_tracks:
            self._tracks.popitem(last=False)
            self.stats.dropped_tracks += 1

    def put_first(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Queue alert events ahead of all others (a resend of states older than any queued);
        uids that have an event waiting are skipped."""
        waiting = {i.uid for i in self._alerts}
        fresh = [_Item(next(self._seq), uid, data) for uid, data in items if uid not in waiting]
        room = max(0, self.max_alerts - len(self._alerts))
        self._alerts.extendleft(reversed(fresh[-room:] if room else []))

    def peek(self, n: int) -> list[_Item]:
        """Up to ``n`` events to send next: alerts in order, then tracks."""
        out = list(itertools.islice(self._alerts, n))
        if len(out) < n:
            out += itertools.islice(self._tracks.values(), n - len(out))
        return out

    def done(self, items: Sequence[_Item]) -> None:
        """Forget events that were sent."""
        sent = {i.seq for i in items}
        while self._alerts and self._alerts[0].seq in sent:
            self._alerts.popleft()
        if any(i.seq in sent for i in self._alerts):  # dropped from the left meanwhile
            self._alerts = deque(i for i in self._alerts if i.seq not in sent)
        for item in items:
            current = self._tracks.get(item.uid)
            if current is not None and current.seq == item.seq:
                del self._tracks[item.uid]


# -------------------------------------------------------------------------------- senders


def udp_socket(settings: TakOutputSettings, info: tuple[Any, ...] | None = None) -> socket.socket:
    """A non-blocking UDP socket connected to the output's address (``info``, one
    ``getaddrinfo`` result; resolved here when not given), with the multicast TTL (IPv4) or
    hop limit (IPv6) set for a multicast group. Connecting a UDP socket sends nothing."""
    if info is None:
        info = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_DGRAM)[0]
    family, kind, proto, _name, address = info
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        if settings.multicast or ipaddress.ip_address(address[0]).is_multicast:
            if family == socket.AF_INET6:
                sock.setsockopt(
                    socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, settings.multicast_ttl
                )
            else:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, settings.multicast_ttl)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def tls_context(settings: TakOutputSettings) -> ssl.SSLContext:
    """Client TLS context: the server verified against ``ca_file`` (or the system's
    authorities), the client certificate and key when given."""
    context = ssl.create_default_context(
        cafile=None if settings.ca_file is None else str(settings.ca_file)
    )
    if settings.cert_file is not None and settings.key_file is not None:
        context.load_cert_chain(str(settings.cert_file), str(settings.key_file))
    return context


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, on_error: Callable[[Exception], None]) -> None:
        self._on_error = on_error

    def error_received(self, exc: Exception) -> None:
        self._on_error(exc)


class CotSender:
    """Sends queued CoT events to one destination (see the module docstring)."""

    def __init__(
        self, settings: TakOutputSettings, tak: TakSettings, rng: random.Random | None = None
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.stats = TakStats()
        self.queue = CotQueue(tak.max_queued_alerts, tak.max_queued_tracks, self.stats)
        self.connected = False
        self._tak = tak
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._limiter = LogLimiter(log, tak.log_interval_s, time.monotonic)
        # The latest event of every open alert, resent after a reconnect.
        self._open_alerts: OrderedDict[str, bytes] = OrderedDict()

    def put(self, event: CotEvent, data: bytes) -> None:
        """Queue one event (its XML ``data``)."""
        alert = event.is_alert
        self.queue.put(event.uid, data, alert=alert)
        if alert:
            if event.stale <= event.time:
                self._open_alerts.pop(event.uid, None)
            else:
                self._open_alerts[event.uid] = data
                self._open_alerts.move_to_end(event.uid)
                while len(self._open_alerts) > MAX_OPEN_ALERTS:
                    self._open_alerts.popitem(last=False)
        self._wake.set()

    def queue_state(self) -> QueueState:
        """The queue's fill level, for a node's health report (``tak.<name>``)."""
        capacity = self.queue.max_alerts + self.queue.max_tracks
        return QueueState(
            name=f"tak.{self.name}",
            depth=min(len(self.queue), capacity),
            capacity=capacity,
            dropped=self.stats.dropped,
        )

    async def run(self) -> None:
        """Send until cancelled."""
        if self.settings.scheme == "udp":
            await self._run_udp()
        else:
            await self._run_stream()

    async def drain(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the queue to empty (while connected)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(self.queue) and loop.time() < deadline:
            if self.settings.scheme != "udp" and not self.connected:
                return
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ errors

    def _error(self, reason: str, exc: BaseException | str) -> None:
        self.stats.errors[reason] += 1
        self._limiter.log(
            logging.ERROR,
            reason,
            "TAK output %s (%s): %s: %s",
            self.name,
            self.settings.url,
            reason.replace("_", " "),
            str(exc) or type(exc).__name__,
        )

    # --------------------------------------------------------------------- udp

    async def _run_udp(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff(self._tak.backoff_initial_s, self._tak.backoff_max_s, self._rng)
        while True:
            try:
                infos = await loop.getaddrinfo(
                    self.settings.host, self.settings.port, type=socket.SOCK_DGRAM
                )
                sock = udp_socket(self.settings, infos[0])
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Datagrams(lambda exc: self._error("send_failed", exc)), sock=sock
                )
            except OSError as exc:
                self._error("open_failed", exc)
                await asyncio.sleep(backoff.next_delay())
                continue
            self.connected = True
            try:
                while True:
                    self._wake.clear()
                    batch = self.queue.peek(BATCH)
                    if not batch:
                        await self._wake.wait()
                        continue
                    for item in batch:
                        try:
                            transport.sendto(item.data)
                        except OSError as exc:  # the datagram is lost; UDP promises nothing
                            self._error("send_failed", exc)
                        else:
                            self.stats.sent += 1
                    self.queue.done(batch)
                    await asyncio.sleep(0)
            finally:
                self.connected = False
                transport.close()

    # ------------------------------------------------------------------ stream

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        s = self.settings
        context = tls_context(s) if s.scheme == "tls" else None
        async with asyncio.timeout(self._tak.connect_timeout_s):
            return await asyncio.open_connection(
                s.host,
                s.port,
                ssl=context,
                server_hostname=(s.server_hostname or s.host) if context else None,
            )

    async def _run_stream(self) -> None:
        backoff = Backoff(self._tak.backoff_initial_s, self._tak.backoff_max_s, self._rng)
        first = True
        while True:
            try:
                reader, writer = await self._connect()
            except (OSError, TimeoutError) as exc:
                self._error("connect_failed", exc)
                await asyncio.sleep(backoff.next_delay())
                continue
            self.stats.connects += 1
            self.connected = True
            log.info("TAK output %s connected to %s", self.name, self.settings.url)
            if not first:
                self.queue.put_first(self._open_alerts.items())
            first = False
            sent_before = self.stats.sent
            try:
                await self._pump(reader, writer)
            except (OSError, TimeoutError) as exc:
                self._error("disconnected", exc)
            finally:
                self.connected = False
                self.stats.disconnects += 1
                writer.close()
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await writer.wait_closed()
            if self.stats.sent > sent_before:
                backoff.reset()
            await asyncio.sleep(backoff.next_delay())

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Write queued events until the connection fails or the peer closes it."""
        incoming = asyncio.ensure_future(_discard(reader))
        try:
            while True:
                if incoming.done():
                    incoming.result()  # raises what ended it
                self._wake.clear()
                batch = self.queue.peek(BATCH)
                if not batch:
                    woken = asyncio.ensure_future(self._wake.wait())
                    await asyncio.wait({woken, incoming}, return_when=asyncio.FIRST_COMPLETED)
                    woken.cancel()
                    continue
                for item in batch:
                    writer.write(item.data)
                async with asyncio.timeout(self._tak.connect_timeout_s):
                    await writer.drain()
                self.queue.done(batch)
                self.stats.sent += len(batch)
        finally:
            incoming.cancel()
            with contextlib.suppress(BaseException):
                await incoming


async def _discard(reader: asyncio.StreamReader) -> None:
    """Read and drop what the server sends (a TAK server relays other clients' events);
    raise when it closes the connection."""
    while await reader.read(65536):
        pass
    raise ConnectionResetError("connection closed by the server")


# -------------------------------------------------------------------------------- picture


def _now(clock: Callable[[], float]) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)


@dataclass(slots=True)
class _Shown:
    event: CotEvent
    sent_at: float  # clock seconds


class CotPicture:
    """What goes to TAK: decides which events to send and hands them to ``emit``.

    Args:
        settings: the TAK settings.
        emit: takes every event to send (the output queues it to each sender).
        clock: wall clock, Unix seconds.
    """

    def __init__(
        self,
        settings: TakSettings,
        emit: Callable[[CotEvent], None],
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self._emit = emit
        self._clock = clock
        self._tracks: dict[str, _Shown] = {}
        self._units: dict[str, CotEvent] = {}
        self._alerts: OrderedDict[str, Alert] = OrderedDict()
        self._alert_events: dict[str, CotEvent] = {}
        self._open_kind: dict[str, AlertKind] = {}  # by track id

    # ------------------------------------------------------------------ tracks

    def tracks(
        self, views: Sequence[CotTrack], flags: Callable[[CotTrack], tuple[bool, bool]]
    ) -> None:
        """Take the full set of tracks now: send those due, end those that left.
        ``flags(view)`` says whether a track is (simulated, exercise)."""
        for _ in self.track_steps(views, flags):
            pass

    def track_steps(
        self,
        views: Sequence[CotTrack],
        flags: Callable[[CotTrack], tuple[bool, bool]],
        chunk: int = TRACK_CHUNK,
    ) -> Iterator[None]:
        """:meth:`tracks` in steps: yields after every ``chunk`` tracks, so a caller on the
        event loop can let other work (an alert) run between them."""
        now_s = self._clock()
        now = datetime.fromtimestamp(now_s, UTC)
        seen: set[str] = set()
        for i, view in enumerate(views):
            if i % chunk == chunk - 1:
                yield
            uid = track_uid(view.track_id)
            seen.add(uid)
            open_alert = self._open_kind.get(view.track_id)
            shown = self._tracks.get(uid)
            if (
                shown is not None
                and now_s - shown.sent_at < self.settings.track_min_interval_s
                and shown.event.type == track_type(view, self.settings, open_alert)
            ):
                continue  # not due: nothing is built
            simulated, exercise = flags(view)
            event = track_event(
                view,
                self.settings,
                now=now,
                simulated=simulated,
                exercise=exercise,
                open_alert=open_alert,
            )
            self._tracks[uid] = _Shown(event, now_s)
            self._emit(event)
        for uid in [u for u in self._tracks if u not in seen]:
            self._end(self._tracks.pop(uid).event, now)

    def _end(self, event: CotEvent, now: datetime) -> None:
        self._emit(event.ended(now))
        if self.settings.send_deletes:
            self._emit(event.delete(now))

    def track_type_of(self, track_id: str) -> str | None:
        """The CoT type last sent for a track, if it is shown."""
        shown = self._tracks.get(track_uid(track_id))
        return None if shown is None else shown.event.type

    # ------------------------------------------------------------------- units

    def unit(self, node_id: str, position: Detection, simulated: bool, exercise: bool) -> None:
        """An own unit's position (a ``pli`` position detection)."""
        m = position.measurement
        if not isinstance(m, PositionMeasurement):
            return
        event = unit_event(
            node_id,
            time=position.time,
            lat=m.position.lat_deg,
            lon=m.position.lon_deg,
            alt_m=m.position.alt_m,
            cov=m.cov_m2,
            kind=self.settings.own_units.get(node_id, self.settings.default_unit),
            settings=self.settings,
            now=_now(self._clock),
            simulated=simulated,
            exercise=exercise,
        )
        self._units[node_id] = event
        self._emit(event)

    def unit_gone(self, node_id: str) -> None:
        """An own unit went offline: its item leaves the map."""
        event = self._units.pop(node_id, None)
        if event is not None:
            self._end(event, _now(self._clock))

    # ------------------------------------------------------------------ alerts

    def alert(self, alert: Alert) -> None:
        """An alert event (new, update, end)."""
        kind = alert.kind
        if alert.event is AlertEvent.END:
            self._alerts.pop(alert.alert_id, None)
            if self._open_kind.get(alert.track_id) is kind:
                del self._open_kind[alert.track_id]
        else:
            self._alerts[alert.alert_id] = alert
            self._alerts.move_to_end(alert.alert_id)
            if self._open_kind.get(alert.track_id) is not AlertKind.CROSSING:
                self._open_kind[alert.track_id] = kind
            while len(self._alerts) > MAX_OPEN_ALERTS:
                _, old = self._alerts.popitem(last=False)
                self._open_kind.pop(old.track_id, None)
        self._send_alert(alert, None)

    def action(self, action: AlertAction) -> None:
        """An operator's action on a (centre) alert: its remarks say so; closing removes it."""
        alert = self._alerts.get(action.alert_id)
        if alert is None:
            return
        status = f"status {action.status}"
        if action.acknowledged_by:
            status += f"; acknowledged by {action.acknowledged_by}"
        if action.assignee:
            status += f"; assigned to {action.assignee}"
        if action.closed_by:
            status += f"; closed by {action.closed_by}"
        if action.status == "closed":
            del self._alerts[action.alert_id]
            event = self._alert_events.pop(alert_uid(alert.alert_id), None)
            if event is not None:
                self._end(replace_remarks(event, status), _now(self._clock))
            return
        self._send_alert(alert, status)

    def _send_alert(self, alert: Alert, status: str | None) -> None:
        now = _now(self._clock)
        link_type = self.track_type_of(alert.track_id) or track_type(
            CotTrack(
                track_id=alert.track_id,
                time=alert.time,
                lat=0.0,
                lon=0.0,
                alt_m=None,
                cov=((0.0, 0.0), (0.0, 0.0)),
                speed_mps=0.0,
                course_deg=0.0,
                label=alert.after.class_hint.label,
                confidence=alert.after.class_hint.confidence,
            ),
            self.settings,
            alert.kind if alert.event is not AlertEvent.END else None,
        )
        event = alert_event(alert, self.settings, now=now, track_type_code=link_type, status=status)
        self._emit(event)
        if alert.event is AlertEvent.END:
            self._alert_events.pop(event.uid, None)
            if self.settings.send_deletes:
                self._emit(event.delete(now))
        else:
            self._alert_events[event.uid] = event
            while len(self._alert_events) > MAX_OPEN_ALERTS:
                self._alert_events.pop(next(iter(self._alert_events)))


def replace_remarks(event: CotEvent, status: str) -> CotEvent:
    """``event`` with ``status`` as the last line of its remarks."""
    remarks = (event.remarks or "").rstrip("\n")
    return replace(event, remarks=f"{remarks}\n{status}" if remarks else status)


# ------------------------------------------------------------------------------- outputs


class _TakBase:
    """The senders of a node's or centre's TAK settings and the worker that feeds them, both
    started on first use on the running loop.

    What arrives (alerts, positions, actions; a track table or picture) is queued and returns
    at once; the worker takes the items in order, then the latest track snapshot (older ones
    are superseded), in chunks, taking newly arrived items between chunks, so a thousand
    tracks never hold an alert back or block the loop for long.
    """

    name = "tak"

    def __init__(
        self,
        settings: TakSettings,
        clock: Callable[[], float],
        rng: random.Random | None,
    ) -> None:
        self.settings = settings
        self.senders = [CotSender(o, settings, rng) for o in settings.outputs]
        self.picture = CotPicture(settings, self._emit, clock)
        self.clock = clock
        self.errors: Counter[str] = Counter()
        circular_error_m(((1.0, 0.0), (0.0, 1.0)))  # builds its table now, not on the loop
        self._items: deque[Callable[[], None]] = deque()
        self._snapshot: Callable[[], tuple[list[CotTrack], Flags]] | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    def _emit(self, event: CotEvent) -> None:
        try:
            data = to_xml(event)
        except ValueError as exc:  # a number that is not finite: this event only is lost
            self.errors["build"] += 1
            log.error("TAK: event %s not built: %s", event.uid, exc)
            return
        for sender in self.senders:
            sender.put(event, data)

    def _start(self) -> None:
        if self._tasks or self._closed:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(s.run(), name=f"tak-{s.name}") for s in self.senders]
        self._tasks.append(loop.create_task(self._work(), name="tak-work"))

    def _submit(self, item: Callable[[], None]) -> None:
        if self._closed:
            return
        self._start()
        self._items.append(item)
        self._wake.set()

    def _submit_tracks(self, snapshot: Callable[[], tuple[list[CotTrack], Flags]]) -> None:
        if self._closed:
            return
        self._start()
        self._snapshot = snapshot
        self._wake.set()

    def _run_items(self) -> None:
        while self._items:
            item = self._items.popleft()
            try:
                item()
            except Exception:  # one bad message must not stop the output
                self.errors["internal"] += 1
                log.exception("TAK: a message could not be turned into events")

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._run_items()
            snapshot, self._snapshot = self._snapshot, None
            if snapshot is None:
                continue
            try:
                views, flags = snapshot()
                for _ in self.picture.track_steps(views, flags):
                    self._run_items()
                    await asyncio.sleep(0)
            except Exception:
                self.errors["internal"] += 1
                log.exception("TAK: tracks could not be turned into events")

    def queue_states(self) -> list[QueueState]:
        """One queue state per output (``tak.<name>``)."""
        return [s.queue_state() for s in self.senders]

    def error_counts(self) -> dict[str, int]:
        """Errors by output and reason (``tak.<name>.<reason>``), and ``tak.build`` /
        ``tak.internal`` for events that could not be made."""
        counts = {f"tak.{s.name}.{r}": n for s in self.senders for r, n in s.stats.errors.items()}
        counts.update({f"tak.{r}": n for r, n in self.errors.items()})
        return counts

    async def aclose(self, drain_s: float = DRAIN_S) -> None:
        """Turn what is waiting into events, send them (up to ``drain_s``) and stop."""
        self._closed = True
        if not self._tasks:
            return
        worker = self._tasks.pop()
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        self._run_items()  # the last alerts and the offline state, not the last tracks
        with contextlib.suppress(Exception):
            await asyncio.gather(*(s.drain(drain_s) for s in self.senders))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


class TakOutput(_TakBase):
    """A node's TAK output: an :class:`~borderwatch.edge.node.Output` that also takes the
    step's batch and the full track table (``BatchOutput`` and ``TrackView``).

    Alerts and the node's own position go out as they are published; tracks from the full
    table of confirmed tracks at each report interval (a TAK client does not dead-reckon, so
    the radio's dead-reckoned summaries are not enough), with the AIS names the summaries
    carry.
    """

    def __init__(
        self,
        settings: TakSettings,
        publisher: Publisher,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(settings, clock, rng)
        self.publisher = publisher
        self._names: dict[str, str] = {}

    def _flags(self, _view: CotTrack) -> tuple[bool, bool]:
        return self.publisher.simulated, self.publisher.exercise

    async def publish(self, message: Envelope) -> None:
        self._submit(functools.partial(self._take, message))

    async def publish_batch(self, messages: Sequence[Alert | Track]) -> None:
        for message in messages:
            self._submit(functools.partial(self._take, message))

    def _take(self, message: Envelope) -> None:
        p = self.publisher
        if isinstance(message, Alert):
            self.picture.alert(message)
        elif isinstance(message, Track):
            if message.vessel is not None and message.vessel.name:
                self._names[message.track_id] = message.vessel.name
        elif isinstance(message, Detection) and message.provenance.node_id == p.node_id:
            self.picture.unit(p.node_id, message, p.simulated, p.exercise)
        elif isinstance(message, NodeState) and message.status is NodeStatus.OFFLINE:
            self.picture.unit_gone(p.node_id)

    def show_tracks(self, table: TrackTable) -> None:
        self._submit_tracks(functools.partial(self._views, table))

    def _views(self, table: TrackTable) -> tuple[list[CotTrack], Flags]:
        views = table_views(table, self.publisher, self._names)
        live = {v.track_id for v in views}
        self._names = {k: v for k, v in self._names.items() if k in live}
        return views, self._flags


def table_views(
    table: TrackTable, publisher: Publisher, names: dict[str, str] | None = None
) -> list[CotTrack]:
    """The rows of a node's track table as :class:`CotTrack` (WGS-84, the node's ids)."""
    n = len(table)
    if n == 0:
        return []
    latlon = publisher.frame.to_wgs84(table.x[:, :2])
    time = time_at(table.t, publisher.epoch)
    vx, vy = table.x[:, 2], table.x[:, 3]
    speed = np.hypot(vx, vy)
    course = np.degrees(np.arctan2(vx, vy)) % 360.0
    names = names or {}
    views = []
    for i in range(n):
        track_id = f"{publisher.node_id}:{int(table.track_id[i])}"
        P = table.P[i, :2, :2]
        mmsi = int(table.identity[i])
        views.append(
            CotTrack(
                track_id=track_id,
                time=time,
                lat=float(latlon[i, 0]),
                lon=float(latlon[i, 1]),
                alt_m=None,
                cov=(
                    (float(P[0, 0]), float((P[0, 1] + P[1, 0]) / 2)),
                    (float((P[0, 1] + P[1, 0]) / 2), float(P[1, 1])),
                ),
                speed_mps=float(speed[i]),
                course_deg=float(course[i]) if speed[i] > 0 else 0.0,
                label=TargetClassName.from_core(int(table.cls[i])),
                confidence=float(table.cls_conf[i]),
                coasting=bool(table.t - float(table.last_update_t[i]) > COAST_AFTER_S),
                vessel_name=names.get(track_id),
                mmsi=mmsi if mmsi > 0 else None,
                own=bool(table.own[i]),
                dark=bool(table.dark[i]),
            )
        )
    return views


class TakView(_TakBase):
    """A centre's TAK output (a :class:`~borderwatch.edge.centre.CentreView`): the fused
    picture's tracks, the centre's alerts with what operators did about them, and every node
    as an own unit. Exercise and simulation flags come from the nodes' own messages: a fused
    track is an exercise's if any of its nodes is in one."""

    def __init__(
        self,
        settings: TakSettings,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(settings, clock, rng)
        self._node_flags: dict[str, tuple[bool, bool]] = {}
        self._members: dict[str, tuple[str, ...]] = {}

    def show(self, item: ViewItem) -> None:
        if item.type == "picture":
            self._submit_tracks(functools.partial(self._views, item))
        else:
            self._submit(functools.partial(self._take, item))

    def _take(self, item: ViewItem) -> None:
        # By type name: the centre module imports this one.
        if item.type == "centre_alert":
            self.picture.alert(item.alert)
        elif item.type == "alert_action":
            self.picture.action(item)
        elif isinstance(item, NodeState):
            flags = (item.provenance.simulated, item.provenance.exercise)
            self._node_flags[item.node_id] = flags
            if item.status is NodeStatus.OFFLINE:
                self.picture.unit_gone(item.node_id)
        elif isinstance(item, Detection):  # a node's own position (pli)
            node_id = item.provenance.node_id
            flags = (item.provenance.simulated, item.provenance.exercise)
            self._node_flags[node_id] = flags
            self.picture.unit(node_id, item, *flags)

    def _flags(self, view: CotTrack) -> tuple[bool, bool]:
        flags = [self._node_flags.get(n, (False, False)) for n in self._members[view.track_id]]
        return any(f[0] for f in flags), any(f[1] for f in flags)

    def _views(self, picture: Picture) -> tuple[list[CotTrack], Flags]:
        views = []
        self._members = {}
        for t in picture.tracks:
            hint = t.class_hint
            self._members[t.track_id] = tuple(m.node_id for m in t.members)
            coasting = (picture.time - t.last_report_time).total_seconds() > COAST_AFTER_S
            views.append(
                CotTrack(
                    track_id=t.track_id,
                    time=picture.time,
                    lat=t.position.lat_deg,
                    lon=t.position.lon_deg,
                    alt_m=t.position.alt_m,
                    cov=t.cov_m2,
                    speed_mps=t.velocity.speed_mps,
                    course_deg=t.velocity.course_deg,
                    label=TargetClassName.UNKNOWN if hint is None else hint.label,
                    confidence=0.0 if hint is None else hint.confidence,
                    coasting=coasting,
                )
            )
        return views, self._flags


__all__ = [
    "CotPicture",
    "CotQueue",
    "CotSender",
    "TakOutput",
    "TakStats",
    "TakView",
    "table_views",
    "tls_context",
    "udp_socket",
]
