"""Shared hypothesis pieces for the stream-parser tests: random edits of a valid recording."""

from __future__ import annotations

from hypothesis import strategies as st

from borderwatch.sensors.base import Item, StreamParser

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
