"""Stream parsers: bytes from a device in, accepted messages and counted rejections out.

A parser never raises on bad input: every byte it is given ends up in an :class:`Accepted`
message or in a :class:`Rejected` record with a short ``reason`` (``checksum``, ``malformed``,
``incomplete_fragment``, ``out_of_range``, ``unsupported``) that health reports count. The same
parsers serve live drivers, recordings (``borderwatch parse``) and the simulator's devices.

Line-based formats (NMEA 0183, AIS, ASCII CO2 probes) derive from :class:`LineParser`: the base
class does the framing (``\\n`` or ``\\r\\n``, a length limit, undecodable bytes) and the line
numbers; a format implements :meth:`LineParser.parse_line` only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

#: Longest line a line-based device may send; NMEA 0183 allows 82 characters, AIS the same.
MAX_LINE_BYTES = 512


@dataclass(frozen=True, slots=True)
class Accepted:
    """A message that parsed and passed its checks.

    Attributes:
        key: what the summary counts it under: the NMEA sentence type (``"GGA"``), the AIS
            message type as a decimal string (``"1"``), or the format's name (``"gmp343"``).
        data: JSON-ready fields; ``data["kind"]`` is ``fix``, ``ais``, ``radar_target``,
            ``co2``, ``heading``, ``velocity``, ``dop`` or ``accuracy``.
        line: line (or frame) number in the stream, 1-based.
    """

    key: str
    data: dict[str, Any]
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """Input that was refused, and why (``reason`` is a counter key, ``detail`` for the log)."""

    reason: str
    detail: str = ""
    line: int | None = None


Item = Accepted | Rejected


class StreamParser(ABC):
    """Turns a byte stream, fed in chunks of any size, into accepted and rejected items."""

    #: Name of the format, as ``borderwatch parse --format`` spells it.
    name: str = ""

    @abstractmethod
    def feed(self, data: bytes) -> list[Item]:
        """Parse what ``data`` completes; keep any partial message for the next call."""

    @abstractmethod
    def close(self) -> list[Item]:
        """End of stream: whatever is still buffered is rejected (e.g. ``incomplete_fragment``)."""


def feed_all(parser: StreamParser, data: bytes) -> list[Item]:
    """Feed ``data`` to ``parser`` as one chunk, then close the stream; all items, in order."""
    items = parser.feed(data)
    items.extend(parser.close())
    return items


@dataclass(slots=True)
class _LineBuffer:
    pending: bytearray = field(default_factory=bytearray)
    line: int = 0
    overflowing: bool = False


class LineParser(StreamParser):
    """Framing for line-based formats; subclasses implement :meth:`parse_line`."""

    def __init__(self) -> None:
        self._buf = _LineBuffer()

    @abstractmethod
    def parse_line(self, text: str, line: int) -> list[Item]:
        """Parse one line (without its line ending, stripped of surrounding blanks)."""

    def finish(self) -> list[Item]:
        """Items still owed at the end of the stream (override, e.g. for fragments)."""
        return []

    def feed(self, data: bytes) -> list[Item]:
        out: list[Item] = []
        buf = self._buf
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                buf.pending += data[start:]
                if len(buf.pending) > MAX_LINE_BYTES:
                    # Drop the run-on bytes now (bounded memory), reject the line at its end.
                    buf.pending.clear()
                    buf.overflowing = True
                return out
            buf.pending += data[start:end]
            out.extend(self._complete_line())
            start = end + 1

    def close(self) -> list[Item]:
        out: list[Item] = []
        if self._buf.pending or self._buf.overflowing:
            out.extend(self._complete_line())
        out.extend(self.finish())
        return out

    def _complete_line(self) -> list[Item]:
        buf = self._buf
        buf.line += 1
        raw = bytes(buf.pending)
        buf.pending.clear()
        if buf.overflowing or len(raw) > MAX_LINE_BYTES:
            buf.overflowing = False
            return [Rejected("malformed", f"line longer than {MAX_LINE_BYTES} bytes", buf.line)]
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            return [Rejected("malformed", "bytes that are not ASCII", buf.line)]
        if not text:
            return []
        return self.parse_line(text, buf.line)
