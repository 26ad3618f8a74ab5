"""The driver base class: framing, reconnect, rate statistics and error counting for every device.

A device type's driver (:mod:`borderwatch.drivers.nmea`, :mod:`~borderwatch.drivers.co2`,
:mod:`~borderwatch.drivers.detections`) says only how its data is parsed (a parser from
:mod:`borderwatch.sensors`) and, for a polled device, what to write; :class:`Driver` does the
rest, the same way for every transport:

    open transport -> read chunks -> parser.feed -> sink(Reading)
        ^                                 |
        +-- capped, jittered backoff <----+-- on error or end of stream: count, log, close

Bad input never stops a driver: a rejected line is counted under its reason, logged at most
once per :attr:`Driver.log_interval_s` per reason (with how many were suppressed), and good data
around it is delivered as usual. Health (:meth:`Driver.health`) turns the counters into a status:
``fault`` when the transport is down or most recent messages are rejected (typical of a wrong
baud rate), ``stale`` when connected but nothing was accepted for ``stale_after_s``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from borderwatch.config.devices import BaseDevice
from borderwatch.drivers.transport import (
    Transport,
    TransportError,
    TransportSettings,
    open_transport,
)
from borderwatch.sensors.base import Accepted, Item, LineParser, Rejected, StreamParser
from borderwatch.sensors.registry import make_parser

log = logging.getLogger(__name__)

#: Parsed messages whose outcomes decide the reject-ratio fault (the most recent ones).
RECENT_ITEMS = 20
#: Fewest recent outcomes before the reject ratio is judged (one bad line is no fault).
MIN_RECENT_ITEMS = 5
#: Reject ratio above which the sensor is in fault (garbage: wrong baud rate, wrong device).
FAULT_REJECT_RATIO = 0.5
#: Outcomes older than this are not recent, s (at least; twice ``stale_after_s`` if longer).
RECENT_WINDOW_S = 10.0
#: Window of the accepted-message rate, s.
RATE_WINDOW_S = 10.0


@dataclass(frozen=True, slots=True)
class Reading:
    """One accepted message of one sensor.

    Attributes:
        sensor_id: the device's ``sensor_id`` from configuration.
        t_rx: the driver clock at reception of the bytes that completed the message, seconds
            since the Unix epoch (UTC).
        item: the parsed message (``item.data["kind"]`` says what it is).
    """

    sensor_id: str
    t_rx: float
    item: Accepted


@dataclass(frozen=True, slots=True)
class SensorHealth:
    """Health and counters of one device, counted from the driver's start.

    Attributes:
        sensor_id: the device's ``sensor_id``.
        type: the device type (``gps``, ``ais``, ...).
        status: ``starting`` (no data yet), ``ok``, ``stale`` (connected, nothing accepted for
            ``stale_after_s``) or ``fault`` (transport down, or most recent messages rejected).
        connected: whether the transport is open now.
        last_data_time: driver clock of the last accepted message, s since the epoch; None
            before the first.
        messages: accepted messages.
        errors: rejected messages plus device errors (all of ``rejected``).
        accepted: accepted messages by key (NMEA sentence type, AIS message type, format).
        rejected: rejections by reason: the parser's (``checksum``, ``malformed``, ...) and the
            device's (``open_failed``, ``disconnected``, ``write_failed``, ``no_response``,
            ``overflow``, ``parser_error``).
        rate_hz: accepted messages per second over the last :data:`RATE_WINDOW_S` seconds.
        bytes_in: bytes (or payload bytes) received.
        connects: successful opens of the transport.
        disconnects: connections lost after they were open.
        detail: a short reason when the status is not ``ok``; else empty.
    """

    sensor_id: str
    type: str
    status: str
    connected: bool
    last_data_time: float | None
    messages: int
    errors: int
    accepted: dict[str, int]
    rejected: dict[str, int]
    rate_hz: float
    bytes_in: int
    connects: int
    disconnects: int
    detail: str


class Backoff:
    """Capped exponential backoff with jitter.

    The n-th delay (from 0) is ``min(max_s, initial_s · 2ⁿ)`` scaled by a random factor in
    [0.5, 1): never less than half the nominal delay, and devices that failed together (a
    power cut on the boat) do not retry in lock step.
    """

    def __init__(self, initial_s: float, max_s: float, rng: random.Random) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._rng = rng
        self._attempt = 0

    def next_delay(self) -> float:
        """The delay before the next attempt, s; each call doubles the nominal delay."""
        nominal = min(self.max_s, self.initial_s * 2.0**self._attempt)
        if nominal < self.max_s:
            self._attempt += 1
        return nominal * (0.5 + 0.5 * self._rng.random())

    def reset(self) -> None:
        """Start again from ``initial_s`` (after a connection that delivered data)."""
        self._attempt = 0


class LogLimiter:
    """Logs a message at most once per ``interval_s`` per key; says how many were held back."""

    def __init__(
        self, logger: logging.Logger, interval_s: float, clock: Callable[[], float]
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()

    def log(self, level: int, key: str, message: str, *args: object) -> None:
        """Log ``message % args`` unless ``key`` was logged less than ``interval_s`` ago."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and 0.0 <= now - last < self._interval_s:
            self._held[key] += 1
            return
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            message += " (%d more since the last report)"
            args = (*args, held)
        self._logger.log(level, message, *args)


class _RateMeter:
    """Events per second over a sliding window, in one-second buckets (bounded memory)."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._buckets: deque[list[int]] = deque(maxlen=math.ceil(window_s) + 2)

    def add(self, t: float) -> None:
        second = math.floor(t)
        if self._buckets and self._buckets[-1][0] >= second:
            self._buckets[-1][1] += 1  # same second (or the clock stepped back)
        else:
            self._buckets.append([second, 1])

    def rate(self, now: float, since: float | None) -> float:
        """Events per second in the window ending ``now``; the window starts no earlier than
        ``since`` (the first connection), so a young driver is not under-reported."""
        if since is None:
            return 0.0
        # At least one bucket: events within the first second count over one second.
        span = max(1.0, min(self._window_s, now - since))
        start = now - span
        count = sum(n for second, n in self._buckets if second + 1 > start and second <= now)
        return count / span


DeviceT = TypeVar("DeviceT", bound=BaseDevice)


class Driver(Generic[DeviceT]):
    """Reads one device and hands its accepted messages to ``sink``.

    Subclasses set :attr:`parser_name` (a format of :mod:`borderwatch.sensors.registry`) or
    override :meth:`_new_parser`; a polled device overrides :meth:`_converse`. Everything else
    (transports, framing, reconnect, counters, health, rate-limited logs) is here.

    Args:
        config: the device's settings.
        sink: called on the event loop thread with each accepted :class:`Reading`, in order.
            It must not block; an exception it raises is a programming error and ends
            :meth:`run`.
        clock: time source for ``t_rx`` and health, seconds since the Unix epoch.
        rng: random source of the reconnect jitter (seed it for reproducible tests).
    """

    #: Parser format of this device type, as :func:`borderwatch.sensors.registry.make_parser`
    #: names it.
    parser_name: ClassVar[str] = ""
    #: Shortest interval between two log lines of the same kind, s.
    log_interval_s: ClassVar[float] = 10.0

    def __init__(
        self,
        config: DeviceT,
        sink: Callable[[Reading], None],
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.sensor_id = config.sensor_id
        self._sink = sink
        self._clock = clock
        self._endpoint = config.endpoint
        self._settings = TransportSettings(baudrate=config.baudrate, name=config.sensor_id)
        self._backoff = Backoff(
            config.reconnect_initial_s, config.reconnect_max_s, rng or random.Random()
        )
        self._logs = LogLimiter(log, self.log_interval_s, clock)
        self._transport: Transport | None = None
        # Counters (health) and the state that status is judged from.
        self._accepted: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._recent: deque[tuple[float, bool]] = deque(maxlen=RECENT_ITEMS)
        self._rate = _RateMeter(RATE_WINDOW_S)
        self._items = 0
        self._bytes_in = 0
        self._connects = 0
        self._disconnects = 0
        self._first_connect: float | None = None
        self._connected_at: float | None = None
        self._last_accept: float | None = None
        self._last_bytes: float | None = None
        self._failure: str | None = None  # why the transport is down; None before any failure
        self._dropped_seen = 0

    # -- the hooks a device type implements ------------------------------------------------------

    def _new_parser(self) -> StreamParser:
        """A fresh parser for one connection (buffered bytes do not outlive a connection)."""
        return make_parser(self.parser_name)

    async def _converse(self, transport: Transport) -> None:
        """Runs beside the reader while connected (e.g. to poll the device); returning early is
        fine, raising :class:`TransportError` ends the connection."""
        del transport

    def _accepted_item(self, item: Accepted) -> Accepted:
        """The accepted message as delivered (a device type may annotate it)."""
        return item

    # -- running ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Read the device until cancelled, reopening it after every failure.

        Never raises for device or data errors; a failed open or a lost connection is counted,
        logged (rate-limited) and retried after a capped, jittered exponential backoff.
        """
        log.info("%s: reading %s (%s)", self.sensor_id, self.config.url, self.config.type)
        while True:
            try:
                await self._session()
            except TransportError as exc:
                self._transport_failed(exc)
            delay = self._backoff.next_delay()
            self._logs.log(logging.DEBUG, "retry", "%s: reopening in %.2f s", self.sensor_id, delay)
            await asyncio.sleep(delay)

    async def send(self, data: bytes) -> None:
        """Write ``data`` to the device now (e.g. a configuration command).

        Raises :class:`TransportError`: ``not_connected`` when the transport is down,
        ``write_failed`` when the write fails (the connection is then reopened by :meth:`run`
        when the read side notices).
        """
        transport = self._transport
        if transport is None:
            raise TransportError("not_connected", f"{self.sensor_id}: not connected")
        await transport.write(data)

    async def _session(self) -> None:
        """One connection: open, read until it fails, then flush and close."""
        async with open_transport(self._endpoint, self._settings) as transport:
            parser = self._new_parser()
            self._connected(transport)
            try:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(self._converse(transport))
                    await self._read_loop(transport, parser)
            except* TransportError as group:
                raise group.exceptions[0] from None
            finally:
                self._transport = None
                self._connected_at = None
                # A message cut off by the disconnect is an error of its own.
                self._handle_items(self._safe_close(parser), self._clock())

    async def _read_loop(self, transport: Transport, parser: StreamParser) -> None:
        frame_lines = transport.message_oriented and isinstance(parser, LineParser)
        chunk = await transport.read()
        # This connection delivers: the next failure backs off from the start again.
        self._backoff.reset()
        while True:
            t_rx = self._clock()
            self._note_dropped(transport)
            self._bytes_in += len(chunk)
            self._last_bytes = t_rx
            if frame_lines and not chunk.endswith(b"\n"):
                # A datagram or payload is whole: its last line ends with it.
                chunk += b"\n"
            self._handle_items(self._safe_feed(parser, chunk), t_rx)
            chunk = await transport.read()

    def _safe_feed(self, parser: StreamParser, chunk: bytes) -> list[Item]:
        try:
            return parser.feed(chunk)
        except Exception as exc:  # a parser bug must not stop the device; it is logged
            return self._parser_failed(parser, exc)

    def _safe_close(self, parser: StreamParser) -> list[Item]:
        try:
            return parser.close()
        except Exception as exc:  # as in _safe_feed
            return self._parser_failed(parser, exc)

    def _parser_failed(self, parser: StreamParser, exc: Exception) -> list[Item]:
        log.error(
            "%s: parser %s raised on device data; data dropped",
            self.sensor_id,
            type(parser).__name__,
            exc_info=exc,
        )
        return [Rejected("parser_error", f"{type(exc).__name__}: {exc}")]

    # -- counting --------------------------------------------------------------------------------

    def _handle_items(self, items: list[Item], t_rx: float) -> None:
        for item in items:
            self._items += 1
            if isinstance(item, Accepted):
                self._accepted[item.key] += 1
                self._recent.append((t_rx, True))
                self._rate.add(t_rx)
                self._last_accept = t_rx
                self._sink(Reading(self.sensor_id, t_rx, self._accepted_item(item)))
            else:
                self._rejected[item.reason] += 1
                self._recent.append((t_rx, False))
                self._logs.log(
                    logging.WARNING,
                    item.reason,
                    "%s: rejected (%s) %s",
                    self.sensor_id,
                    item.reason,
                    item.detail,
                )

    def _device_error(self, reason: str, detail: str, count: int = 1) -> None:
        """Count and log (rate-limited) an error of the device rather than of its data."""
        self._rejected[reason] += count
        self._logs.log(logging.WARNING, reason, "%s: %s: %s", self.sensor_id, reason, detail)

    def _note_dropped(self, transport: Transport) -> None:
        if transport.dropped > self._dropped_seen:
            lost = transport.dropped - self._dropped_seen
            self._dropped_seen = transport.dropped
            self._device_error("overflow", f"{lost} messages dropped: the reader fell behind", lost)

    def _connected(self, transport: Transport) -> None:
        now = self._clock()
        self._transport = transport
        self._dropped_seen = 0
        self._connects += 1
        self._connected_at = now
        if self._first_connect is None:
            self._first_connect = now
        if self._failure is not None:
            log.info("%s: connected to %s again", self.sensor_id, self.config.url)
        else:
            log.info("%s: connected to %s", self.sensor_id, self.config.url)
        self._failure = None

    def _transport_failed(self, exc: TransportError) -> None:
        if exc.reason == "disconnected":
            self._disconnects += 1
        self._failure = str(exc)
        self._device_error(exc.reason, exc.detail)

    # -- health ----------------------------------------------------------------------------------

    def health(self, now: float | None = None) -> SensorHealth:
        """The device's health at ``now`` (driver clock, s since the epoch; default: now)."""
        now = self._clock() if now is None else now
        status, detail = self._status(now)
        return SensorHealth(
            sensor_id=self.sensor_id,
            type=self.config.type,
            status=status,
            connected=self._transport is not None,
            last_data_time=self._last_accept,
            messages=self._accepted.total(),
            errors=self._rejected.total(),
            accepted=dict(self._accepted),
            rejected=dict(self._rejected),
            rate_hz=self._rate.rate(now, self._first_connect),
            bytes_in=self._bytes_in,
            connects=self._connects,
            disconnects=self._disconnects,
            detail=detail,
        )

    def _status(self, now: float) -> tuple[str, str]:
        if self._transport is None or self._connected_at is None:
            if self._failure is None:
                return "starting", f"opening {self.config.url}"
            return "fault", self._failure[:200]
        window = max(RECENT_WINDOW_S, 2.0 * self.config.stale_after_s)
        recent = [ok for t, ok in self._recent if now - t <= window]
        bad = recent.count(False)
        if len(recent) >= MIN_RECENT_ITEMS and bad > FAULT_REJECT_RATIO * len(recent):
            return "fault", (
                f"{bad} of the last {len(recent)} messages rejected "
                "(wrong baud rate, device or format?)"
            )
        since = self._last_accept if self._last_accept is not None else self._connected_at
        silent = now - max(since, self._connected_at)
        if silent > self.config.stale_after_s:
            detail = f"no message accepted for {silent:.1f} s"
            if self._last_bytes is not None and self._last_bytes > since:
                detail += "; bytes arrive but none parse"
            return "stale", detail
        if self._last_accept is None:
            return "starting", "connected, waiting for data"
        return "ok", ""
