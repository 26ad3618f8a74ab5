"""AIS messages from a receiver or transponder (``!AIVDM``, ``!AIVDO``, other talkers).

:class:`AisParser` checks each sentence's checksum, reassembles messages sent in several
fragments, decodes them with pyais and gives JSON-ready ``ais`` items (see ``docs/devices.md``,
section "AIS"). The item's key is the message type as a decimal string (``"1"``, ``"5"``).

Fragments are grouped by talker and sentence type, channel, sequential message id and fragment
count. Fragments of different groups may interleave (feeds that merge several receivers do);
within a group they must arrive in order. Every input line ends up in exactly one item: an
accepted message counts its lines in ``data["fragments"]``, and each fragment of a message that
cannot be completed is rejected on its own line as ``incomplete_fragment`` (fragment out of
order, a group restarted before it was complete, more than :data:`MAX_PENDING` groups waiting,
or still waiting at the end of the stream).
"""

from __future__ import annotations

import enum
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import reduce
from operator import xor
from typing import Any

from pyais.constants import ShipType
from pyais.exceptions import UnknownMessageException
from pyais.messages import AISSentence

from borderwatch.sensors.base import Accepted, Item, LineParser, Rejected

__all__ = ["MAX_PENDING", "AisParser"]

#: Unfinished multi-fragment messages kept at most; the oldest is dropped beyond this.
MAX_PENDING = 32

KNOT_MPS = 1852.0 / 3600.0

#: ``!`` (or ``$``), optional tag block before it, the sentence, ``*`` and two hex digits.
_FRAME_RE = re.compile(r"(?:\\[^\\]*\\)?([!$])([^!$*\\]*)\*([0-9A-Fa-f]{2})")
#: Characters of the six-bit payload armour.
_PAYLOAD_RE = re.compile(rb"[0-W`-w]*")
#: Value types that are JSON as they are (pyais also gives enums and bytes).
_PLAIN = frozenset((int, float, str, bool, type(None)))
_HEAD_RE = re.compile(r"[A-Z][A-Z0-9](VD[MO])")

#: Shortest payload, in bits, of the message types whose fields this module reads.
_MIN_BITS = {1: 168, 2: 168, 3: 168, 5: 420, 18: 168, 19: 312, 24: 160}
_POSITION_TYPES = frozenset((1, 2, 3, 18, 19))
_STATIC_TYPES = frozenset((5, 19, 24))

_GroupKey = tuple[str, str, int | None, int]

#: Non-spare field names of each pyais message class (what ``asdict()`` gives), cached.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


@dataclass(slots=True)
class _Pending:
    sentences: list[AISSentence] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


def _checksum(body: str) -> int:
    return reduce(xor, body.encode("ascii"), 0)


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return value


def _enum_name(value: Any) -> str | None:
    return value.name if isinstance(value, enum.Enum) else None


class _OutOfRangeError(ValueError):
    pass


def _position(data: dict[str, Any]) -> None:
    """Null the not-available sentinels (lat 91, lon 181); out of range otherwise.

    pyais already gives the coordinates rounded to its resolution (1e-6 degrees or coarser).
    """
    lat, lon = data.get("lat"), data.get("lon")
    if lat is not None:
        if lat == 91.0:
            data["lat"] = None
        elif not -90.0 <= lat <= 90.0:
            raise _OutOfRangeError(f"lat {lat} is beyond 90 degrees")
    if lon is not None:
        if lon == 181.0:
            data["lon"] = None
        elif not -180.0 <= lon <= 180.0:
            raise _OutOfRangeError(f"lon {lon} is beyond 180 degrees")


def _motion(data: dict[str, Any]) -> None:
    """Speed, course and heading of the position reports, with their not-available values."""
    speed = data.pop("speed", None)
    sog = None if speed is None or speed >= 102.3 else speed
    data["sog_knots"] = sog
    data["speed_mps"] = None if sog is None else round(sog * KNOT_MPS, 3)
    course = data.pop("course", None)
    data["cog_deg"] = None if course is None or course >= 360.0 else course
    heading = data.pop("heading", None)
    data["heading_deg"] = None if heading is None or heading >= 360 else heading
    second = data.get("second")
    if second is not None and second >= 60:
        data["second"] = None


def _static(data: dict[str, Any], raw_ship_type: Any) -> None:
    if "shipname" in data:
        data["name"] = data.pop("shipname")
    if "ship_type" in data:
        if isinstance(raw_ship_type, int) and not isinstance(raw_ship_type, enum.Enum):
            try:
                raw_ship_type = ShipType.from_value(raw_ship_type)
            except ValueError:
                raw_ship_type = None
        data["ship_type_name"] = _enum_name(raw_ship_type)
    bow, stern = data.get("to_bow"), data.get("to_stern")
    port, star = data.get("to_port"), data.get("to_starboard")
    if bow is not None and stern is not None:
        data["length_m"] = bow + stern or None
    if port is not None and star is not None:
        data["beam_m"] = port + star or None


class AisParser(LineParser):
    """AIS ``VDM``/``VDO`` sentences, one per line, with multi-fragment reassembly."""

    name = "ais"

    def __init__(self) -> None:
        super().__init__()
        self._pending: OrderedDict[_GroupKey, _Pending] = OrderedDict()

    def parse_line(self, text: str, line: int) -> list[Item]:
        frame = _FRAME_RE.fullmatch(text)
        if frame is None:
            if text.rfind("*") < 0:
                return [Rejected("checksum", "checksum missing", line)]
            if not re.search(r"\*[0-9A-Fa-f]{2}\Z", text):
                return [Rejected("checksum", "checksum is not two hex digits at the end", line)]
            return [Rejected("malformed", "not an NMEA sentence", line)]
        body = frame.group(2)
        expected = int(frame.group(3), 16)
        actual = _checksum(body)
        if actual != expected:
            detail = f"checksum does not match: {expected:02X} != {actual:02X}"
            return [Rejected("checksum", detail, line)]
        head = _HEAD_RE.match(body)
        if head is None or body[5:6] != ",":
            return [Rejected("unsupported", f"sentence {body[:6]!r} is not VDM or VDO", line)]
        if frame.start(1) > 0:  # drop the tag block
            text = text[frame.start(1) :]
        try:
            sentence = AISSentence(text.encode("ascii"))
        except Exception as exc:  # pyais raises its own exceptions and ValueError
            return [Rejected("malformed", f"{type(exc).__name__}: {exc}", line)]
        if _PAYLOAD_RE.fullmatch(sentence.payload) is None:
            return [Rejected("malformed", "payload has characters outside the AIS armour", line)]
        if sentence.frag_cnt == 1:
            return [self._decode([sentence], [line])]
        return self._fragment(sentence, head.group(0), line)

    def finish(self) -> list[Item]:
        out: list[Item] = []
        for pending in self._pending.values():
            out.extend(self._drop(pending, "stream ended before the message was complete"))
        self._pending.clear()
        out.sort(key=lambda item: item.line or 0)
        return out

    # --- fragments ----------------------------------------------------------------------------

    def _fragment(self, sentence: AISSentence, head: str, line: int) -> list[Item]:
        key: _GroupKey = (head, sentence.channel, sentence.seq_id, sentence.frag_cnt)
        out: list[Item] = []
        pending = self._pending.get(key)
        if sentence.frag_num == 1:
            if pending is not None:
                out.extend(self._drop(pending, "a new message restarted its fragment group"))
                del self._pending[key]
            pending = _Pending([sentence], [line])
            self._pending[key] = pending
            while len(self._pending) > MAX_PENDING:
                _, oldest = self._pending.popitem(last=False)
                out.extend(self._drop(oldest, f"more than {MAX_PENDING} unfinished messages"))
            out.sort(key=lambda item: item.line or 0)
            return out
        if pending is None:
            return [
                Rejected(
                    "incomplete_fragment",
                    f"fragment {sentence.frag_num}/{sentence.frag_cnt} without its predecessors",
                    line,
                )
            ]
        if sentence.frag_num != len(pending.sentences) + 1:
            del self._pending[key]
            out.extend(self._drop(pending, "fragments out of order"))
            out.append(
                Rejected(
                    "incomplete_fragment",
                    f"fragment {sentence.frag_num}/{sentence.frag_cnt} out of order",
                    line,
                )
            )
            return out
        pending.sentences.append(sentence)
        pending.lines.append(line)
        if len(pending.sentences) < sentence.frag_cnt:
            return out
        del self._pending[key]
        item = self._decode(pending.sentences, pending.lines)
        if isinstance(item, Rejected):
            # A message refused as a whole is refused on each of its lines (every line counts).
            out.extend(Rejected(item.reason, item.detail, ln) for ln in pending.lines)
        else:
            out.append(item)
        return out

    @staticmethod
    def _drop(pending: _Pending, why: str) -> list[Item]:
        count = pending.sentences[0].frag_cnt
        return [
            Rejected("incomplete_fragment", f"fragment {s.frag_num}/{count}: {why}", ln)
            for s, ln in zip(pending.sentences, pending.lines, strict=True)
        ]

    # --- decoding -----------------------------------------------------------------------------

    def _decode(self, sentences: list[AISSentence], lines: list[int]) -> Item:
        line = lines[-1]
        last = sentences[-1]
        first = sentences[0]
        own = first.type == "VDO"
        talker = first.talker_id
        channel = first.channel
        try:
            message = last if len(sentences) == 1 else AISSentence.assemble_from_iterable(sentences)
            bits = len(message.payload) * 6 - last.fill_bits
            decoded = message.decode()
        except UnknownMessageException as exc:
            return Rejected("unsupported", f"message type not decoded: {exc}", line)
        except Exception as exc:  # pyais decoding errors on a damaged payload
            return Rejected("malformed", f"{type(exc).__name__}: {exc}", line)
        names = _FIELD_NAMES.get(decoded.__class__)
        if names is None:
            names = _FIELD_NAMES[decoded.__class__] = tuple(decoded.asdict())
        raw = {name: getattr(decoded, name) for name in names}
        msg_type = raw.get("msg_type")
        if not isinstance(msg_type, int) or not 1 <= msg_type <= 27:
            return Rejected("unsupported", f"message type {msg_type!r}", line)
        if bits < _MIN_BITS.get(msg_type, 38) or raw.get("mmsi") is None:
            return Rejected("malformed", f"type {msg_type} payload of only {bits} bits", line)
        data: dict[str, Any] = {
            "kind": "ais",
            "msg_type": msg_type,
            "mmsi": raw["mmsi"],
            "own": own,
            "talker": talker,
            "channel": channel or None,
            "fragments": len(sentences),
        }
        data.update(raw)
        for name, value in raw.items():
            if value.__class__ not in _PLAIN:
                data[name] = _jsonable(value)
        try:
            _position(data)
        except _OutOfRangeError as exc:
            return Rejected("out_of_range", f"type {msg_type}: {exc}", line)
        if msg_type in _POSITION_TYPES:
            _motion(data)
        if "status" in raw and msg_type in (1, 2, 3):
            data["nav_status"] = data.pop("status")
            data["nav_status_name"] = _enum_name(raw["status"])
        if msg_type in _STATIC_TYPES:
            _static(data, raw.get("ship_type"))
        return Accepted(str(msg_type), data, line)
