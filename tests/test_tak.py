"""TAK output over real sockets on 127.0.0.1: UDP, TCP and TLS receivers that parse the XML,
a TAK server that is down, comes up, or drops the connection, and a node fed by MQTT."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import pytest
import trustme

from borderwatch.config.node import NodeConfig, load_node_config
from borderwatch.config.tak import TakSettings
from borderwatch.edge.cot import CotEvent, to_xml
from borderwatch.edge.node import Node
from borderwatch.edge.tak import CotQueue, CotSender, TakStats, udp_socket
from borderwatch.errors import ConfigError
from borderwatch.schema import (
    BorderKindName,
    ClassHint,
    Detection,
    GeoPoint,
    PositionMeasurement,
    Provenance,
    TargetClassName,
    new_msg_id,
)
from borderwatch.schema.reference import examples
from tests.conftest import MosquittoBroker, free_port

NOW = datetime(2025, 6, 14, 1, 12, 33, tzinfo=UTC)
#: Longest wait for something a test expects, s (a failure, never a measured time).
WAIT_S = 20.0


def tak(url: str, **overrides: Any) -> TakSettings:
    output = {"name": "out", "url": url} | overrides.pop("output", {})
    return TakSettings.model_validate(
        {"outputs": [output], "backoff_initial_s": 0.05, "backoff_max_s": 0.2} | overrides
    )


def event(uid: str, *, alert: bool = False, n: int = 0, stale_s: float = 60.0) -> CotEvent:
    return CotEvent(
        uid=uid,
        type="b-a-g" if alert else "a-u-G",
        how="m-f",
        time=NOW + timedelta(seconds=n),
        start=NOW + timedelta(seconds=n),
        stale=NOW + timedelta(seconds=n + stale_s),
        lat=44.0 + n * 1e-5,
        lon=19.0,
        remarks=f"n={n}",
    )


def put(sender: CotSender, e: CotEvent) -> None:
    sender.put(e, to_xml(e))


async def wait_until(check: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while not check():
            await asyncio.sleep(0.01)
    assert check(), what


class Received:
    """Events a test server received, parsed; ``by_uid`` the latest per uid."""

    def __init__(self) -> None:
        self.events: list[ET.Element] = []

    def add_stream(self, buffer: bytearray) -> None:
        while (end := buffer.find(b"</event>")) >= 0:
            chunk, buffer[:] = bytes(buffer[: end + 8]), buffer[end + 8 :]
            self.events.append(ET.fromstring(chunk))

    def uids(self) -> list[str]:
        return [e.attrib["uid"] for e in self.events]

    def remarks(self, uid: str) -> list[str]:
        return [e.findtext("detail/remarks") or "" for e in self.events if e.attrib["uid"] == uid]


@asynccontextmanager
async def stream_server(
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
    close_after: int | None = None,
) -> AsyncIterator[tuple[asyncio.Server, Received, list[Any]]]:
    """A TAK-server-like listener on 127.0.0.1: parses the event stream; with ``close_after``
    the first connection is closed by the server after that many events."""
    received = Received()
    peers: list[Any] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        peers.append(writer.get_extra_info("peercert"))
        writer.write(b"<event/>")  # servers send too: the client must read and ignore it
        buffer = bytearray()
        start = len(received.events)
        try:
            while data := await reader.read(4096):
                buffer += data
                received.add_stream(buffer)
                if close_after and connections == 1 and len(received.events) - start >= close_after:
                    break
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=ssl_context)
    async with server:
        yield server, received, peers


def port_of(server: asyncio.Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


@asynccontextmanager
async def running(sender: CotSender) -> AsyncIterator[CotSender]:
    task = asyncio.create_task(sender.run())
    try:
        yield sender
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# --------------------------------------------------------------------------- settings


def test_settings_refuse_bad_urls_and_tls_files_on_plain_outputs() -> None:
    good = tak("tls://127.0.0.1:8089", output={"cert_file": "c.pem", "key_file": "k.pem"})
    assert good.outputs[0].scheme == "tls"
    for url in ("http://127.0.0.1:1", "udp://:4242", "tcp://host", "udp://h:99999", "tcp://h:1/x"):
        with pytest.raises(ValueError, match="url"):
            tak(url)
    with pytest.raises(ValueError, match="for tls"):
        tak("udp://127.0.0.1:4242", output={"ca_file": "ca.pem"})
    with pytest.raises(ValueError, match="together"):
        tak("tls://127.0.0.1:8089", output={"cert_file": "c.pem"})
    with pytest.raises(ValueError, match="unique"):
        TakSettings.model_validate(
            {"outputs": [{"name": "a", "url": "udp://h:1"}, {"name": "a", "url": "udp://h:2"}]}
        )
    with pytest.raises(ValueError, match="Extra inputs"):
        tak("udp://127.0.0.1:4242", stale_s=3)


def test_a_node_config_with_tak_resolves_tls_files_and_names_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text(
        "node_id: boat-7\n"
        "frame: {lat_deg: 44.187, lon_deg: 19.335}\n"
        "tak:\n"
        "  outputs:\n"
        "    - {name: server, url: 'tls://127.0.0.1:8089', ca_file: ca.pem,\n"
        "       cert_file: certs/me.pem, key_file: /abs/me.key}\n",
        encoding="utf-8",
    )
    config = load_node_config(path)
    assert config.tak is not None
    out = config.tak.outputs[0]
    assert (out.ca_file, out.cert_file, out.key_file) == (
        tmp_path / "ca.pem",
        tmp_path / "certs/me.pem",
        Path("/abs/me.key"),
    )
    path.write_text(path.read_text().replace("tls://", "ftp://"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"node\.yaml:5"):
        load_node_config(path)


# ------------------------------------------------------------------------------ queue


def test_queue_keeps_alerts_in_order_and_the_latest_track_per_uid() -> None:
    stats = TakStats()
    queue = CotQueue(max_alerts=3, max_tracks=2, stats=stats)
    for n in range(3):
        queue.put("t1", b"t1-%d" % n, alert=False)
    queue.put("a1", b"a1-0", alert=True)
    queue.put("t2", b"t2-0", alert=False)
    queue.put("t3", b"t3-0", alert=False)  # t1 is the oldest track: dropped
    queue.put("a1", b"a1-1", alert=True)
    assert [i.data for i in queue.peek(10)] == [b"a1-0", b"a1-1", b"t2-0", b"t3-0"]
    assert (stats.dropped_tracks, stats.dropped_alerts) == (1, 0)
    for n in range(2, 5):  # two more than fit: the oldest alerts go, counted
        queue.put(f"a{n}", b"a%d" % n, alert=True)
    assert [i.data for i in queue.peek(3)] == [b"a2", b"a3", b"a4"]
    assert stats.dropped_alerts == 2


def test_queue_forgets_what_was_sent_but_not_what_replaced_it() -> None:
    queue = CotQueue(max_alerts=10, max_tracks=10, stats=TakStats())
    queue.put("a", b"a0", alert=True)
    queue.put("t", b"t0", alert=False)
    batch = queue.peek(10)
    queue.put("t", b"t1", alert=False)  # newer while the batch was on its way
    queue.put("b", b"b0", alert=True)
    queue.done(batch)
    assert [i.data for i in queue.peek(10)] == [b"b0", b"t1"]
    queue.put_first([("a", b"a-resent"), ("b", b"b-old")])  # b has one waiting: skipped
    assert [i.data for i in queue.peek(10)] == [b"a-resent", b"b0", b"t1"]


# -------------------------------------------------------------------------------- udp


async def test_udp_events_reach_a_loopback_receiver() -> None:
    got: list[bytes] = []

    class Receiver(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            got.append(data)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Receiver, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    settings = tak(f"udp://127.0.0.1:{port}")
    try:
        async with running(CotSender(settings.outputs[0], settings)) as sender:
            put(sender, event("borderwatch.boat-1:1"))
            put(sender, event("borderwatch.alert.boat-1:1", alert=True))
            await wait_until(lambda: len(got) == 2, "two datagrams")
    finally:
        transport.close()
    roots = [ET.fromstring(d) for d in got]
    assert [r.attrib["uid"] for r in roots] == [
        "borderwatch.alert.boat-1:1",
        "borderwatch.boat-1:1",
    ]
    assert sender.stats.sent == 2
    assert sender.queue_state().name == "tak.out"


def test_a_multicast_output_sets_the_ttl_without_sending() -> None:
    settings = tak("udp://239.2.3.1:6969", output={"multicast_ttl": 3}).outputs[0]
    assert settings.multicast
    sock = udp_socket(settings)
    try:
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) == 3
        assert sock.getpeername() == ("239.2.3.1", 6969)
    finally:
        sock.close()
    unicast = udp_socket(tak("udp://127.0.0.1:4242").outputs[0])
    try:
        assert unicast.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) == 1  # untouched
    finally:
        unicast.close()


# ---------------------------------------------------------------------------- streams


async def test_tcp_stream_carries_events_back_to_back() -> None:
    async with stream_server() as (server, received, _):
        settings = tak(f"tcp://127.0.0.1:{port_of(server)}")
        async with running(CotSender(settings.outputs[0], settings)) as sender:
            for n in range(50):
                put(sender, event(f"borderwatch.boat-1:{n}", n=n))
            put(sender, event("borderwatch.alert.boat-1:9", alert=True))
            await wait_until(lambda: len(received.events) == 51, "51 events")
    assert received.uids()[0] == "borderwatch.alert.boat-1:9"  # alerts first
    assert sorted(received.uids()[1:]) == sorted(f"borderwatch.boat-1:{n}" for n in range(50))
    assert (sender.stats.connects, sender.stats.sent, dict(sender.stats.errors)) == (1, 51, {})


@pytest.fixture(scope="module")
def pki() -> dict[str, Any]:
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = ca.issue_cert("boat-2.borderwatch")
    return {"ca": ca, "server": server, "client": client}


def server_context(pki: dict[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki["server"].configure_cert(context)
    pki["ca"].configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED  # a TAK server wants a client certificate
    return context


def client_files(pki: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    ca = tmp_path / "ca.pem"
    pki["ca"].cert_pem.write_to_path(str(ca))
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    pki["client"].cert_chain_pems[0].write_to_path(str(cert))
    pki["client"].private_key_pem.write_to_path(str(key))
    return {"ca_file": str(ca), "cert_file": str(cert), "key_file": str(key)}


async def test_tls_with_a_client_certificate(pki: dict[str, Any], tmp_path: Path) -> None:
    async with stream_server(ssl_context=server_context(pki)) as (server, received, peers):
        settings = tak(
            f"tls://127.0.0.1:{port_of(server)}",
            output=client_files(pki, tmp_path) | {"server_hostname": "localhost"},
        )
        async with running(CotSender(settings.outputs[0], settings)) as sender:
            put(sender, event("borderwatch.alert.boat-2:1", alert=True))
            await wait_until(lambda: len(received.events) == 1, "one event over TLS")
    assert received.uids() == ["borderwatch.alert.boat-2:1"]
    assert ("DNS", "boat-2.borderwatch") in peers[0]["subjectAltName"]
    assert sender.stats.connects == 1


async def test_tls_refuses_a_server_it_cannot_verify(pki: dict[str, Any], tmp_path: Path) -> None:
    other = trustme.CA()  # the client trusts another authority
    files = client_files(pki, tmp_path)
    other.cert_pem.write_to_path(files["ca_file"])
    async with stream_server(ssl_context=server_context(pki)) as (server, received, _):
        settings = tak(f"tls://127.0.0.1:{port_of(server)}", output=files)
        async with running(CotSender(settings.outputs[0], settings)) as sender:
            put(sender, event("borderwatch.alert.boat-2:1", alert=True))
            await wait_until(lambda: sender.stats.errors["connect_failed"] >= 2, "refusals")
    assert received.events == []
    assert sender.stats.connects == 0
    assert len(sender.queue) == 1  # the alert waits for a server it can trust


async def test_a_server_that_is_down_then_up_gets_every_queued_alert_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    settings = tak(f"tcp://127.0.0.1:{port}", log_interval_s=60.0)
    async with running(CotSender(settings.outputs[0], settings)) as sender:
        for n in range(20):
            put(sender, event(f"borderwatch.alert.boat-1:{n}", alert=True, n=n))
        for n in range(300):  # track updates while down: one per uid waits
            put(sender, event(f"borderwatch.boat-1:{n % 5}", n=n))
        await wait_until(lambda: sender.stats.errors["connect_failed"] >= 3, "retries")
        assert not sender.connected
        assert sender.queue_state().depth == 25
        async with stream_server(port) as (_, received, _):
            await wait_until(lambda: len(received.events) == 25, "queued events delivered")
    assert received.uids()[:20] == [f"borderwatch.alert.boat-1:{n}" for n in range(20)]
    latest = {e.attrib["uid"]: e.findtext("detail/remarks") for e in received.events[20:]}
    assert latest == {f"borderwatch.boat-1:{k}": f"n={295 + k}" for k in range(5)}
    assert sender.stats.connects == 1
    assert sender.stats.dropped == 0
    # One log line for the outage however many attempts failed (rate limited).
    refusals = [r for r in caplog.records if "connect failed" in r.getMessage()]
    assert len(refusals) == 1


async def test_a_server_that_drops_the_connection_gets_the_alert_states_again() -> None:
    async with stream_server(close_after=2) as (server, received, _):
        settings = tak(f"tcp://127.0.0.1:{port_of(server)}")
        async with running(CotSender(settings.outputs[0], settings)) as sender:
            put(sender, event("borderwatch.alert.boat-1:1", alert=True, n=0))
            put(sender, event("borderwatch.alert.boat-1:2", alert=True, n=1))
            await wait_until(lambda: sender.stats.disconnects >= 1, "dropped by the server")
            put(sender, event("borderwatch.alert.boat-1:1", alert=True, n=2))
            put(sender, event("borderwatch.alert.boat-1:3", alert=True, n=3))
            ended = event("borderwatch.alert.boat-1:2", alert=True, n=4, stale_s=0.0)
            put(sender, ended)
            await wait_until(lambda: sender.stats.connects >= 2 and not len(sender.queue), "sent")
            await wait_until(
                lambda: "n=4" in received.remarks("borderwatch.alert.boat-1:2"), "final state"
            )
    assert sender.stats.errors["disconnected"] >= 1
    latest = {e.attrib["uid"]: e.findtext("detail/remarks") for e in received.events}
    assert latest == {
        "borderwatch.alert.boat-1:1": "n=2",
        "borderwatch.alert.boat-1:2": "n=4",
        "borderwatch.alert.boat-1:3": "n=3",
    }


# ------------------------------------------------------------------------------- node


def _border(path: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "type": "Feature",
                "properties": {"kind": "green", "name": "line"},
                "geometry": {"type": "LineString", "coordinates": [[0, -500], [0, 500]]},
            }
        ),
        encoding="utf-8",
    )
    return path


def _gga(i: int) -> bytes:
    from tests.test_node import _gga as gga

    return gga(i)


async def test_a_node_fed_over_mqtt_sends_tracks_its_position_and_an_alert_over_udp(
    tmp_path: Path, mosquitto: str
) -> None:
    from borderwatch.fusion.frames import LocalFrame

    got: list[ET.Element] = []

    class Receiver(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            got.append(ET.fromstring(data))

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Receiver, local_addr=("127.0.0.1", 0))
    udp_port = transport.get_extra_info("sockname")[1]
    master, slave = os.openpty()
    gps = tmp_path / "gps"
    gps.symlink_to(os.ttyname(slave))
    topic = "borderwatch/v1/node/boat-5/sensor/thermal-1/det"
    config = NodeConfig.model_validate(
        {
            "node_id": "boat-5",
            "frame": {"lat_deg": 44.187, "lon_deg": 19.335},
            "border": str(_border(tmp_path / "border.geojson")),
            "exercise": True,
            "devices": [
                {"type": "gps", "sensor_id": "gps", "url": str(gps)},
                {
                    "type": "mqtt_detections",
                    "sensor_id": "thermal-1",
                    "url": f"{mosquitto}/{topic}",
                },
            ],
            "fusion": {"scan_interval_s": 0.2},
            "tak": {
                "outputs": [{"name": "tablet", "url": f"udp://127.0.0.1:{udp_port}"}],
                "callsign_prefix": "BW ",
                "affiliation": {"crossing": "s"},
                "own_units": {"boat-5": "boat"},
            },
        }
    )
    frame = LocalFrame(44.187, 19.335)
    node = Node(config)
    host, port = mosquitto.removeprefix("mqtt://").split(":")

    def detection(x: float) -> bytes:
        ((lat, lon),) = frame.to_wgs84(np.array([[x, 20.0]]))
        return (
            Detection(
                msg_id=new_msg_id(),
                time=datetime.now(UTC),
                provenance=Provenance(
                    node_id="boat-5",
                    sensor_ids=("thermal-1",),
                    software_version="1",
                    simulated=False,
                    exercise=True,
                ),
                measurement=PositionMeasurement(
                    position=GeoPoint(lat_deg=float(lat), lon_deg=float(lon)),
                    cov_m2=((1.0, 0.0), (0.0, 1.0)),
                ),
                class_hint=ClassHint(label=TargetClassName.VEHICLE, confidence=0.9),
            )
            .model_dump_json()
            .encode()
        )

    def alerts() -> list[ET.Element]:
        return [e for e in got if e.attrib["type"] == "b-a-g"]

    async def feed() -> None:
        async with aiomqtt.Client(host, int(port), protocol=aiomqtt.ProtocolVersion.V5) as c:
            await wait_until(lambda: node.sensor_health()[1].connected, "subscribed")
            for i in range(120):  # a car at 10 m/s from 30 m west of the line, 10 Hz
                os.write(master, _gga(i))
                await c.publish(topic, detection(-30.0 + i), qos=0)
                await asyncio.sleep(0.1)
                if alerts() and i > 60:
                    return

    try:
        async with asyncio.TaskGroup() as tasks:
            runner = tasks.create_task(node.run())
            await feed()
            await wait_until(lambda: bool(alerts()), "an alert over UDP")
            state = node.state()
            node.stop()
            await runner
    finally:
        os.close(master)
        os.close(slave)
        transport.close()
    units = [e for e in got if e.attrib["uid"] == "borderwatch.unit.boat-5"]
    assert units
    assert units[0].attrib["type"] == "a-f-S-X-L"
    assert units[0].attrib["how"] == "m-g"
    tracks = [e for e in got if e.attrib["type"].startswith("a-") and "unit" not in e.attrib["uid"]]
    assert tracks, "no track events"
    assert {e.attrib["opex"] for e in got} == {"e"}  # an exercise's, every one
    alert = alerts()[0]
    link = alert.find("detail/link")
    assert link is not None
    assert link.attrib["relation"] == "p-p"
    track_uid = link.attrib["uid"]
    assert track_uid.startswith("borderwatch.boat-5:")
    remarks = alert.findtext("detail/remarks") or ""
    assert "CROSSING green border (land)" in remarks
    assert "left to right" in remarks
    types = [e.attrib["type"] for e in tracks if e.attrib["uid"] == track_uid]
    assert types[0] == "a-u-G-E-V-C"
    assert types[-1] == "a-s-G-E-V-C"  # suspect once it crossed, by this policy
    (queue,) = [q for q in state.queues if q.name == "tak.tablet"]
    assert queue.dropped == 0
    assert node.tak is not None
    assert node.tak.senders[0].stats.sent == len(got)


def test_example_configurations_with_tak_validate() -> None:
    from borderwatch.config.centre import load_centre_config

    root = Path(__file__).parent.parent / "config"
    node = load_node_config(root / "nodes" / "patrol-boat.yaml")
    centre = load_centre_config(root / "centre.yaml")
    assert node.tak is not None
    assert [o.scheme for o in node.tak.outputs] == ["udp"]
    assert centre.tak is not None
    assert centre.tak.outputs[0].cert_file == root / "tak" / "centre-1.pem"


# ----------------------------------------------------------------------------- centre


@asynccontextmanager
async def udp_receiver() -> AsyncIterator[tuple[int, list[ET.Element]]]:
    got: list[ET.Element] = []

    class Receiver(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            got.append(ET.fromstring(data))

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Receiver, local_addr=("127.0.0.1", 0))
    try:
        yield transport.get_extra_info("sockname")[1], got
    finally:
        transport.close()


async def test_a_centre_sends_its_picture_alerts_and_operator_actions(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    # A broker of its own: retained tracks other tests leave would join the picture.
    mosquitto = mosquitto_broker.url
    from borderwatch.edge.centre import Centre, OperatorRequest
    from borderwatch.edge.mqtt import topics
    from borderwatch.edge.tak import TakView
    from tests import test_centre as tc

    centre_id, n1, _ = tc.ids()
    async with udp_receiver() as (port, got):
        config = tc.config_for(mosquitto, tmp_path, centre_id).model_copy(
            update={"tak": tak(f"udp://127.0.0.1:{port}", own_units={n1: "ground"})}
        )
        centre = Centre(config)
        assert isinstance(centre.tak, TakView)
        assert centre.views == [centre.tak]

        def of(uid: str) -> list[ET.Element]:
            return [e for e in got if e.attrib["uid"] == uid]

        async with tc.running(centre), tc.client(mosquitto) as c:
            now = datetime.now(UTC)
            xy = np.array([[100.0, 200.0]])
            t = tc.track(n1, 101, xy[0], np.array([1.0, 0.0]), now, tc.CENTRE_FRAME)
            await tc.publish(c, topics.track(BorderKindName.BLUE, t.track_id), t.model_dump_json())
            pli = examples()["detection-position"].model_dump(mode="json")
            pli["provenance"] |= {
                "node_id": n1,
                "sensor_ids": ["gps"],
                "simulated": True,
                "exercise": False,
            }
            pli["msg_id"] = new_msg_id()
            await tc.publish(c, topics.pli(n1), json.dumps(pli))
            a = tc.alert(n1, 1, (100.0, 200.0), now, tc.CENTRE_FRAME)
            await tc.publish(c, topics.alert(), a.model_dump_json())
            alert_uid = f"borderwatch.alert.{centre_id}:1"
            await wait_until(lambda: bool(of(alert_uid)), "the centre's alert")
            await wait_until(lambda: bool(of(f"borderwatch.unit.{n1}")), "the node as a unit")
            await wait_until(
                lambda: any(e.attrib["uid"].startswith(f"borderwatch.{centre_id}:") for e in got),
                "a fused track",
            )
            reply = await centre.act(
                "acknowledge", OperatorRequest(alert_id=f"{centre_id}:1", operator="<ana>")
            )
            assert reply.ok, reply.error
            await wait_until(
                lambda: (
                    "acknowledged by <ana>" in (of(alert_uid)[-1].findtext("detail/remarks") or "")
                ),
                "the acknowledgement in the remarks",
            )
            reply = await centre.act(
                "close", OperatorRequest(alert_id=f"{centre_id}:1", operator="ana")
            )
            assert reply.ok, reply.error
            await wait_until(lambda: bool(of(f"{alert_uid}.delete")), "the closed alert deleted")
    fused = [e for e in got if e.attrib["uid"].startswith(f"borderwatch.{centre_id}:")]
    assert fused[0].attrib["type"] == "a-u-S-X"  # the node's boat class hint
    # Flags of a fused track come from its nodes' own messages (this one: simulated).
    assert fused[-1].attrib["opex"] == "s"
    unit = of(f"borderwatch.unit.{n1}")[0]
    assert unit.attrib["type"] == "a-f-G-U-U-L-C"
    first, *_, closed = of(alert_uid)
    assert first.attrib["type"] == "b-a-g"
    emergency = closed.find("detail/emergency")
    assert emergency is not None
    assert emergency.attrib["cancel"] == "true"
    assert closed.attrib["stale"] == closed.attrib["time"]
    assert "closed by ana" in (closed.findtext("detail/remarks") or "")


# ------------------------------------------------------------------------- bad input


def table(x: list[list[float]], t: float = 10.0) -> Any:
    from borderwatch.fusion.outputs import TrackTable

    n = len(x)
    return TrackTable(
        t=t,
        track_id=np.arange(1, n + 1),
        x=np.array(x, dtype=float),
        P=np.tile(np.diag([4.0, 4.0, 1.0, 1.0]), (n, 1, 1)),
        mode_prob=np.ones((n, 1)),
        cls=np.full(n, 1),  # person
        cls_conf=np.full(n, 0.9),
        hits=np.full(n, 5),
        first_t=np.full(n, t - 5.0),
        last_update_t=np.full(n, t),
        sensor_mask=np.ones(n, dtype=np.int64),
        side=np.zeros(n, dtype=np.int64),
        border_segment=np.full(n, -1),
        border_distance_m=np.full(n, np.nan),
    )


async def test_a_track_that_cannot_be_an_event_is_counted_and_the_rest_go_out() -> None:
    from borderwatch.edge.tak import TakOutput
    from borderwatch.fusion.frames import LocalFrame
    from borderwatch.schema import Publisher

    publisher = Publisher(
        frame=LocalFrame(44.187, 19.335),
        node_id="boat-8",
        epoch=NOW,
        sensor_ids=("radar",),
        software_version="1",
        simulated=False,
        exercise=False,
    )
    async with udp_receiver() as (port, got):
        output = TakOutput(tak(f"udp://127.0.0.1:{port}"), publisher)
        output.show_tracks(table([[10.0, 20.0, 1.0, 0.0], [np.nan, 5.0, 0.0, 0.0]]))
        await output.publish(examples()["alert-new"])  # another node's alert: still shown
        await wait_until(lambda: len(got) == 2, "the good track and the alert")
        await output.aclose()
    assert sorted(e.attrib["uid"] for e in got) == [
        "borderwatch.alert.boat-2:12",
        "borderwatch.boat-8:1",
    ]
    assert output.error_counts() == {"tak.build": 1}
