"""Drivers subscribed to a real Mosquitto broker: JSON detections, NMEA payloads, broker restart."""

from __future__ import annotations

import json
from typing import Any

import aiomqtt
import pytest

from borderwatch.config.devices import parse_device_url
from borderwatch.drivers import mqtt as mqtt_transport
from borderwatch.drivers.registry import make_driver
from borderwatch.drivers.transport import TransportSettings
from borderwatch.schema import Detection
from borderwatch.schema.reference import examples
from borderwatch.sensors.jsondet import MAX_PAYLOAD_BYTES
from tests.conftest import MosquittoBroker
from tests.test_drivers_base import Collector, device, running, wait_until

TOPIC = "borderwatch/v1/node/boat-2/sensor/thermal-1/det"


def _example(name: str) -> bytes:
    return examples()[name].model_dump_json().encode()


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("mqtt://").split(":")
    return host, int(port)


async def publish(url: str, topic: str, *payloads: bytes) -> None:
    host, port = _host_port(url)
    async with aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V5) as client:
        for payload in payloads:
            await client.publish(topic, payload, qos=1)


def detections_driver(url: str, sink: Collector, topic: str = TOPIC) -> Any:
    config = device(type="mqtt_detections", sensor_id="thermal-1", url=f"{url}/{topic}")
    return make_driver(config, sink)


async def test_json_detections_through_mosquitto(mosquitto: str) -> None:
    sink = Collector()
    driver = detections_driver(mosquitto, sink)
    wrong_version = json.loads(_example("detection-position"))
    wrong_version["schema_version"] = "2"
    payloads = [
        _example("detection-bearing-only"),
        b'{"type": "detection", "oops"',
        json.dumps(wrong_version).encode(),
        b"[" + b"0," * (MAX_PAYLOAD_BYTES // 2) + b"0]",
        _example("track"),
        _example("detection-position"),
    ]
    async with running(driver):
        await wait_until(lambda: driver.health().connected, "subscribed")
        await publish(mosquitto, TOPIC, *payloads)
        await wait_until(lambda: driver.health().messages + driver.health().errors == 6, "all")
        health = driver.health()
    messages = [r.item.data["message"] for r in sink.readings]
    assert all(isinstance(m, Detection) for m in messages)
    assert [m.msg_id for m in messages] == [
        examples()["detection-bearing-only"].msg_id,
        examples()["detection-position"].msg_id,
    ]
    assert health.accepted == {"detection": 2}
    assert health.rejected == {"malformed": 1, "schema": 2, "oversized": 1}
    assert health.bytes_in == sum(len(p) for p in payloads)
    assert (health.status, health.connects) == ("fault", 1)  # 4 of 6 recent rejected


async def test_nmea_payloads_over_mqtt(mosquitto: str) -> None:
    sink = Collector()
    config = device(type="gps", sensor_id="gps-1", url=f"{mosquitto}/boat-2/nmea/+")
    driver = make_driver(config, sink)
    gga = b"$GPGGA,090000.00,4203.0000,N,01906.0000,E,2,11,0.8,3.0,M,41.2,M,2.0,0120*4E"
    hdt = b"$HEHDT,91.50,T*22"
    async with running(driver):
        await wait_until(lambda: driver.health().connected, "subscribed")
        # One sentence per payload without a line ending; then two in one payload.
        await publish(mosquitto, "boat-2/nmea/gps", gga, gga + b"\r\n" + hdt + b"\r\n")
        await publish(mosquitto, "boat-2/other", hdt)  # outside the filter
        await wait_until(lambda: len(sink.readings) == 3, "three sentences")
    assert sink.keys() == ["GGA", "GGA", "HDT"]
    assert driver.health().errors == 0


async def test_broker_restart_reconnects(mosquitto_broker: MosquittoBroker) -> None:
    sink = Collector()
    driver = detections_driver(mosquitto_broker.url, sink)
    async with running(driver):
        await wait_until(lambda: driver.health().connected, "subscribed")
        await publish(mosquitto_broker.url, TOPIC, _example("detection-bearing-only"))
        await wait_until(lambda: len(sink.readings) == 1, "first detection")
        mosquitto_broker.stop()
        await wait_until(lambda: driver.health().rejected.get("open_failed", 0) >= 1, "retries")
        down = driver.health()
        mosquitto_broker.start()
        await wait_until(lambda: driver.health().connects == 2, "resubscribed")
        await publish(mosquitto_broker.url, TOPIC, _example("detection-position"))
        await wait_until(lambda: len(sink.readings) == 2, "detection after the restart")
        up = driver.health()
    assert (down.status, down.connected, down.disconnects) == ("fault", False, 1)
    assert down.rejected["disconnected"] == 1
    assert (up.status, up.connected, up.messages) == ("ok", True, 2)


async def test_a_scan_as_one_array_payload(mosquitto: str) -> None:
    sink = Collector()
    driver = detections_driver(mosquitto, sink)
    scan = [json.loads(_example(n)) for n in ("detection-position", "detection-bearing-only")]
    bad = {**scan[0], "extra": 1}
    async with running(driver):
        await wait_until(lambda: driver.health().connected, "subscribed")
        await publish(mosquitto, TOPIC, json.dumps([scan[0], bad, scan[1]]).encode())
        await wait_until(lambda: driver.health().messages + driver.health().errors == 2, "both")
        health = driver.health()
    (reading,) = sink.readings
    assert [m.msg_id for m in reading.item.data["messages"]] == [
        examples()["detection-position"].msg_id,
        examples()["detection-bearing-only"].msg_id,
    ]
    assert (health.accepted, health.rejected) == ({"detections": 1}, {"schema": 1})


async def test_client_queue_overflow_is_counted(
    mosquitto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mqtt_transport, "MQTT_QUEUE_SIZE", 2)
    endpoint = parse_device_url(f"{mosquitto}/{TOPIC}")
    transport = await mqtt_transport.MqttTransport.open(
        endpoint, TransportSettings(baudrate=0, name="thermal-1")
    )
    try:
        # Nobody reads: the first two wait in the queue, the other eight overflow it.
        payloads = [_example("detection-position")] * 10
        await publish(mosquitto, TOPIC, *payloads)
        await wait_until(lambda: transport.dropped == 8, "eight dropped")
        assert [await transport.read() for _ in range(2)] == payloads[:2]
    finally:
        await transport.aclose()
