"""JSON Detection messages from networked third-party sensors (format ``json_detection``).

A sensor that does its own processing (a camera with on-board detection, a partner's radar
tracker) publishes one borderwatch :class:`~borderwatch.schema.Detection` per MQTT message, as
JSON (``docs/drivers.md`` shows a payload). The payload is not line-framed: each
:meth:`JsonDetectionParser.feed` is one whole payload, validated with
:func:`borderwatch.schema.parse_message`.
"""

from __future__ import annotations

import json

from borderwatch.schema import Detection, MessageError, parse_message
from borderwatch.sensors.base import Accepted, Item, Rejected, StreamParser

#: Largest payload accepted, bytes; a Detection is well under 2 KiB.
MAX_PAYLOAD_BYTES = 64 * 1024


class JsonDetectionParser(StreamParser):
    """One JSON Detection per feed (an MQTT payload or a datagram).

    Accepted: key ``"detection"``, ``data = {"kind": "detection", "message": Detection}`` (the
    validated pydantic model). Rejected: ``oversized`` (more than :data:`MAX_PAYLOAD_BYTES`),
    ``malformed`` (not UTF-8 JSON, or not a JSON object), ``schema`` (the object is not a valid
    Detection of this schema version: the detail names the bad fields). ``line`` counts
    payloads.
    """

    name = "json_detection"

    def __init__(self) -> None:
        self._payloads = 0

    def feed(self, data: bytes) -> list[Item]:
        self._payloads += 1
        return [self._parse(data, self._payloads)]

    def close(self) -> list[Item]:
        return []

    @staticmethod
    def _parse(data: bytes, line: int) -> Item:
        if len(data) > MAX_PAYLOAD_BYTES:
            return Rejected("oversized", f"{len(data)} bytes > {MAX_PAYLOAD_BYTES}", line)
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
