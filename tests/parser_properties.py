"""Shared hypothesis pieces for the stream-parser tests: random edits of a valid recording."""

from __future__ import annotations

from hypothesis import strategies as st

from borderwatch.sensors.base import MAX_LINE_BYTES, Item, StreamParser

#: Up to six (position, byte) overwrites; positions wrap around the stream's length.
EDITS = st.lists(
    st.tuples(st.integers(min_value=0, max_value=10_000), st.integers(0, 255)),
    min_size=1,
    max_size=6,
)


def corrupted(stream: bytes, edits: list[tuple[int, int]]) -> bytes:
    """``stream`` with each ``(position, value)`` edit applied."""
    data = bytearray(stream)
    for pos, value in edits:
        data[pos % len(data)] = value
    return bytes(data)


def feed_in_chunks(parser: StreamParser, data: bytes, cuts: list[int]) -> list[Item]:
    """Everything ``parser`` makes of ``data`` fed in pieces split at ``cuts``, then closed."""
    items: list[Item] = []
    start = 0
    for cut in sorted(set(cuts)):
        items.extend(parser.feed(data[start:cut]))
        start = cut
    items.extend(parser.feed(data[start:]))
    items.extend(parser.close())
    return items


def framed_lines(data: bytes) -> int:
    """Lines a :class:`LineParser`'s framing hands on or rejects: the non-blank ones, plus
    overlong or undecodable ones (each of which must end up in exactly one item)."""
    count = 0
    for piece in data.split(b"\n"):
        if len(piece) > MAX_LINE_BYTES:
            count += 1
            continue
        try:
            text = piece.decode("ascii")
        except UnicodeDecodeError:
            count += 1
            continue
        count += bool(text.strip())
    return count
