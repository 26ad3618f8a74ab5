"""Device settings, the driver registry, backoff, log limiting and the JSON detection parser;
plus the helpers the driver tests share (a sink that collects readings, running a driver)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from borderwatch.config.devices import (
    AnyDevice,
    DeviceConfig,
    GpsDevice,
    parse_device_url,
)
from borderwatch.drivers.base import Backoff, Driver, LogLimiter, Reading
from borderwatch.drivers.registry import DRIVER_PATHS, driver_class, make_driver
from borderwatch.schema import Detection
from borderwatch.schema.reference import examples, generated_blocks, render_docs
from borderwatch.sensors.base import Accepted, Rejected
from borderwatch.sensors.jsondet import MAX_ITEMS, MAX_PAYLOAD_BYTES, JsonDetectionParser

DOCS = Path(__file__).parents[1] / "docs" / "drivers.md"
DEVICES: TypeAdapter[AnyDevice] = TypeAdapter(DeviceConfig)
#: Longest wait for something a driver should do soon, s (a liveness deadline, not a timing).
DEADLINE_S = 10.0


# ----------------------------------------------------------------------- shared test helpers


class Collector:
    """A driver sink that keeps every reading."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []

    def __call__(self, reading: Reading) -> None:
        self.readings.append(reading)

    def keys(self) -> list[str]:
        return [r.item.key for r in self.readings]


def device(**fields: Any) -> AnyDevice:
    """A device config with fast reconnects (tests) unless the fields say otherwise."""
    fields.setdefault("reconnect_initial_s", 0.02)
    fields.setdefault("reconnect_max_s", 0.2)
    return DEVICES.validate_python(fields)


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Return once ``condition()`` holds; fail after :data:`DEADLINE_S` saying ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(driver: Driver[Any]) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``driver`` for the body; afterwards check it was still running (never raised)."""
    task = asyncio.create_task(driver.run(), name=f"driver-{driver.sensor_id}")
    try:
        yield task
        await asyncio.sleep(0)
        if task.done():
            task.result()  # re-raises what ended the driver
            raise AssertionError("driver.run() returned")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ---------------------------------------------------------------------------------- settings


def test_defaults_per_device_type() -> None:
    gps = device(type="gps", sensor_id="gps", url="/dev/ttyUSB0")
    ais = device(type="ais", sensor_id="ais", url="/dev/ttyUSB1")
    co2 = device(type="senseair", sensor_id="co2", url="/dev/ttyUSB2")
    radar = device(type="radar", sensor_id="radar", url="udp://0.0.0.0:10110")
    assert (gps.baudrate, ais.baudrate, co2.baudrate, radar.baudrate) == (4800, 38400, 9600, 4800)
    assert isinstance(gps, GpsDevice)
    assert gps.antenna_offset_m == (0.0, 0.0)
    assert GpsDevice(sensor_id="g", url="/dev/x").stale_after_s == 5.0


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "topic"),
    [
        ("/dev/ttyUSB0", "serial", "", 0, ""),
        ("/tmp/sim/gps", "serial", "", 0, ""),
        ("loop://", "loop", "", 0, ""),
        ("socket://127.0.0.1:4001", "socket", "127.0.0.1", 4001, ""),
        ("rfc2217://10.0.0.5:2217?logging=debug", "rfc2217", "10.0.0.5", 2217, ""),
        ("tcp://localhost:10110", "tcp", "localhost", 10110, ""),
        ("udp://0.0.0.0:10110", "udp", "0.0.0.0", 10110, ""),
        ("udp://[::1]:10110", "udp", "::1", 10110, ""),
        (
            "mqtt://127.0.0.1:1883/borderwatch/v1/node/+/sensor/#",
            "mqtt",
            "127.0.0.1",
            1883,
            "borderwatch/v1/node/+/sensor/#",
        ),
    ],
)
def test_device_urls(url: str, scheme: str, host: str, port: int, topic: str) -> None:
    parsed = parse_device_url(url)
    assert (parsed.scheme, parsed.host, parsed.port, parsed.topic) == (scheme, host, port, topic)
    assert parsed.is_serial == (scheme in ("serial", "loop", "socket", "rfc2217"))


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"sensor_id": "GPS"}, "sensor_id"),
        ({"sensor_id": "x" * 65}, "sensor_id"),
        ({"url": "ttyUSB0"}, "neither a device path"),
        ({"url": "udp://nohost"}, "host:port"),
        ({"url": "tcp://h:0"}, "port 0"),
        ({"url": "http://h:80"}, "unknown scheme"),
        ({"url": "mqtt://h:1883"}, "topic filter"),
        ({"url": "mqtt://h:1883/a/#/b"}, "'#'"),
        ({"url": "mqtt://h:1883/a+"}, "'+'"),
        ({"stale_after_s": 0}, "greater than 0"),
        ({"stale_after_s": float("nan")}, "finite"),
        ({"reconnect_initial_s": 5.0, "reconnect_max_s": 1.0}, "reconnect_max_s"),
        ({"baudrate": 0}, "greater than 0"),
        ({"colour": "red"}, "Extra inputs"),
        ({"type": "sonar"}, "does not match any of the expected tags"),
    ],
)
def test_bad_device_settings_are_refused(fields: dict[str, Any], complaint: str) -> None:
    data = {"type": "gps", "sensor_id": "gps-1", "url": "/dev/ttyUSB0", **fields}
    with pytest.raises(ValidationError, match=re.escape(complaint)):
        DEVICES.validate_python(data)


def test_type_specific_checks() -> None:
    with pytest.raises(ValidationError, match="two-way transport"):
        device(type="senseair", sensor_id="co2", url="udp://0.0.0.0:5000")
    with pytest.raises(ValidationError, match="longer than poll_interval_s"):
        device(type="senseair", sensor_id="co2", url="/dev/x", stale_after_s=1.0)
    with pytest.raises(ValidationError, match="mqtt://"):
        device(type="mqtt_detections", sensor_id="cam", url="udp://0.0.0.0:5000")
    for slave in (0, 248, 255):
        with pytest.raises(ValidationError, match=re.escape("1..247, or 254")):
            device(type="senseair", sensor_id="co2", url="/dev/x", slave=slave)


def test_every_field_is_described() -> None:
    for model in get_args(AnyDevice):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_yaml_examples_in_the_docs_validate() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    devices = [d for block in blocks for d in yaml.safe_load(block)["devices"]]
    types = {DEVICES.validate_python(d).type for d in devices}
    assert types == set(DRIVER_PATHS)


# ---------------------------------------------------------------------------------- registry


def test_registry_has_a_driver_for_every_device_type() -> None:
    device_types = {m.model_fields["type"].default for m in get_args(AnyDevice)}
    assert set(DRIVER_PATHS) == device_types
    for name in DRIVER_PATHS:
        cls = driver_class(name)
        assert issubclass(cls, Driver)


def test_make_driver_builds_the_type_s_driver() -> None:
    config = device(type="ais", sensor_id="ais-1", url="loop://")
    driver = make_driver(config, Collector(), clock=lambda: 1.0)
    assert type(driver).__name__ == "AisDriver"
    health = driver.health()
    assert (health.sensor_id, health.type, health.status) == ("ais-1", "ais", "starting")
    assert not health.connected
    assert health.messages == health.errors == health.bytes_in == 0


def test_unknown_driver_type() -> None:
    with pytest.raises(KeyError):
        driver_class("sonar")


# ------------------------------------------------------------------------ backoff and logging


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    backoff = Backoff(0.5, 30.0, random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    nominal = [min(30.0, 0.5 * 2**n) for n in range(12)]
    for d, n in zip(delays, nominal, strict=True):
        assert n / 2 <= d < n
    assert len(set(delays)) == len(delays)  # jittered, not a fixed ladder
    backoff.reset()
    assert backoff.next_delay() < 0.5


def test_backoff_is_reproducible_with_a_seed() -> None:
    a = Backoff(0.1, 5.0, random.Random(3))
    b = Backoff(0.1, 5.0, random.Random(3))
    assert [a.next_delay() for _ in range(8)] == [b.next_delay() for _ in range(8)]


def test_log_limiter_holds_repeats_and_says_how_many(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    limiter = LogLimiter(logging.getLogger("test.limiter"), 10.0, lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.limiter"):
        for i in range(50):
            now[0] = 100.0 + i * 0.1
            limiter.log(logging.WARNING, "checksum", "bad line %d", i)
        limiter.log(logging.WARNING, "malformed", "other reason")
        now[0] = 111.0
        limiter.log(logging.WARNING, "checksum", "bad line %d", 99)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "bad line 0",
        "other reason",
        "bad line 99 (49 more since the last report)",
    ]


# ------------------------------------------------------------------------- JSON detections


def _payload(**changes: Any) -> bytes:
    data = examples()["detection-bearing-only"].model_dump(mode="json")
    data.update(changes)
    return json.dumps(data).encode()


def test_json_detection_accepted() -> None:
    parser = JsonDetectionParser()
    (item,) = parser.feed(_payload())
    assert isinstance(item, Accepted)
    assert item.key == "detection"
    assert item.data["kind"] == "detection"
    message = item.data["message"]
    assert isinstance(message, Detection)
    assert message == examples()["detection-bearing-only"]
    assert parser.close() == []


@pytest.mark.parametrize(
    ("payload", "reason", "detail"),
    [
        (b"", "malformed", "not JSON"),
        (b"{not json", "malformed", "not JSON"),
        (b"\xff\xfe{}", "malformed", "not JSON"),
        (b"[1, 2", "malformed", "not JSON"),
        (b"[1] 2", "malformed", "not JSON"),
        (b'"detection"', "malformed", "str"),
        (_payload(schema_version="2"), "schema", "unsupported schema_version"),
        (_payload(schema_version="1.1"), "schema", "major version only"),
        (_payload(type="track"), "schema", "not a detection"),
        (_payload(measurement={"model": "sonar"}), "schema", "measurement"),
        (_payload(extra_field=1), "schema", "extra_field"),
        (b"{" + b" " * MAX_PAYLOAD_BYTES + b"}", "oversized", str(MAX_PAYLOAD_BYTES)),
    ],
)
def test_json_detection_rejected(payload: bytes, reason: str, detail: str) -> None:
    (item,) = JsonDetectionParser().feed(payload)
    assert isinstance(item, Rejected)
    assert item.reason == reason
    assert detail in item.detail


def _array(*items: Any) -> bytes:
    return json.dumps(list(items)).encode()


def test_json_detection_array_is_one_item_in_order() -> None:
    first = examples()["detection-bearing-only"]
    second = examples()["detection-position"]
    parser = JsonDetectionParser()
    (item,) = parser.feed(_array(*(m.model_dump(mode="json") for m in (first, second, first))))
    assert isinstance(item, Accepted)
    assert (item.key, item.data["kind"], item.line) == ("detections", "detection", 1)
    assert item.data["messages"] == [first, second, first]
    assert parser.feed(b" [ ] ") == []  # an empty scan is no error
    assert parser.feed(_payload())[0].line == 3


def test_json_detection_array_rejects_bad_items_one_by_one() -> None:
    good = json.loads(_payload())
    no_version = dict(good)
    del no_version["schema_version"]
    items = JsonDetectionParser().feed(
        _array(good, 7, {**good, "type": "track"}, no_version, {**good, "extra": 1}, good)
    )
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert [(r.reason, r.detail.split(":")[0]) for r in rejected] == [
        ("malformed", "item 1"),
        ("schema", "item 2"),
        ("schema", "item 3"),
        ("schema", "item 4"),
    ]
    assert "extra" in rejected[3].detail
    (accepted,) = [i for i in items if isinstance(i, Accepted)]
    assert accepted.data["messages"] == [examples()["detection-bearing-only"]] * 2


def test_json_detection_array_checks_local_metres_item_by_item() -> None:
    # The whole-scan path checks x_m/y_m against lat/lon for all items at once; its verdicts
    # are those of the one-object path, item by item.
    good = examples()["detection-position"].model_dump(mode="json")
    shifted = json.loads(json.dumps(good))
    shifted["measurement"]["position"]["x_m"] += 40.0  # 40 m off what lat/lon say
    no_origin = json.loads(json.dumps(good))
    no_origin["enu_origin"] = None
    items = JsonDetectionParser().feed(_array(good, shifted, good, no_origin))
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert [(r.reason, r.detail.split(":")[0]) for r in rejected] == [
        ("schema", "item 1"),
        ("schema", "item 3"),
    ]
    (alone,) = JsonDetectionParser().feed(json.dumps(shifted).encode())
    assert isinstance(alone, Rejected)
    assert "disagree with lat/lon by 40.0 m" in rejected[0].detail
    assert "disagree with lat/lon by 40.0 m" in alone.detail
    assert "need enu_origin" in rejected[1].detail
    (accepted,) = [i for i in items if isinstance(i, Accepted)]
    assert len(accepted.data["messages"]) == 2


def test_json_detection_array_limits() -> None:
    good = json.loads(_payload())
    (item,) = JsonDetectionParser().feed(_array(*[good] * (MAX_ITEMS + 1)))
    assert isinstance(item, Rejected)
    assert (item.reason, item.detail) == ("oversized", f"{MAX_ITEMS + 1} items > {MAX_ITEMS}")
    (item,) = JsonDetectionParser().feed(_array(*[0] * (MAX_ITEMS + 1)))
    assert isinstance(item, Rejected)
    assert item.reason == "oversized"
    (item,) = JsonDetectionParser().feed(b"[" + b" " * MAX_PAYLOAD_BYTES + b"]")
    assert isinstance(item, Rejected)
    assert item.reason == "oversized"


def test_json_detection_without_schema_version_is_refused() -> None:
    data = json.loads(_payload())
    del data["schema_version"]
    (item,) = JsonDetectionParser().feed(json.dumps(data).encode())
    assert isinstance(item, Rejected)
    assert (item.reason, item.detail) == ("schema", "schema_version: Field required")


@given(st.lists(st.binary(max_size=300), max_size=8))
def test_json_detection_parser_takes_any_bytes(payloads: list[bytes]) -> None:
    parser = JsonDetectionParser()
    per_payload = [parser.feed(p) for p in payloads]
    for line, (payload, items) in enumerate(zip(payloads, per_payload, strict=True), start=1):
        assert all(isinstance(i, Rejected) and i.line == line for i in items)
        # Only an array can be rejected item by item (an empty one gives nothing).
        if not payload.lstrip().startswith(b"["):
            assert len(items) == 1


def test_docs_detection_examples_are_generated_and_valid() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert render_docs(text) == text, "docs/drivers.md drifted from the models: regenerate it"
    bodies = [body for kind, _name, body in generated_blocks(text) if kind == "example"]
    assert bodies
    for body in bodies:
        payload = body.strip().removeprefix("```json").removesuffix("```").encode()
        (item,) = JsonDetectionParser().feed(payload)
        assert isinstance(item, Accepted), item
