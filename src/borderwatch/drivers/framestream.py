"""The raw frame stream: whole camera frames over a byte stream (TCP), with a checked header.

Thermal cores (FLIR Boson/Lepton and the like) deliver raw 16-bit frames (Y16) over USB or a
parallel interface; a small computer next to the core serves them to the node over TCP. Each frame
is a 32-byte header followed by its pixels, all little-endian::

    offset  size  field
     0      4     magic b"BWF1"
     4      2     width, pixels (uint16)
     6      2     height, pixels (uint16)
     8      1     pixel format: 1 = Y8 (uint8 gray), 2 = Y16 (uint16 counts)
     9      3     reserved, zero
    12      4     sequence number (uint32; wraps)
    16      8     capture time, Unix seconds (float64; 0 when unknown)
    24      4     payload length, bytes (uint32) = width · height · bytes per pixel
    28      4     CRC-32 of the payload (zlib.crc32)
    32      ...   payload: rows top to bottom, pixels left to right

:class:`FrameStreamDecoder` takes the stream in chunks of any size and returns whole frames and
counted rejections, never raising: bytes that are not a header are skipped up to the next magic
(``malformed``, one rejection per skipped run), a payload whose CRC does not match is
``corrupt``, a frame cut off by the end of the stream is ``truncated``. Memory stays bounded: at
most one frame of :data:`MAX_PAYLOAD_BYTES` is held. :func:`encode_frame` is the sender's side
(the simulator's stream server uses it).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from borderwatch.sensors.base import Rejected

MAGIC = b"BWF1"
HEADER = struct.Struct("<4sHHB3xIdII")
HEADER_BYTES = HEADER.size
#: Pixel format codes and their numpy types.
PIXEL_FORMATS: dict[int, np.dtype[np.uint8] | np.dtype[np.uint16]] = {
    1: np.dtype("<u1"),
    2: np.dtype("<u2"),
}
FORMAT_CODES = {"y8": 1, "y16": 2}
#: Largest frame accepted, bytes (4096 × 4096 × 2).
MAX_PAYLOAD_BYTES = 4096 * 4096 * 2

#: A camera frame: 2-D uint8 (Y8) or uint16 (Y16) pixels, rows top to bottom.
Image = NDArray[np.uint8] | NDArray[np.uint16]


@dataclass(frozen=True, slots=True, eq=False)
class RawFrame:
    """One frame as a source delivered it.

    Attributes:
        image: the pixels, shape ``(height, width)``, uint8 or uint16.
        seq: the source's frame number (the stream's sequence number, the file's frame index).
        t_capture: capture time sent with the frame, Unix seconds; None when unknown.
    """

    image: Image
    seq: int
    t_capture: float | None = None


FrameItem = RawFrame | Rejected


def encode_frame(image: Image, seq: int, t_capture: float | None = None) -> bytes:
    """One frame in the stream's framing (header and payload)."""
    if image.ndim != 2:
        raise ValueError(f"a frame is 2-D (gray), not shape {image.shape}")
    code = {np.dtype("uint8"): 1, np.dtype("uint16"): 2}.get(image.dtype)
    if code is None:
        raise ValueError(f"a frame is uint8 or uint16, not {image.dtype}")
    payload = np.ascontiguousarray(image, dtype=PIXEL_FORMATS[code]).tobytes()
    height, width = image.shape
    header = HEADER.pack(
        MAGIC,
        width,
        height,
        code,
        seq & 0xFFFFFFFF,
        0.0 if t_capture is None else float(t_capture),
        len(payload),
        zlib.crc32(payload),
    )
    return header + payload


class FrameStreamDecoder:
    """Whole frames out of a byte stream fed in chunks. See the module docstring."""

    def __init__(self, max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> None:
        self._buf = bytearray()
        self._max_payload = max_payload_bytes
        self._skipped = 0  # bytes skipped in the current run of garbage
        self.frames = 0

    def feed(self, data: bytes) -> list[FrameItem]:
        """The frames and rejections that ``data`` completes."""
        self._buf += data
        out: list[FrameItem] = []
        while True:
            item = self._next()
            if item is None:
                return out
            out.append(item)

    def close(self) -> list[FrameItem]:
        """End of stream: a frame cut off, and garbage at the end, are rejections."""
        out: list[FrameItem] = []
        if len(self._buf) >= len(MAGIC) and self._buf.startswith(MAGIC):
            out.append(Rejected("truncated", f"stream ended {len(self._buf)} bytes into a frame"))
        elif self._buf:
            self._skipped += len(self._buf)
        self._buf.clear()
        if self._skipped:
            out.append(self._garbage())
        return out

    def _garbage(self) -> Rejected:
        skipped, self._skipped = self._skipped, 0
        return Rejected("malformed", f"{skipped} bytes skipped that are no frame header")

    def _next(self) -> FrameItem | None:
        buf = self._buf
        start = buf.find(MAGIC)
        if start != 0:
            # Keep a tail that may be the start of a magic split across chunks.
            drop = start if start > 0 else max(0, len(buf) - (len(MAGIC) - 1))
            if drop:
                del buf[:drop]
                self._skipped += drop
            if start < 0:
                return None
        if len(buf) < HEADER_BYTES:
            return None
        _magic, width, height, code, seq, t_capture, length, crc = HEADER.unpack_from(buf)
        dtype = PIXEL_FORMATS.get(code)
        if (
            dtype is None
            or width == 0
            or height == 0
            or length != width * height * dtype.itemsize
            or length > self._max_payload
        ):
            # Not a header after all (or one we cannot take): skip the magic, look further.
            del buf[: len(MAGIC)]
            self._skipped += len(MAGIC)
            return None
        if self._skipped:
            return self._garbage()
        end = HEADER_BYTES + length
        if len(buf) < end:
            return None
        with memoryview(buf) as view:
            payload = bytes(view[HEADER_BYTES:end])
        del buf[:end]
        if zlib.crc32(payload) != crc:
            return Rejected("corrupt", f"frame {seq}: payload CRC mismatch")
        self.frames += 1
        image: Image = np.frombuffer(payload, dtype=dtype).reshape(height, width)  # type: ignore[assignment]
        return RawFrame(image, seq, t_capture if t_capture > 0.0 else None)
