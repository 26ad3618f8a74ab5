"""JSON Detection messages from networked third-party sensors (format ``json_detection``).

A sensor that does its own processing (a camera with on-board detection, a partner's radar
tracker) publishes borderwatch :class:`~borderwatch.schema.Detection` messages as JSON, either
one object per MQTT message or a whole scan as one JSON array of objects (``docs/drivers.md``
shows both). The payload is not line-framed: each :meth:`JsonDetectionParser.feed` is one whole
payload. An array is validated in one pass; when that fails, each item is validated on its own
so one bad detection does not cost the scan's good ones.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from borderwatch.schema import Detection, MessageError, parse_message
from borderwatch.schema.common import DEFER_POSITION_CHECK, local_position_problems
from borderwatch.sensors.base import Accepted, Item, Rejected, StreamParser

#: Largest payload accepted, bytes: a Detection is well under 2 KiB, a scan of
#: :data:`MAX_ITEMS` of them under 2 MiB.
MAX_PAYLOAD_BYTES = 2 * 1024 * 1024
#: Most detections one array payload may hold; a longer array is refused whole.
MAX_ITEMS = 2000

_DETECTIONS = TypeAdapter(list[Detection])


class JsonDetectionParser(StreamParser):
    """One JSON Detection, or one JSON array of them, per feed (an MQTT payload or a datagram).

    Accepted: a single object as key ``"detection"``, ``data = {"kind": "detection",
    "message": Detection}``; an array as one item with key ``"detections"``, ``data = {"kind":
    "detection", "messages": [Detection, ...]}`` holding its valid items in order (an empty
    array gives nothing). Rejected, for the whole payload: ``oversized`` (more than
    :data:`MAX_PAYLOAD_BYTES`, or an array of more than :data:`MAX_ITEMS`), ``malformed`` (not
    UTF-8 JSON, or neither an object nor an array); for a single object or for each bad item of
    an array: ``malformed`` (an item that is not an object) or ``schema`` (not a valid
    Detection of this schema version: the detail names the bad fields, and the item's index).
    ``line`` counts payloads.
    """

    name = "json_detection"

    def __init__(self) -> None:
        self._payloads = 0

    def feed(self, data: bytes) -> list[Item]:
        self._payloads += 1
        return self._parse(data, self._payloads)

    def close(self) -> list[Item]:
        return []

    @staticmethod
    def _parse(data: bytes, line: int) -> list[Item]:
        if len(data) > MAX_PAYLOAD_BYTES:
            return [Rejected("oversized", f"{len(data)} bytes > {MAX_PAYLOAD_BYTES}", line)]
        if data.lstrip()[:1] == b"[":
            return _parse_array(data, line)
        return [_parse_object(data, line)]


def _parse_object(data: bytes, line: int) -> Item:
    try:
        # Parsed once here to tell bad JSON from a bad message; pydantic parses again.
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        return Rejected("malformed", f"not JSON: {exc}", line)
    if not isinstance(obj, dict):
        return Rejected("malformed", f"a JSON {type(obj).__name__}, not an object", line)
    if obj.get("type", "detection") != "detection":
        return Rejected("schema", f"type {obj.get('type')!r} is not a detection", line)
    try:
        message = parse_message(data)
    except MessageError as exc:
        return Rejected("schema", exc.reason[:300], line)
    if not isinstance(message, Detection):  # the type check above makes this unreachable
        return Rejected("schema", f"{type(message).__name__} is not a detection", line)
    return Accepted("detection", {"kind": "detection", "message": message}, line)


def _parse_array(data: bytes, line: int) -> list[Item]:
    try:
        # The common case, a whole good scan: one pass of pydantic-core over the bytes. The
        # check that local metres agree with lat/lon is then made for the whole scan at once
        # (numpy per origin), with the verdicts the one-by-one check would give.
        messages = _DETECTIONS.validate_json(data, context={DEFER_POSITION_CHECK: True})
    except ValidationError:
        return _parse_items(data, line)
    if len(messages) > MAX_ITEMS:
        return [Rejected("oversized", f"{len(messages)} items > {MAX_ITEMS}", line)]
    items: list[Item] = []
    good: list[Detection] = []
    problems = local_position_problems([(m.enu_origin, m.geo_points()) for m in messages])
    for i, (message, problem) in enumerate(zip(messages, problems, strict=True)):
        if "schema_version" not in message.model_fields_set:
            items.append(Rejected("schema", f"item {i}: schema_version: Field required", line))
        elif problem is not None:
            items.append(Rejected("schema", f"item {i}: {problem}"[:300], line))
        else:
            good.append(message)
    if good:
        items.append(Accepted("detections", {"kind": "detection", "messages": good}, line))
    return items


def _parse_items(data: bytes, line: int) -> list[Item]:
    """The slow path of an array with a bad item: each item validated alone."""
    try:
        array = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        return [Rejected("malformed", f"not JSON: {exc}", line)]
    if not isinstance(array, list):  # "[" began something else, e.g. "[1] x"
        return [Rejected("malformed", f"a JSON {type(array).__name__}, not an array", line)]
    if len(array) > MAX_ITEMS:
        return [Rejected("oversized", f"{len(array)} items > {MAX_ITEMS}", line)]
    items: list[Item] = []
    good: list[Detection] = []
    for i, obj in enumerate(array):
        problem = _item_problem(obj)
        if problem is not None:
            items.append(Rejected(problem[0], f"item {i}: {problem[1]}"[:300], line))
            continue
        try:
            # Re-encoded so an item is judged exactly as a single-object payload would be.
            message = parse_message(json.dumps(obj))
        except MessageError as exc:
            items.append(Rejected("schema", f"item {i}: {exc.reason}"[:300], line))
            continue
        if isinstance(message, Detection):  # the type check above makes this always true
            good.append(message)
    if good:
        items.append(Accepted("detections", {"kind": "detection", "messages": good}, line))
    return items


def _item_problem(obj: Any) -> tuple[str, str] | None:
    if not isinstance(obj, dict):
        return "malformed", f"a JSON {type(obj).__name__}, not an object"
    if obj.get("type", "detection") != "detection":
        return "schema", f"type {obj.get('type')!r} is not a detection"
    if "schema_version" not in obj:
        return "schema", "schema_version: Field required"
    return None
