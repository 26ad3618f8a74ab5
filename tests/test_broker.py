"""The embedded broker: each backend carries what the node and centre need from MQTT 5 (QoS 1,
retained messages, last wills, request/response properties, persistent sessions), the node's
MQTT output delivers through it, and stopping it frees its port, process and threads."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import socket
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import get_args

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from borderwatch.edge.broker import (
    BrokerBackend,
    BrokerError,
    EmbeddedBroker,
    find_broker_binary,
    mqtt_broker,
)
from borderwatch.edge.mqtt import MqttOutput, topics
from tests.test_mqtt_output import alert, running, session_properties, settings_for

#: Longest wait for a message the broker must deliver, s (a bound, not a measure).
WAIT_S = 10.0
BACKENDS = [b for b in get_args(BrokerBackend) if b != "auto"]


def _available(backend: str) -> bool:
    if backend == "mosquitto":
        return find_broker_binary() is not None
    return importlib.util.find_spec("iotcore") is not None


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """An embedded broker of each backend."""
    backend = request.param
    if not _available(backend):
        pytest.skip(f"{backend} is not installed")
    async with EmbeddedBroker(backend) as broker_url:
        yield broker_url


def client(
    url: str, identifier: str, *, will: aiomqtt.Will | None = None, persistent: bool = False
) -> aiomqtt.Client:
    """An MQTT 5 client; ``persistent``: its session outlives a disconnection by an hour."""
    host, port = url.removeprefix("mqtt://").rsplit(":", 1)
    return aiomqtt.Client(
        host,
        int(port),
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=WAIT_S,
        will=will,
        clean_start=not persistent,
        properties=session_properties() if persistent else None,
    )


async def next_message(c: aiomqtt.Client) -> aiomqtt.Message:
    async with asyncio.timeout(WAIT_S):
        async for message in c.messages:
            return message
    raise AssertionError("no message")


# ------------------------------------------------------------------------------- features


async def test_qos1_messages_pass_between_mqtt5_clients(url: str) -> None:
    async with client(url, "sub") as sub, client(url, "pub") as pub:
        await sub.subscribe("test/qos1", qos=1)
        sent = [f"message {i}".encode() for i in range(5)]
        for payload in sent:
            await pub.publish("test/qos1", payload, qos=1)
        received = [await next_message(sub) for _ in sent]
    assert [m.payload for m in received] == sent
    assert {m.qos for m in received} == {1}


async def test_a_retained_message_reaches_a_late_subscriber(url: str) -> None:
    async with client(url, "pub") as pub:
        await pub.publish("test/retained", b"first", qos=1, retain=True)
        await pub.publish("test/retained", b"latest", qos=1, retain=True)
    async with client(url, "late") as late:
        await late.subscribe("test/retained", qos=1)
        message = await next_message(late)
    assert message.payload == b"latest"
    assert message.retain


async def test_the_last_will_is_delivered_when_a_client_dies(url: str) -> None:
    will = aiomqtt.Will("test/will", b"offline", qos=1)
    async with client(url, "watcher") as watcher:
        await watcher.subscribe("test/will", qos=1)
        dying = client(url, "dying", will=will)
        await dying.__aenter__()
        # Gone without a DISCONNECT: the broker must publish the will.
        sock = dying._client.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)
        message = await next_message(watcher)
        with contextlib.suppress(aiomqtt.MqttError):
            await dying.__aexit__(None, None, None)
    assert message.payload == b"offline"


async def test_response_topic_and_correlation_data_reach_the_responder(url: str) -> None:
    correlation = os.urandom(16)
    async with client(url, "responder") as responder, client(url, "requester") as requester:
        await responder.subscribe("test/cmd", qos=1)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "test/reply/requester"
        props.CorrelationData = correlation
        await requester.publish("test/cmd", b"{}", qos=1, properties=props)
        request = await next_message(responder)
    assert getattr(request.properties, "ResponseTopic", None) == "test/reply/requester"
    assert getattr(request.properties, "CorrelationData", None) == correlation


async def test_a_persistent_session_keeps_messages_sent_while_away(url: str) -> None:
    async with client(url, "centre", persistent=True) as centre:
        await centre.subscribe("test/alert", qos=1)
    async with client(url, "node") as node:
        await node.publish("test/alert", b"while away", qos=1)
    async with client(url, "centre", persistent=True) as centre:
        message = await next_message(centre)
    assert message.payload == b"while away"


async def test_mqtt_output_delivers_an_alert_through_the_embedded_broker(
    url: str, tmp_path: Path
) -> None:
    sent = alert(1)
    output = MqttOutput(settings_for(url, tmp_path), "boat-1")
    async with client(url, "receiver") as receiver:
        await receiver.subscribe(topics.alert(), qos=1)
        await output.publish(sent)
        async with running(output.run()):
            message = await next_message(receiver)
    output.close()
    assert isinstance(message.payload, bytes)
    assert json.loads(message.payload)["msg_id"] == sent.msg_id
    assert output.backlog()[0] == 0


# ------------------------------------------------------------------------------ lifecycle


def _port_is_free(port: int) -> bool:
    """Whether a new server could listen on the port (closed connections may still linger in
    TIME_WAIT there, which SO_REUSEADDR allows, as every broker sets it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
    return True


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("backend", BACKENDS)
async def test_starting_and_stopping_twice_frees_port_process_and_threads(backend: str) -> None:
    if not _available(backend):
        pytest.skip(f"{backend} is not installed")
    threads_before = set(threading.enumerate())
    for _ in range(2):
        broker = EmbeddedBroker(backend)  # type: ignore[arg-type]
        async with broker as url:
            assert broker.backend == backend
            assert url == f"mqtt://127.0.0.1:{broker.port}"
            port, pid = broker.port, broker.pid
            assert port is not None
            assert pid is not None
            assert not _port_is_free(port)
            async with client(url, "probe") as probe:
                await probe.publish("test/alive", b"", qos=1)
        assert _port_is_free(port)
        assert not _process_exists(pid)
        assert broker.pid is None
        with pytest.raises(BrokerError):
            _ = broker.url
    # The loop's executor threads are aiomqtt's (it connects through it), not the broker's.
    await asyncio.get_running_loop().shutdown_default_executor()
    for thread in set(threading.enumerate()) - threads_before:
        thread.join(timeout=WAIT_S)  # a child watcher's thread ends after its process
        assert not thread.is_alive(), thread.name


async def _until_dropped(c: aiomqtt.Client) -> None:
    async for _ in c.messages:  # ends with MqttError when the broker goes
        pass


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_interruption_drops_clients_and_the_broker_returns_on_its_port(
    backend: str,
) -> None:
    if not _available(backend):
        pytest.skip(f"{backend} is not installed")
    broker = EmbeddedBroker(backend)  # type: ignore[arg-type]
    async with broker as url:
        port, pid = broker.port, broker.pid
        assert port is not None
        async with client(url, "before") as before:
            outage = asyncio.create_task(broker.interrupt(0.5))
            with pytest.raises(aiomqtt.MqttError):
                await asyncio.wait_for(_until_dropped(before), WAIT_S)
            await outage
        assert (broker.port, broker.url) == (port, url)
        assert pid is not None
        assert broker.pid != pid
        assert not _process_exists(pid)
        async with client(url, "after") as after:
            await after.subscribe("test/back", qos=1)
            await after.publish("test/back", b"1", qos=1)
            message = await next_message(after)
            assert message.payload == b"1"
    with pytest.raises(BrokerError, match="not running"):
        await broker.interrupt(0.1)


async def test_a_persistent_broker_keeps_a_session_and_its_messages_across_a_restart() -> None:
    if not _available("mosquitto"):
        pytest.skip("mosquitto is not installed")
    broker = EmbeddedBroker("mosquitto", persistent=True)
    async with broker as url:
        async with client(url, "centre", persistent=True) as centre:
            await centre.subscribe("test/alerts", qos=1)
        await broker.interrupt(0.2)  # the centre is away, and the broker restarts
        async with client(url, "node") as node:
            for n in range(1500):  # more than mosquitto's default queue of 1000
                await node.publish("test/alerts", str(n).encode(), qos=1)
        async with client(url, "centre", persistent=True) as centre:
            got = [int((await next_message(centre)).payload) for _ in range(1500)]
    assert got == list(range(1500))
    with pytest.raises(ValueError, match="only the mosquitto backend"):
        EmbeddedBroker("iotcore", persistent=True)


async def test_auto_prefers_mosquitto_and_finds_the_binary() -> None:
    binary = find_broker_binary()
    if binary is None:
        pytest.skip("mosquitto is not installed")
    assert os.access(binary, os.X_OK)
    assert Path(binary).name == "mosquitto"
    broker = EmbeddedBroker()
    async with broker:
        assert broker.backend == "mosquitto"


async def test_a_configured_url_is_used_as_it_is(mosquitto: str) -> None:
    async with mqtt_broker(mosquitto) as url:
        assert url == mosquitto
    async with mqtt_broker(None) as embedded:
        assert embedded != mosquitto
        async with client(embedded, "probe") as probe:
            await probe.publish("test/alive", b"", qos=1)


async def test_mosquitto_named_but_missing_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Every place the search looks points at nothing.
    monkeypatch.setenv("BORDERWATCH_MOSQUITTO", str(tmp_path / "mosquitto"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("borderwatch.edge.broker._MOSQUITTO_PLACES", ())
    assert find_broker_binary() is None
    with pytest.raises(BrokerError, match="mosquitto"):
        async with EmbeddedBroker("mosquitto"):
            pass


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="backend"):
        EmbeddedBroker("nanomq")  # type: ignore[arg-type]
