"""Drivers over real pseudo-terminals, pyserial URLs and loopback sockets.

A pseudo-terminal (``os.openpty``) stands in for a USB-serial device: the test writes what the
device would send to the master side, the driver opens the slave by its path (through a symlink
where the test unplugs it). Expected results are what the parsers make of the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import tty
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from borderwatch.config.devices import GpsDevice
from borderwatch.drivers.base import Driver
from borderwatch.drivers.co2 import read_co2_request
from borderwatch.drivers.nmea import GpsDriver
from borderwatch.drivers.registry import make_driver
from borderwatch.drivers.transport import TransportError
from borderwatch.sensors.base import Accepted, Item, StreamParser, feed_all
from borderwatch.sensors.co2 import crc16_modbus, modbus_frame
from borderwatch.sensors.registry import make_parser
from tests.parser_properties import framed_lines
from tests.test_drivers_base import Collector, device, running, wait_until

DATA = Path(__file__).parent / "data" / "nmea"
GPS = (DATA / "boat_gps_1hz.nmea").read_bytes()
GPS_LINES = GPS.splitlines(keepends=True)


def parsed(data: bytes, fmt: str = "nmea") -> list[Item]:
    return feed_all(make_parser(fmt), data)


def accepted_keys(data: bytes, fmt: str = "nmea") -> list[str]:
    return [i.key for i in parsed(data, fmt) if isinstance(i, Accepted)]


def rejected_reasons(data: bytes, fmt: str = "nmea") -> Counter[str]:
    return Counter(i.reason for i in parsed(data, fmt) if not isinstance(i, Accepted))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class FakeSerialDevice:
    """A pseudo-terminal as a USB-serial device; ``path`` is where the driver opens it.

    With ``link`` the path is a symlink to the slave that :meth:`unplug` removes (and closes
    the pty, so an open driver sees the device vanish) and :meth:`plug` recreates with a new
    pty, as udev does for /dev/serial/by-id links.
    """

    def __init__(self, link: Path | None = None) -> None:
        self.link = link
        self.master = self.slave = -1
        self.plug()

    @property
    def path(self) -> str:
        return str(self.link) if self.link is not None else os.ttyname(self.slave)

    def plug(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # a device line: no echo, no line editing
        if self.link is not None:
            self.link.symlink_to(os.ttyname(self.slave))

    def unplug(self) -> None:
        if self.link is not None:
            self.link.unlink()
        os.close(self.master)
        os.close(self.slave)
        self.master = self.slave = -1

    async def send(self, data: bytes) -> None:
        """Write as the device; in a thread, so a full pty buffer cannot stall the loop."""
        await asyncio.to_thread(_write_all, self.master, data)


@pytest.fixture
def pty_device(tmp_path: Path) -> Any:
    dev = FakeSerialDevice(tmp_path / "gps")
    yield dev
    if dev.master >= 0:
        dev.unplug()


def gps_driver(url: str, sink: Collector, **fields: Any) -> Driver[Any]:
    return make_driver(
        device(type="gps", sensor_id="gps-1", url=url, **fields), sink, rng=random.Random(1)
    )


def readings_reach(sink: Collector, count: int) -> Callable[[], bool]:
    return lambda: len(sink.readings) >= count


async def connected(driver: Driver[Any], connects: int = 1) -> None:
    await wait_until(
        lambda: driver.health().connected and driver.health().connects >= connects,
        f"{driver.sensor_id} connected ({connects})",
    )


# --------------------------------------------------------------------------- serial (pty)


async def test_gps_over_a_pty(pty_device: FakeSerialDevice) -> None:
    sink = Collector()
    now = [1_763_888_400.0]
    driver = make_driver(
        device(type="gps", sensor_id="gps-1", url=pty_device.path), sink, clock=lambda: now[0]
    )
    expected = accepted_keys(GPS)
    async with running(driver):
        await connected(driver)
        await pty_device.send(GPS)
        await wait_until(lambda: len(sink.readings) == len(expected), "all sentences arrived")
        health = driver.health()
    assert isinstance(driver, GpsDriver)
    assert sink.keys() == expected
    assert {r.sensor_id for r in sink.readings} == {"gps-1"}
    assert {r.t_rx for r in sink.readings} == {now[0]}
    assert sink.readings[0].item.data["kind"] == "fix"
    assert health.status == "ok"
    assert (health.messages, health.errors, health.bytes_in) == (len(expected), 0, len(GPS))
    assert health.accepted == dict(Counter(expected))
    assert health.last_data_time == now[0]
    # All 300 sentences within one second of the (frozen) clock; later, over a longer span.
    assert health.rate_hz == len(expected)
    assert driver.health(now=now[0] + 4.0).rate_hz == len(expected) / 4.0
    assert driver.health(now=now[0] + 60.0).rate_hz == 0.0


async def test_garbage_and_bad_checksums_between_good_lines(pty_device: FakeSerialDevice) -> None:
    bad_checksum = GPS_LINES[0].replace(b"*4E", b"*4F")
    assert bad_checksum != GPS_LINES[0]
    noise = [b"\x00\xff\xfe noise\r\n", bad_checksum, b"$GPGGA,garbage*00\r\n", b"x" * 700 + b"\n"]
    stream = b"".join(line + noise[i % len(noise)] for i, line in enumerate(GPS_LINES[:40]))
    sink = Collector()
    driver = gps_driver(pty_device.path, sink)
    async with running(driver):
        await connected(driver)
        await pty_device.send(stream)
        expected = accepted_keys(stream)
        await wait_until(lambda: len(sink.readings) == len(expected), "good lines arrived")
        await wait_until(
            lambda: driver.health().errors == sum(rejected_reasons(stream).values()),
            "every bad line counted",
        )
    health = driver.health()
    assert sink.keys() == expected == accepted_keys(b"".join(GPS_LINES[:40]))
    assert health.rejected == dict(rejected_reasons(stream))
    assert set(health.rejected) == {"checksum", "malformed"}


async def test_wrong_baud_rate_garbage_is_a_fault_then_recovers(
    pty_device: FakeSerialDevice,
) -> None:
    garbage = random.Random(5).randbytes(8000)
    sink = Collector()
    driver = gps_driver(pty_device.path, sink)
    async with running(driver):
        await connected(driver)
        await pty_device.send(garbage)
        await wait_until(lambda: driver.health().status == "fault", "fault")
        fault = driver.health()
        # The line is fixed (right baud rate): good data clears the fault.
        await pty_device.send(b"\r\n" + GPS)
        await wait_until(lambda: len(sink.readings) == len(accepted_keys(GPS)), "good data")
        recovered = driver.health()
    assert fault.connected
    assert fault.messages == 0
    assert fault.errors >= 5
    assert "wrong baud rate" in fault.detail
    assert recovered.status == "ok"
    assert recovered.bytes_in == len(garbage) + 2 + len(GPS)


async def test_silence_makes_the_sensor_stale(pty_device: FakeSerialDevice) -> None:
    sink = Collector()
    driver = gps_driver(pty_device.path, sink, stale_after_s=0.3)
    async with running(driver):
        assert driver.health().status == "starting"
        await connected(driver)
        await pty_device.send(b"".join(GPS_LINES[:5]))
        await wait_until(lambda: len(sink.readings) == 5, "first lines")
        last = driver.health().last_data_time
        assert last is not None
        assert driver.health(now=last + 0.1).status == "ok"
        projected = driver.health(now=last + 1.0)
        await wait_until(lambda: driver.health().status == "stale", "stale")
        stale = driver.health()
        await pty_device.send(GPS_LINES[5])
        await wait_until(lambda: driver.health().status == "ok", "fresh data")
    assert projected.status == "stale"
    assert "no message accepted for 1.0 s" in projected.detail
    assert stale.connected
    assert stale.errors == 0


async def test_unplug_and_replug_reconnects(pty_device: FakeSerialDevice) -> None:
    sink = Collector()
    driver = gps_driver(pty_device.path, sink)
    first, second = b"".join(GPS_LINES[:10]), b"".join(GPS_LINES[10:30])
    async with running(driver):
        await connected(driver)
        await pty_device.send(first)
        await wait_until(lambda: len(sink.readings) == 10, "data before the unplug")
        pty_device.unplug()
        await wait_until(lambda: driver.health().rejected.get("open_failed", 0) >= 2, "retries")
        unplugged = driver.health()
        pty_device.plug()
        await connected(driver, connects=2)
        await pty_device.send(second)
        await wait_until(lambda: len(sink.readings) == 30, "data after the replug")
        replugged = driver.health()
    assert sink.keys() == accepted_keys(first + second)
    assert not unplugged.connected
    assert unplugged.status == "fault"
    # The detail is cut to a bounded length, which a long temporary path can reach.
    assert "[Errno 2]" in unplugged.detail
    assert unplugged.disconnects == 1
    assert unplugged.rejected["disconnected"] == 1
    assert (replugged.status, replugged.connects, replugged.disconnects) == ("ok", 2, 1)


async def test_missing_device_keeps_retrying() -> None:
    sink = Collector()
    driver = gps_driver("/nonexistent/ttyUSB9", sink)
    async with running(driver):
        await wait_until(lambda: driver.health().rejected.get("open_failed", 0) >= 3, "retries")
        with pytest.raises(TransportError, match="not_connected"):
            await driver.send(b"$PMTK,0*00\r\n")
    health = driver.health()
    assert (health.status, health.connects, health.messages) == ("fault", 0, 0)
    assert "open_failed" in health.detail


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(min_size=1, max_size=700), min_size=1, max_size=6))
def test_random_bytes_never_kill_a_driver(chunks: list[bytes]) -> None:
    async def scenario() -> None:
        dev = FakeSerialDevice()
        sink = Collector()
        driver = gps_driver(dev.path, sink)
        stream = b"".join(chunks) + b"\n" + GPS_LINES[0]
        try:
            async with running(driver):
                await connected(driver)
                for chunk in chunks:
                    await dev.send(chunk)
                await dev.send(b"\n" + GPS_LINES[0])
                await wait_until(lambda: driver.health().bytes_in == len(stream), "all bytes")
                await wait_until(lambda: sink.keys()[-1:] == ["GGA"], "the good line")
                health = driver.health()
        finally:
            dev.unplug()
        assert health.messages + health.errors == framed_lines(stream)
        assert health.connects == 1

    asyncio.run(scenario())


class _FussyParser(StreamParser):
    """A parser with a bug: it raises on a line holding ``BOOM``."""

    name = "fussy"

    def __init__(self) -> None:
        self._nmea = make_parser("nmea")

    def feed(self, data: bytes) -> list[Item]:
        if b"BOOM" in data:
            raise ZeroDivisionError("parser bug")
        return self._nmea.feed(data)

    def close(self) -> list[Item]:
        return self._nmea.close()


class _FussyDriver(GpsDriver):
    def _new_parser(self) -> StreamParser:
        return _FussyParser()


async def test_a_parser_bug_is_counted_and_the_driver_goes_on() -> None:
    sink = Collector()
    config = GpsDevice(sensor_id="gps-1", url="loop://", baudrate=115200)
    driver = _FussyDriver(config, sink)
    async with running(driver):
        await connected(driver)
        await driver.send(b"BOOM\n")
        await wait_until(lambda: driver.health().errors == 1, "the bug counted")
        await driver.send(GPS_LINES[0])
        await wait_until(lambda: len(sink.readings) == 1, "data after the bug")
    assert driver.health().rejected == {"parser_error": 1}


# ------------------------------------------------------------------------------ pyserial URLs


async def test_loop_url_reads_back_what_is_sent() -> None:
    sink = Collector()
    # pyserial's loopback takes as long as the line speed needs: 15 kB at 4800 bit/s is 32 s.
    driver = gps_driver("loop://", sink, baudrate=1_000_000)
    async with running(driver):
        await connected(driver)
        await driver.send(GPS)
        await wait_until(lambda: len(sink.readings) == len(accepted_keys(GPS)), "loopback")
    assert sink.keys() == accepted_keys(GPS)
    assert driver.health().bytes_in == len(GPS)


@pytest.mark.parametrize(
    ("device_type", "recording", "fmt"),
    [
        ("radar", DATA / "radar_targets.nmea", "nmea"),
        ("gmp343", DATA.parent / "co2" / "gmp343_truck_inspection.txt", "gmp343"),
        ("ais", DATA.parent / "ais" / "harbour_traffic.ais", "auto"),
    ],
)
async def test_streaming_types_over_loop(device_type: str, recording: Path, fmt: str) -> None:
    data = recording.read_bytes()
    expected = accepted_keys(data, fmt)
    sink = Collector()
    config = device(type=device_type, sensor_id="dev-1", url="loop://", baudrate=1_000_000)
    driver = make_driver(config, sink)
    async with running(driver):
        await connected(driver)
        await driver.send(data)
        await wait_until(lambda: len(sink.readings) == len(expected), "the recording")
    assert sink.keys() == expected
    assert driver.health().rejected == dict(rejected_reasons(data, fmt))


async def test_ais_marks_own_mmsi_and_reads_mixed_nmea() -> None:
    ais = (DATA.parent / "ais" / "harbour_traffic.ais").read_bytes().splitlines(keepends=True)
    stream = b"".join(a + g for a, g in zip(ais[:20], GPS_LINES, strict=False))
    items = [i for i in parsed(stream, "auto") if isinstance(i, Accepted)]
    others = {i.data["mmsi"] for i in items if i.data["kind"] == "ais" and not i.data["own"]}
    own = min(others)
    sink = Collector()
    config = device(
        type="ais", sensor_id="ais-1", url="loop://", baudrate=1_000_000, own_mmsi=[own]
    )
    driver = make_driver(config, sink)
    async with running(driver):
        await connected(driver)
        await driver.send(stream)
        await wait_until(lambda: len(sink.readings) == len(items), "the mixed stream")
    got = [r.item.data for r in sink.readings]
    assert [d["kind"] for d in got] == [i.data["kind"] for i in items]
    assert {"fix", "ais"} <= {d["kind"] for d in got}
    for before, after in zip(items, got, strict=True):
        if after["kind"] == "ais":
            assert after["own"] == (before.data["own"] or after["mmsi"] == own)
    assert any(d["kind"] == "ais" and d["own"] and d["mmsi"] == own for d in got)


async def _hello(driver: Driver[Any], answered: Callable[[], bool]) -> None:
    """Say hello until the server answers, as a client would: a hello written while the
    previous connection was closing is lost (or refused as ``write_failed``)."""
    for _attempt in range(20):
        with contextlib.suppress(TransportError):
            await driver.send(b"\n")
        for _ in range(50):
            if answered():
                return
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("scheme", ["socket", "tcp"])
async def test_tcp_server_feeding_nmea_and_hanging_up(scheme: str) -> None:
    sessions = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sessions
        sessions += 1
        # Wait for the client's hello: pyserial's socket:// discards what waits when it opens.
        await reader.read(1)
        writer.write(GPS)
        await writer.drain()
        writer.close()  # the server hangs up: the driver must reconnect

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink = Collector()
    driver = gps_driver(f"{scheme}://127.0.0.1:{port}", sink)
    per_session = accepted_keys(GPS)
    async with server, running(driver):
        for session in (1, 2):
            await connected(driver, connects=session)
            await _hello(driver, readings_reach(sink, session * len(per_session)))
            await wait_until(readings_reach(sink, session * len(per_session)), f"session {session}")
        health = driver.health()
    assert sink.keys() == per_session * 2
    assert health.connects >= 2
    assert health.disconnects >= 1
    assert health.rejected["disconnected"] == health.disconnects
    assert sessions >= 2


async def test_tcp_connection_refused_is_open_failed() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        sink = Collector()
        driver = gps_driver(f"tcp://127.0.0.1:{port}", sink)
        async with running(driver):
            await wait_until(lambda: driver.health().rejected.get("open_failed", 0) >= 2, "retry")
    assert driver.health().status == "fault"
    assert driver.health().connects == 0


# ---------------------------------------------------------------------------------------- UDP


async def test_udp_datagrams_with_nmea() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = Collector()
    driver = gps_driver(f"udp://127.0.0.1:{port}", sink)
    # One sentence per datagram without line ending, then several per datagram with them.
    datagrams = [line.rstrip(b"\r\n") for line in GPS_LINES[:10]]
    datagrams += [b"".join(GPS_LINES[i : i + 5]) for i in range(10, 30, 5)]
    datagrams += [b"$GPGGA,broken*00", GPS_LINES[30]]
    async with running(driver):
        await connected(driver)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for datagram in datagrams:
                sender.sendto(datagram, ("127.0.0.1", port))
        await wait_until(lambda: len(sink.readings) == 31, "all sentences")
        with pytest.raises(TransportError, match="receive-only"):
            await driver.send(b"x")
    health = driver.health()
    assert sink.keys() == accepted_keys(b"".join(GPS_LINES[:31]))
    assert health.rejected == {"checksum": 1}


# ------------------------------------------------------------------------ SenseAir (polled)


class ModbusResponder:
    """The sensor side of a SenseAir line: answers each read-input-registers request with
    status 0 and the next CO2 value, after checking the request's CRC."""

    def __init__(self, dev: FakeSerialDevice, first_ppm: int) -> None:
        self.dev = dev
        self.requests: list[bytes] = []
        self.answered: list[int] = []
        self._next = first_ppm

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        # Readiness is level-triggered and may be stale by the time we read: never block.
        os.set_blocking(self.dev.master, False)
        loop.add_reader(self.dev.master, readable.set)
        buf = bytearray()
        try:
            while True:
                await readable.wait()
                readable.clear()
                try:
                    buf += os.read(self.dev.master, 256)
                except BlockingIOError:
                    continue
                while len(buf) >= 8:
                    request, buf[:] = bytes(buf[:8]), buf[8:]
                    self.requests.append(request)
                    if crc16_modbus(request) == 0 and request[1] == 0x04:
                        self._answer(request[0])
        finally:
            loop.remove_reader(self.dev.master)

    def _answer(self, slave: int) -> None:
        ppm = self._next
        self._next += 1
        registers = (0, 0, 0, ppm)  # meter status, two others, CO2
        data = b"".join(r.to_bytes(2, "big") for r in registers)
        _write_all(self.dev.master, modbus_frame(bytes((slave, 0x04, len(data))) + data))
        self.answered.append(ppm)


async def test_senseair_polling_over_a_pty(pty_device: FakeSerialDevice) -> None:
    sink = Collector()
    config = device(
        type="senseair",
        sensor_id="co2-1",
        url=pty_device.path,
        slave=0x68,
        poll_interval_s=0.05,
        stale_after_s=1.0,
    )
    driver = make_driver(config, sink)
    responder = ModbusResponder(pty_device, first_ppm=2480)
    async with asyncio.TaskGroup() as tasks:
        answering = tasks.create_task(responder.run())
        async with running(driver):
            await wait_until(lambda: len(sink.readings) >= 5, "five readings")
            answering.cancel()  # the sensor stops answering
            await wait_until(
                lambda: driver.health().rejected.get("no_response", 0) >= 2, "no response"
            )
            await wait_until(lambda: driver.health().status == "stale", "stale")
    ppms = [r.item.data["ppm"] for r in sink.readings]
    assert ppms == responder.answered[: len(ppms)]
    assert ppms[:5] == [2480, 2481, 2482, 2483, 2484]
    assert {r.item.data["slave"] for r in sink.readings} == {0x68}
    assert set(responder.requests) == {read_co2_request(0x68)}
    # Slave 0x68, read input registers (4) from 0, four of them; then a valid CRC.
    assert responder.requests[0][:6] == bytes.fromhex("680400000004")
    assert crc16_modbus(responder.requests[0]) == 0
    health = driver.health()
    assert health.accepted == {"senseair": len(ppms)}
    assert set(health.rejected) == {"no_response"}


async def test_senseair_over_loop_sees_only_its_own_requests() -> None:
    sink = Collector()
    config = device(
        type="senseair", sensor_id="co2-1", url="loop://", poll_interval_s=0.05, stale_after_s=1.0
    )
    driver = make_driver(config, sink)
    async with running(driver):
        await wait_until(lambda: driver.health().rejected.get("no_response", 0) >= 2, "polls")
    health = driver.health()
    assert sink.readings == []
    assert health.bytes_in >= 2 * len(read_co2_request(0xFE))
    assert set(health.rejected) == {"no_response"}
