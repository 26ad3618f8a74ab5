"""WebSocket clients of the console: who gets which frame, and what a slow client loses.

Every client has its own sender task and three kinds of pending frames:

* **urgent** (alert frames, replies, errors, pongs): a bounded queue, sent first and never
  dropped; when it overflows (the client does not read), the client is disconnected and
  resynchronises with a snapshot when it reconnects. Counted in ``clients_overflowed``.
* **latest** (units, health): only the newest of each kind waits.
* **tracks**: only the newest frame waits; a frame replaced before it was sent is dropped
  (counted in ``track_frames_dropped``), and the ids it removed go out with the next one.

Frames are JSON text built once by the caller and shared by every client. A send that takes
longer than ``send_timeout_s`` ends the connection (a client that vanished mid-send).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from borderwatch.drivers.base import LogLimiter
from borderwatch.edge.web.picture import TracksFrame, dumps

log = logging.getLogger(__name__)

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Note = Annotated[str, StringConstraints(max_length=500)]

#: WebSocket close codes the hub uses.
CLOSE_OVERFLOW = 1013  # try again later: the client fell behind on alerts
CLOSE_TOO_BIG = 1009
CLOSE_FULL = 1013


# ----------------------------------------------------------------------------- client messages


class _ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActMessage(_ClientMessage):
    """An operator action from the page (same effect as ``POST /api/alerts/{id}/{verb}``)."""

    type: Literal["act"] = Field(description="Message type.")
    request_id: Annotated[str, StringConstraints(max_length=128)] = Field(
        description="Echoed in the result frame."
    )
    verb: Literal["acknowledge", "assign", "close"] = Field(description="The action.")
    alert_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="The alert acted on."
    )
    operator: Name = Field(description="Who acts.")
    assignee: Name | None = Field(default=None, description="Who is sent (assign only).")
    note: Note = Field(default="", description="Free text, at most 500 characters.")


class PingMessage(_ClientMessage):
    """A keep-alive; answered with a pong."""

    type: Literal["ping"] = Field(description="Message type.")


ClientMessage = Annotated[ActMessage | PingMessage, Field(discriminator="type")]
_client_message: TypeAdapter[ActMessage | PingMessage] = TypeAdapter(ClientMessage)


def parse_client_message(data: str | bytes) -> ActMessage | PingMessage | str:
    """A client's WebSocket message, or the reason it is refused (never raises)."""
    try:
        value = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        return f"not JSON: {exc}"[:200]
    if not isinstance(value, dict):
        return "a message is a JSON object with a type"
    kind = value.get("type")
    if kind not in ("act", "ping"):
        return f"unknown message type {str(kind)[:40]!r} (act, ping)"
    try:
        return _client_message.validate_python(value)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(x) for x in first["loc"][1:]) or "message"
        return f"bad {kind} message: {where}: {first['msg']}"[:300]


# ------------------------------------------------------------------------------------ clients


@dataclass(slots=True)
class HubStats:
    """Counters of a :class:`Hub` since it started."""

    connects: int = 0
    disconnects: int = 0
    frames_sent: int = 0
    track_frames_dropped: int = 0
    clients_overflowed: int = 0
    clients_refused: int = 0
    ws_errors: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class _Tracks:
    """A tracks frame as sent: its time, the ids it removes and its text."""

    time: datetime
    removed: list[str]
    text: str


@dataclass(eq=False, slots=True)
class Client:
    """One connected page."""

    ws: WebSocket
    capacity: int
    urgent: deque[str] = field(default_factory=deque)
    latest: dict[str, str] = field(default_factory=dict)
    tracks: _Tracks | None = None
    removed: set[str] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None
    close_reason: str = ""
    sender: asyncio.Task[None] | None = None

    def kill(self, code: int, reason: str) -> None:
        """End the connection: the sender stops at once (even in the middle of a send the
        client does not take) and the connection is closed."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        if self.sender is not None:
            self.sender.cancel()


Acts = Callable[[ActMessage], Awaitable[dict[str, Any]]]
"""Carries out an act message; returns the ``result`` frame's fields (ok, alert, error)."""


class Hub:
    """The console's WebSocket clients (see the module docstring).

    Args:
        capacity: urgent frames waiting per client before it is disconnected.
        send_timeout_s: longest a send may take before the client is dropped.
        max_clients: clients served at once.
        log_interval_s: each kind of client error is logged at most this often.
    """

    def __init__(
        self,
        *,
        capacity: int = 64,
        send_timeout_s: float = 10.0,
        max_clients: int = 100,
        log_interval_s: float = 10.0,
    ) -> None:
        self.capacity = capacity
        self.send_timeout_s = send_timeout_s
        self.max_clients = max_clients
        self.clients: set[Client] = set()
        self.stats = HubStats()
        self._limiter = LogLimiter(log, log_interval_s, time.monotonic)

    # ----------------------------------------------------------------------- broadcasting

    def urgent(self, text: str) -> None:
        """An alert frame: to every client at once, never dropped."""
        for client in list(self.clients):
            self._urgent(client, text)

    def latest(self, kind: str, text: str) -> None:
        """A units or health frame: the newest replaces one still waiting."""
        for client in self.clients:
            client.latest[kind] = text
            client.wake.set()

    def tracks(self, frame: TracksFrame) -> None:
        """A tracks frame (its text built once, for every client): replaces one still
        waiting, which is dropped and counted."""
        if not self.clients:
            return
        shared = _Tracks(frame.time, frame.removed, frame.message(time.time()))
        for client in self.clients:
            if client.tracks is not None:
                self.stats.track_frames_dropped += 1
                client.removed.update(client.tracks.removed)
            client.tracks = shared
            client.wake.set()

    def error(self, reason: str, message: str, *args: object) -> None:
        """Count a client error by reason and log it (at most once per interval per reason)."""
        self.stats.ws_errors[reason] += 1
        self._limiter.log(logging.WARNING, reason, "console: " + message, *args)

    @property
    def ws_errors(self) -> int:
        """Client errors of every kind so far."""
        return sum(self.stats.ws_errors.values())

    def _urgent(self, client: Client, text: str) -> None:
        if client.close_code is not None:
            return
        if len(client.urgent) >= client.capacity:
            self.stats.clients_overflowed += 1
            self.error(
                "overflow",
                "client %s does not read: %d alert frames waiting; disconnected",
                _peer(client.ws),
                len(client.urgent),
            )
            client.kill(CLOSE_OVERFLOW, "alert backlog overflow: reconnect")
            return
        client.urgent.append(text)
        client.wake.set()

    # -------------------------------------------------------------------------- a client

    async def serve(self, ws: WebSocket, greeting: list[str], acts: Acts) -> None:
        """Serve one connection until it closes: ``greeting`` frames (hello, snapshot) first,
        then broadcasts; client messages are parsed and answered."""
        await ws.accept()
        if len(self.clients) >= self.max_clients:
            self.stats.clients_refused += 1
            self.error("refused", "client %s refused: %d clients", _peer(ws), len(self.clients))
            await ws.close(CLOSE_FULL, "too many clients")
            return
        client = Client(ws, self.capacity)
        client.urgent.extend(greeting)
        client.wake.set()
        self.clients.add(client)
        self.stats.connects += 1
        try:
            async with asyncio.TaskGroup() as tasks:
                sender = tasks.create_task(self._sender(client), name="console-ws-send")
                client.sender = sender
                receiver = tasks.create_task(
                    self._receiver(client, acts), name="console-ws-receive"
                )
                await asyncio.wait([sender, receiver], return_when=asyncio.FIRST_COMPLETED)
                for task in (sender, receiver):
                    task.cancel()
        finally:
            self.clients.discard(client)
            self.stats.disconnects += 1
            if client.close_code is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await ws.close(client.close_code, client.close_reason)

    async def _sender(self, client: Client) -> None:
        while True:
            await client.wake.wait()
            client.wake.clear()
            while client.close_code is None:
                text = self._next(client)
                if text is None:
                    break
                try:
                    async with asyncio.timeout(self.send_timeout_s):
                        await client.ws.send_text(text)
                except TimeoutError:
                    self.error(
                        "send_timeout",
                        "client %s took over %.0f s to take a frame; disconnected",
                        _peer(client.ws),
                        self.send_timeout_s,
                    )
                    client.kill(CLOSE_OVERFLOW, "too slow")
                    return
                except (WebSocketDisconnect, RuntimeError, OSError) as exc:
                    self.error("send_failed", "client %s went away: %s", _peer(client.ws), exc)
                    return
                self.stats.frames_sent += 1
            if client.close_code is not None:
                return

    def _next(self, client: Client) -> str | None:
        """The next frame for a client: urgent, then units and health, then tracks."""
        if client.urgent:
            return client.urgent.popleft()
        if client.latest:
            kind = next(iter(client.latest))
            return client.latest.pop(kind)
        frame, client.tracks = client.tracks, None
        if frame is None:
            return None
        removed = client.removed - set(frame.removed)
        client.removed.clear()
        if removed:
            # Ids removed by a dropped frame: sent on their own, before the shared frame.
            client.urgent.append(frame.text)
            gone = TracksFrame(frame.time, [], sorted(removed))
            return gone.message(time.time())
        return frame.text

    async def _receiver(self, client: Client, acts: Acts) -> None:
        ws = client.ws
        while True:
            try:
                message = await ws.receive()
            except (WebSocketDisconnect, RuntimeError):  # closed under it by the sender
                return
            if message["type"] == "websocket.disconnect":
                code = message.get("code", 1000)
                if code == CLOSE_TOO_BIG:
                    self.error("oversized", "client %s sent an oversized message", _peer(ws))
                return
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            parsed = parse_client_message(data)
            if isinstance(parsed, str):
                self.error("malformed", "client %s: %s", _peer(ws), parsed)
                self._urgent(client, dumps({"type": "error", "error": parsed}))
            elif isinstance(parsed, PingMessage):
                self._urgent(client, dumps({"type": "pong", "server_time": round(time.time(), 3)}))
            else:
                result = await acts(parsed)
                if not result.get("ok"):
                    self.stats.ws_errors["act_refused"] += 1
                self._urgent(
                    client, dumps({"type": "result", "request_id": parsed.request_id, **result})
                )


def _peer(ws: WebSocket) -> str:
    c = ws.client
    return "?" if c is None else f"{c.host}:{c.port}"
