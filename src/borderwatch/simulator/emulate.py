"""Serve simulated device byte streams on real transports, in real time (or faster).

Each device of a scenario (see :mod:`borderwatch.simulator.devices`) gets its own transport:

* ``pty``: a pseudo-terminal (``os.openpty``) in raw mode, reachable through a stable symlink
  ``<out>/<sensor_id>`` to the slave side, which a node's config names as its serial port. The
  emulator writes the device's bytes to the master side. Unplugging closes the pseudo-terminal
  and removes the link; plugging in again opens a new one and points the link at it.
* ``udp``: one datagram per chunk to ``127.0.0.1:<udp_port>``.

The SenseAir sensor is polled: the emulator reads the Modbus requests a master writes to the
pseudo-terminal and answers each with the reading of that moment
(:class:`~borderwatch.simulator.devices.SenseAirResponder`).

Scenario time ``t`` is served at wall time ``t / speed`` after the start. A device that nobody
reads does not hold the others up: writes never block, and bytes the pseudo-terminal cannot take
(its buffer is full) are dropped and counted, as a serial line drops what nobody listens to.
Everything runs in one asyncio loop; :meth:`DeviceEmulator.stop` (thread-safe), SIGINT or SIGTERM
end it cleanly, and closing the emulator removes every link it made.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import termios
import threading
import time
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from borderwatch.closing import Closing
from borderwatch.config.scenario import CO2_DEVICE_TYPES, load_scenario
from borderwatch.errors import ConfigError
from borderwatch.simulator.devices import DeviceStream, SenseAirResponder, device_streams
from borderwatch.simulator.run import simulate

log = logging.getLogger(__name__)

DEVICES_FILE = "devices.json"
#: How long a chunk bigger than a pty's buffer may take to be read before the rest is dropped,
#: wall s (a reader that keeps up empties the buffer within milliseconds).
PTY_WRITE_WAIT_S = 1.0
#: Pause between attempts to write the rest of such a chunk, wall s.
PTY_WRITE_RETRY_S = 0.002
LOOPBACK = "127.0.0.1"
#: Bytes read from a pseudo-terminal at a time (SenseAir requests are 8 bytes each).
READ_SIZE = 4096
#: How long readers get, at the end of a run, to take what is still queued in the ptys, s
#: (closing a pty discards it). Unread ptys hold the end up this long at most.
DRAIN_S = 0.5
#: Polling step of that wait, s, and how many checks in a row must find the queues empty.
DRAIN_STEP_S = 0.01
DRAIN_QUIET_CHECKS = 3


@dataclass(frozen=True, slots=True)
class ServedDevice:
    """Where a device can be reached: a pty link path or ``udp://127.0.0.1:port``."""

    sensor_id: str
    type: str
    transport: str
    address: str
    parser_format: str

    def line(self) -> str:
        """``<sensor_id> <type> <address>``, as ``borderwatch simulate --devices`` prints it."""
        return f"{self.sensor_id} {self.type} {self.address}"


@dataclass(slots=True)
class DeviceCounters:
    """What the emulator did for one device."""

    chunks: int = 0
    bytes: int = 0
    overflow_chunks: int = 0
    requests: int = 0
    unplugged: int = 0


class PtyPort:
    """A pseudo-terminal standing in for a serial port, named by a symlink to its slave side.

    The emulator keeps the slave open too, so the terminal (and its raw mode) lives while no
    reader has it open, and writes to the master never fail for want of a reader.
    """

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self.slave = -1
        self.slave_path = ""

    @property
    def is_open(self) -> bool:
        """Whether the pseudo-terminal exists (the device is plugged in)."""
        return self.master >= 0

    def open(self) -> None:
        """Create the pseudo-terminal and point the link at it (replacing the link atomically)."""
        self.master, self.slave = os.openpty()
        # Raw: no echo, no CR/LF translation, no signal characters (Modbus frames are binary).
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.slave_path = os.ttyname(self.slave)
        temporary = self.link.with_name(f".{self.link.name}.new")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(self.slave_path)
        temporary.replace(self.link)

    def write(self, data: bytes) -> bool:
        """Write without blocking; False when the terminal's buffer could not take it all."""
        try:
            written = os.write(self.master, data)
        except BlockingIOError:
            return False
        return written == len(data)

    def write_some(self, data: bytes | memoryview) -> int:
        """Write what the terminal's buffer takes now, without blocking; bytes written."""
        try:
            return os.write(self.master, data)
        except BlockingIOError:
            return 0

    def pending(self) -> int:
        """Bytes written but not yet read on the slave side."""
        if self.slave < 0:
            return 0
        count = array.array("i", [0])
        fcntl.ioctl(self.slave, termios.FIONREAD, count)
        return count[0]

    def read(self) -> bytes:
        """What the reader on the slave side wrote (empty when there is nothing)."""
        try:
            return os.read(self.master, READ_SIZE)
        except (BlockingIOError, OSError):
            return b""

    def close(self) -> None:
        """Remove the link (if it is still ours) and close both sides."""
        with contextlib.suppress(OSError):
            if os.readlink(self.link) == self.slave_path:
                self.link.unlink()
        for fd in (self.master, self.slave):
            if fd >= 0:
                os.close(fd)
        self.master = self.slave = -1


@dataclass(slots=True)
class _Served:
    stream: DeviceStream
    info: ServedDevice
    port: PtyPort | None
    counters: DeviceCounters = field(default_factory=DeviceCounters)


class DeviceEmulator(Closing):
    """Serves device streams on ptys and UDP from scenario time 0 to ``until_s``.

    Use as a context manager (``open`` on entry, ``close`` on exit), then ``await serve()``::

        with DeviceEmulator(streams, out_dir, speed=10.0) as emulator:
            print(*(d.line() for d in emulator.served), sep="\\n")
            asyncio.run(emulator.serve())

    Args:
        streams: the device streams (from :func:`~borderwatch.simulator.devices.device_streams`).
        out_dir: where the pty links and ``devices.json`` are written.
        speed: scenario seconds per wall-clock second.
        until_s: scenario time at which serving ends, s.
        info: extra fields written to ``devices.json`` (scenario, seed, start time...).
        drain_s: at the end of the run, how long readers get to take the bytes still queued
            in the ptys before they close, s.
        clock: monotonic clock, seconds (tests may pass another).
    """

    def __init__(
        self,
        streams: Sequence[DeviceStream],
        out_dir: Path,
        *,
        speed: float = 1.0,
        until_s: float,
        info: dict[str, Any] | None = None,
        drain_s: float = DRAIN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.out_dir = Path(out_dir)
        self.speed = speed
        self.until_s = until_s
        self.info = dict(info or {})
        self.drain_s = drain_s
        self._clock = clock
        self._streams = list(streams)
        self._devices: list[_Served] = []
        self._udp: socket.socket | None = None
        self._t0 = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = threading.Event()

    # -- resources ------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.open()
        return self

    @property
    def served(self) -> list[ServedDevice]:
        """Where each device is reachable, in scenario order."""
        return [d.info for d in self._devices]

    @property
    def counters(self) -> dict[str, DeviceCounters]:
        """Per device id, what was sent so far."""
        return {d.info.sensor_id: d.counters for d in self._devices}

    def open(self) -> list[ServedDevice]:
        """Create every pty (and its link) and the UDP socket; write ``devices.json``."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            for s in self._streams:
                self._devices.append(self._open_device(s))
        except BaseException:
            self.close()
            raise
        self._write_manifest()
        return self.served

    def _open_device(self, s: DeviceStream) -> _Served:
        device = s.device
        if device.transport == "udp":
            if self._udp is None:
                self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self._udp.setblocking(False)
            address = f"udp://{LOOPBACK}:{device.udp_port}"
            info = ServedDevice(device.sensor_id, device.type, "udp", address, s.parser_format)
            return _Served(s, info, None)
        port = PtyPort((self.out_dir / device.sensor_id).absolute())
        port.open()
        info = ServedDevice(device.sensor_id, device.type, "pty", str(port.link), s.parser_format)
        return _Served(s, info, port)

    def _write_manifest(self) -> None:
        scenario_devices = []
        for d in self._devices:
            entry: dict[str, Any] = {
                "sensor_id": d.info.sensor_id,
                "type": d.info.type,
                "transport": d.info.transport,
                "address": d.info.address,
                "format": d.info.parser_format,
                "unplugged_s": d.stream.unplugged,
            }
            if d.info.type in CO2_DEVICE_TYPES:
                entry["inspections"] = [
                    {
                        "vehicle_id": i.vehicle_id,
                        "persons": i.persons,
                        "start_s": i.start_s,
                        "sample_start_s": i.sample_start_s,
                        "sample_end_s": i.sample_end_s,
                    }
                    for i in d.stream.inspections
                ]
            scenario_devices.append(entry)
        manifest = {**self.info, "speed": self.speed, "until_s": self.until_s}
        manifest["devices"] = scenario_devices
        text = json.dumps(manifest, indent=1, sort_keys=True, default=str)
        (self.out_dir / DEVICES_FILE).write_text(text + "\n", encoding="utf-8")

    def close(self) -> None:
        """Close every pty (removing its link) and the UDP socket."""
        for d in self._devices:
            if d.port is not None:
                d.port.close()
        if self._udp is not None:
            self._udp.close()
            self._udp = None

    # -- serving --------------------------------------------------------------------------------
    def scenario_time(self) -> float:
        """The scenario time now, s."""
        return (self._clock() - self._t0) * self.speed

    def stop(self) -> None:
        """End :meth:`serve` soon; safe to call from any thread (or before serving starts)."""
        self._stop_requested.set()
        loop, event = self._loop, self._stop
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(event.set)

    async def serve(self, *, handle_signals: bool = False) -> None:
        """Serve every device until ``until_s`` or :meth:`stop`.

        With ``handle_signals`` (main thread only), SIGINT and SIGTERM stop it cleanly.
        """
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stop_requested.is_set():
            self._stop.set()
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(sig, self._stop.set)
        self._t0 = self._clock()
        log.info(
            "serving %d devices to t = %g s at %g x speed",
            len(self._devices),
            self.until_s,
            self.speed,
        )
        try:
            async with asyncio.TaskGroup() as tasks:
                for d in self._devices:
                    if d.stream.type == "senseair":
                        tasks.create_task(self._serve_polled(d))
                    else:
                        tasks.create_task(self._serve_pushed(d))
            if not self._stop.is_set():
                await self._drain()
        finally:
            if handle_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    self._loop.remove_signal_handler(sig)
            for d in self._devices:
                c = d.counters
                log.info(
                    "device %s: %d chunks, %d bytes, %d lost to a full buffer, %d requests",
                    d.info.sensor_id,
                    c.chunks,
                    c.bytes,
                    c.overflow_chunks,
                    c.requests,
                )

    async def _drain(self) -> None:
        """Give readers up to ``drain_s`` to read what the ptys still hold.

        Bytes written to a master reach the slave's queue a moment later (the kernel moves them
        in a work queue), so the queues must be seen empty a few checks in a row.
        """
        deadline = self._clock() + self.drain_s
        ports = [d.port for d in self._devices if d.port is not None and d.port.is_open]
        quiet = 0
        while quiet < DRAIN_QUIET_CHECKS and self._clock() < deadline:
            if not await self._until_wall(DRAIN_STEP_S):
                return
            quiet = 0 if any(p.pending() for p in ports) else quiet + 1

    async def _until_wall(self, delay_s: float) -> bool:
        """Wait ``delay_s`` wall-clock seconds; False when the emulator is stopping instead."""
        assert self._stop is not None
        if self._stop.is_set():
            return False
        if delay_s <= 0:
            return True
        try:
            await asyncio.wait_for(self._stop.wait(), delay_s)
        except TimeoutError:
            return True
        return False

    async def _until(self, t: float) -> bool:
        """Wait for scenario time ``t``; False when the emulator is stopping instead."""
        return await self._until_wall(t / self.speed - (self._clock() - self._t0))

    async def _serve_pushed(self, d: _Served) -> None:
        window = d.stream.unplugged
        for chunk in d.stream.chunks:
            if chunk.t > self.until_s:
                break
            if window is not None and chunk.t >= window[0]:
                if not await self._unplug(d, window):
                    return
                window = None
            if not await self._until(chunk.t):
                return
            if d.port is not None:
                await self._send_pty(d, d.port, chunk.data)
            else:
                self._send(d, chunk.data)
        if window is not None and window[0] <= self.until_s and not await self._unplug(d, window):
            return
        await self._until(self.until_s)

    async def _send_pty(self, d: _Served, port: PtyPort, data: bytes) -> None:
        """Write a chunk as a serial line would: a burst larger than the terminal's buffer
        (a radar's whole scan) goes out as the reader makes room, within ``PTY_WRITE_WAIT_S``;
        what is left then (nobody reading) is dropped and counted."""
        view = memoryview(data)
        deadline = self._clock() + PTY_WRITE_WAIT_S
        while True:
            view = view[port.write_some(view) :]
            if not view:
                break
            if self._clock() >= deadline or not await self._until_wall(PTY_WRITE_RETRY_S):
                d.counters.overflow_chunks += 1
                return
        d.counters.chunks += 1
        d.counters.bytes += len(data)

    def _send(self, d: _Served, data: bytes) -> None:
        c = d.counters
        if d.port is not None:
            if not d.port.write(data):
                c.overflow_chunks += 1
                return
        else:
            assert self._udp is not None
            assert d.stream.device.udp_port is not None
            try:
                self._udp.sendto(data, (LOOPBACK, d.stream.device.udp_port))
            except OSError as exc:  # e.g. ICMP port unreachable reported on a later send
                log.debug("device %s: UDP send failed: %s", d.info.sensor_id, exc)
                c.overflow_chunks += 1
                return
        c.chunks += 1
        c.bytes += len(data)

    async def _unplug(self, d: _Served, window: tuple[float, float]) -> bool:
        """Unplug the device for ``window`` (scenario s); False when stopping meanwhile."""
        if not await self._until(window[0]):
            return False
        d.counters.unplugged += 1
        log.info("device %s unplugged at t = %g s", d.info.sensor_id, window[0])
        if d.port is not None:
            d.port.close()
        if not await self._until(min(window[1], self.until_s)):
            return False
        if window[1] > self.until_s:
            return True
        if d.port is not None:
            d.port.open()
        log.info("device %s plugged in again at t = %g s", d.info.sensor_id, window[1])
        return True

    async def _serve_polled(self, d: _Served) -> None:
        assert self._loop is not None
        assert d.port is not None
        responder = SenseAirResponder(d.stream)
        port = d.port

        def answer() -> None:
            data = port.read()
            if not data:
                return
            for chunk in responder.feed(data, self.scenario_time()):
                self._send(d, chunk.data)
            d.counters.requests = responder.requests

        self._loop.add_reader(port.master, answer)
        try:
            window = d.stream.unplugged
            if window is not None and window[0] < self.until_s:
                if not await self._until(window[0]):
                    return
                self._loop.remove_reader(port.master)
                if not await self._unplug(d, window) or not port.is_open:
                    return
                self._loop.add_reader(port.master, answer)
            await self._until(self.until_s)
        finally:
            if port.is_open:
                self._loop.remove_reader(port.master)


def serve_scenario(
    scenario_path: Path,
    out_dir: Path,
    *,
    seed: int | None = None,
    speed: float = 1.0,
    duration_s: float | None = None,
    announce: Callable[[ServedDevice], None] = lambda device: None,
) -> dict[str, DeviceCounters]:
    """Simulate a scenario and serve its devices until it ends (or ``duration_s``) or a signal.

    ``announce`` is called once per device, in scenario order, as soon as it is reachable.
    Device timestamps start at the scenario's ``start_utc``, else at the current UTC second.
    Returns what was sent per device.
    """
    scenario = load_scenario(scenario_path)
    if not scenario.devices:
        raise ConfigError("the scenario has no 'devices' to serve", path=scenario_path)
    if not speed > 0:
        raise ConfigError(f"--speed must be positive, got {speed:g}")
    sim = simulate(scenario, seed=seed)
    # Device clocks agree with this machine's from the first byte: a node reading the devices
    # stamps their AIS reports (whose UTC second it trusts) on the same time axis.
    start_utc = scenario.start_utc or datetime.now(UTC)
    streams = device_streams(sim, start_utc)
    until = scenario.duration_s if duration_s is None else min(duration_s, scenario.duration_s)
    info = {"scenario": scenario.name, "seed": sim.seed, "start_utc": start_utc.isoformat()}
    with DeviceEmulator(streams, out_dir, speed=speed, until_s=until, info=info) as emulator:
        from borderwatch.simulator.nodeconfig import write_node_config

        write_node_config(out_dir, sim, emulator.served)
        main_thread = threading.current_thread() is threading.main_thread()
        try:
            for device in emulator.served:
                announce(device)
            asyncio.run(emulator.serve(handle_signals=main_thread))
        except KeyboardInterrupt:  # Ctrl-C before the loop took the signal over
            log.info("interrupted")
        return emulator.counters
