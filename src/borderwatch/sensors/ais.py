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
import functools
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from pyais.constants import ShipType
from pyais.exceptions import UnknownMessageException
from pyais.messages import AISSentence
from pyais.util import checksum

from borderwatch.sensors.base import Accepted, Item, LineParser, Rejected

__all__ = ["MAX_PENDING", "AisParser"]

#: Unfinished multi-fragment messages kept at most; the oldest is dropped beyond this.
MAX_PENDING = 32

KNOT_MPS = 1852.0 / 3600.0

#: ``!`` (or ``$``), optional tag block before it, the sentence (group 2; group 3 its talker
#: and type when it is a VDM/VDO sentence), ``*`` and two hex digits (group 4).
_FRAME_RE = re.compile(
    r"(?:\\[^\\]*\\)?([!$])((?:([A-Z][A-Z0-9]VD[MO]),)?[^!$*\\]*)\*([0-9A-Fa-f]{2})"
)
#: Characters of the six-bit payload armour.
_PAYLOAD_RE = re.compile(rb"[0-W`-w]*")
#: Value types that are JSON as they are (pyais also gives enums and bytes).
_PLAIN = frozenset((int, float, str, bool, type(None)))

#: Shortest payload, in bits, of the message types whose fields this module reads.
_MIN_BITS = {1: 168, 2: 168, 3: 168, 5: 420, 18: 168, 19: 312, 24: 160}
_POSITION_TYPES = frozenset((1, 2, 3, 18, 19))
_STATIC_TYPES = frozenset((5, 19, 24))

_GroupKey = tuple[str, str, int | None, int]

#: Acknowledgement messages: up to four destination MMSIs of 30 bits (+ 2 sequence bits).
_ACK_TYPES = frozenset((7, 13))
#: Accepted items' keys, the message type as a decimal string.
_TYPE_KEYS = tuple(str(t) for t in range(28))


@dataclass(frozen=True, slots=True)
class _ClassPlan:
    """What :meth:`AisParser._decode` reads from one pyais message class, worked out once.

    ``names`` are the non-spare fields (what pyais's ``asdict()`` gives), ``values`` reads them
    all in one call, ``convert`` are those that may hold an enum or bytes (fields with a
    converter, binary fields; the others are always int, float, bool, str or None), and
    ``position`` says whether the message has ``lat``/``lon``, ``class_a`` whether it is a
    class A position report with the fields :func:`_class_a_report` reads (checked against the
    class, so that another pyais version falls back to the generic path).
    """

    names: tuple[str, ...]
    values: Callable[[Any], tuple[Any, ...]]
    convert: tuple[str, ...]
    position: bool
    class_a: bool


_PLANS: dict[type, _ClassPlan] = {}
#: pyais's non-spare fields of the class A position reports (types 1, 2, 3).
_CLASS_A_FIELDS = (
    "msg_type", "repeat", "mmsi", "status", "turn", "speed", "accuracy", "lon", "lat", "course",
    "heading", "second", "maneuver", "raim", "radio",
)  # fmt: skip


def _may_be_enum_or_bytes(spec: Any) -> bool:
    """Whether a pyais field can hold a value that is not JSON as it is.

    Enumerations come only from a field's converters (``NavigationStatus``,
    ``ShipType.from_value``, and ``to_turn``, which gives ``TurnRate`` for the not-available
    values), bytes only from binary fields; plain int, float, bool and str fields without a
    converter need no check.
    """
    if spec is None:  # not an attrs field: check it every time
        return True
    meta = spec.metadata
    return (
        meta.get("d_type") not in (int, float, bool, str)
        or spec.converter is not None
        or meta.get("to_converter") is not None
    )


def _plan(decoded: Any) -> _ClassPlan:
    names = tuple(decoded.asdict())
    fields = decoded.field_dict()  # pyais's attrs fields by name
    getter = attrgetter(*names)
    values = getter if len(names) > 1 else lambda obj: (getter(obj),)
    convert = tuple(name for name in names if _may_be_enum_or_bytes(fields.get(name)))
    position = "lat" in names or "lon" in names
    return _ClassPlan(names, values, convert, position, names == _CLASS_A_FIELDS)


@dataclass(slots=True)
class _Pending:
    sentences: list[AISSentence] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value._value_  # the member's value, without the ``value`` property's overhead
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return value


def _enum_name(value: Any) -> str | None:
    return value._name_ if isinstance(value, enum.Enum) else None


class _OutOfRangeError(ValueError):
    pass


def _lat_lon(lat: float | None, lon: float | None) -> tuple[float | None, float | None]:
    """Null the not-available sentinels (lat 91, lon 181); out of range otherwise.

    pyais already gives the coordinates rounded to its resolution (1e-6 degrees or coarser).
    """
    if lat is not None:
        if lat == 91.0:
            lat = None
        elif not -90.0 <= lat <= 90.0:
            raise _OutOfRangeError(f"lat {lat} is beyond 90 degrees")
    if lon is not None:
        if lon == 181.0:
            lon = None
        elif not -180.0 <= lon <= 180.0:
            raise _OutOfRangeError(f"lon {lon} is beyond 180 degrees")
    return lat, lon


def _position(data: dict[str, Any]) -> None:
    lat, lon = _lat_lon(data.get("lat"), data.get("lon"))
    if "lat" in data:
        data["lat"] = lat
    if "lon" in data:
        data["lon"] = lon


@functools.lru_cache(maxsize=2048)
def _knots_to_mps(knots: float) -> float:
    # Cached: reports give speed in steps of 0.1 kn, and round() to 3 digits is slow.
    return round(knots * KNOT_MPS, 3)


_Kinematics = tuple[float | None, float | None, float | None, int | None, int | None]


def _kinematics(
    speed: float | None, course: float | None, heading: int | None, second: int | None
) -> _Kinematics:
    """Speed, course, heading and time stamp of a position report, not-available values nulled.

    Returns ``(sog_knots, speed_mps, cog_deg, heading_deg, second)``: speed over ground in
    knots (102.3 means not available) and in m/s, course over ground in degrees from true north
    (360: not available), true heading in whole degrees (511: not available), and the UTC
    second of the report (60-63: not available, manual, dead reckoning, inoperative).
    """
    sog = None if speed is None or speed >= 102.3 else speed
    return (
        sog,
        None if sog is None else _knots_to_mps(sog),
        None if course is None or course >= 360.0 else course,
        None if heading is None or heading >= 360 else heading,
        None if second is not None and second >= 60 else second,
    )


def _motion(data: dict[str, Any]) -> None:
    """Speed, course and heading of the position reports, with their not-available values."""
    sog, mps, cog, heading, second = _kinematics(
        data.pop("speed", None), data.pop("course", None), data.pop("heading", None),
        data.get("second"),
    )  # fmt: skip
    data["sog_knots"] = sog
    data["speed_mps"] = mps
    data["cog_deg"] = cog
    data["heading_deg"] = heading
    if "second" in data:
        data["second"] = second


def _class_a_report(report: Any, first: AISSentence, fragments: int) -> dict[str, Any]:
    """The item of a class A position report (types 1-3), the bulk of AIS traffic.

    The same fields and conversions as the generic path (:meth:`AisParser._decode`,
    :func:`_jsonable`, :func:`_position`, :func:`_motion`), read straight from pyais's message:
    one dict built at once instead of copied and edited field by field.
    """
    lat, lon = _lat_lon(report.lat, report.lon)
    sog, mps, cog, heading, second = _kinematics(
        report.speed, report.course, report.heading, report.second
    )
    status, turn, maneuver = report.status, report.turn, report.maneuver
    return {
        "kind": "ais",
        "msg_type": report.msg_type,
        "mmsi": report.mmsi,
        "own": first.type == "VDO",
        "talker": first.talker_id,
        "channel": first.channel or None,
        "fragments": fragments,
        "repeat": report.repeat,
        # pyais gives enumerations for these (turn: for its not-available values only).
        "nav_status": status if status.__class__ in _PLAIN else _jsonable(status),
        "nav_status_name": _enum_name(status),
        "turn": turn if turn.__class__ in _PLAIN else _jsonable(turn),
        "accuracy": report.accuracy,
        "lat": lat,
        "lon": lon,
        "sog_knots": sog,
        "speed_mps": mps,
        "cog_deg": cog,
        "heading_deg": heading,
        "second": second,
        "maneuver": maneuver if maneuver.__class__ in _PLAIN else _jsonable(maneuver),
        "raim": report.raim,
        "radio": report.radio,
    }


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


def _acknowledged(data: dict[str, Any], bits: int) -> None:
    """Null the destination MMSIs that the payload cuts short (pyais reads the bits there are).

    A type 7/13 message holds 40 header bits and then 32 bits per destination (30-bit MMSI,
    2-bit sequence number); a payload that ends inside an MMSI does not name that station.
    """
    for k in range(1, 5):
        if bits < 40 + 32 * (k - 1) + 30 and data.get(f"mmsi{k}") is not None:
            data[f"mmsi{k}"] = None
            data[f"mmsiseq{k}"] = None


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
        raw = text.encode("ascii")  # the line framing has checked that it is ASCII
        expected = int(frame.group(4), 16)
        actual = checksum(raw[frame.start(2) : frame.end(2)])
        if actual != expected:
            detail = f"checksum does not match: {expected:02X} != {actual:02X}"
            return [Rejected("checksum", detail, line)]
        head = frame.group(3)
        if head is None:
            body = frame.group(2)
            return [Rejected("unsupported", f"sentence {body[:6]!r} is not VDM or VDO", line)]
        start = frame.start(1)
        try:
            # From the sentence's ``!``/``$`` on: the tag block, if any, is left out.
            sentence = AISSentence(raw[start:] if start else raw)
        except Exception as exc:  # pyais raises its own exceptions and ValueError
            return [Rejected("malformed", f"{type(exc).__name__}: {exc}", line)]
        if _PAYLOAD_RE.fullmatch(sentence.payload) is None:
            return [Rejected("malformed", "payload has characters outside the AIS armour", line)]
        if sentence.frag_cnt == 1:
            return [self._decode([sentence], [line])]
        return self._fragment(sentence, head, line)

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
        try:
            message = last if len(sentences) == 1 else AISSentence.assemble_from_iterable(sentences)
            bits = len(message.payload) * 6 - last.fill_bits
            decoded = message.decode()
        except UnknownMessageException as exc:
            return Rejected("unsupported", f"message type not decoded: {exc}", line)
        except Exception as exc:  # pyais decoding errors on a damaged payload
            return Rejected("malformed", f"{type(exc).__name__}: {exc}", line)
        plan = _PLANS.get(decoded.__class__)
        if plan is None:
            plan = _PLANS[decoded.__class__] = _plan(decoded)
        msg_type = decoded.msg_type
        if msg_type.__class__ is not int or not 1 <= msg_type <= 27:
            return Rejected("unsupported", f"message type {msg_type!r}", line)
        mmsi = decoded.mmsi
        if bits < _MIN_BITS.get(msg_type, 38) or mmsi is None:
            return Rejected("malformed", f"type {msg_type} payload of only {bits} bits", line)
        if plan.class_a:
            try:
                data = _class_a_report(decoded, first, len(sentences))
            except _OutOfRangeError as exc:
                return Rejected("out_of_range", f"type {msg_type}: {exc}", line)
            return Accepted(_TYPE_KEYS[msg_type], data, line)
        channel = first.channel
        data = {
            "kind": "ais",
            "msg_type": msg_type,
            "mmsi": mmsi,
            "own": first.type == "VDO",
            "talker": first.talker_id,
            "channel": channel or None,
            "fragments": len(sentences),
        }
        data.update(zip(plan.names, plan.values(decoded)))  # noqa: B905 (same length)
        for name in plan.convert:
            value = data[name]
            if value.__class__ not in _PLAIN:
                data[name] = _jsonable(value)
        if plan.position:
            try:
                _position(data)
            except _OutOfRangeError as exc:
                return Rejected("out_of_range", f"type {msg_type}: {exc}", line)
        if msg_type in _POSITION_TYPES:
            _motion(data)
        if msg_type <= 3 and "status" in data:
            data["nav_status"] = data.pop("status")
            data["nav_status_name"] = _enum_name(getattr(decoded, "status", None))
        if msg_type in _STATIC_TYPES:
            _static(data, getattr(decoded, "ship_type", None))
        elif msg_type in _ACK_TYPES:
            _acknowledged(data, bits)
        return Accepted(_TYPE_KEYS[msg_type], data, line)
