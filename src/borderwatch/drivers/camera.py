"""Camera frame sources and the camera driver: whole frames in, checked frames out.

A camera device (``thermal_camera``, ``nightvision_camera``) names its source in ``url``
(:func:`borderwatch.config.devices.parse_camera_url`):

``tcp``
    the raw frame stream (:mod:`borderwatch.drivers.framestream`), read with asyncio;
``capture``, ``v4l2``, ``video``
    OpenCV ``VideoCapture`` (RTSP/HTTP through FFmpeg, V4L2 devices, video files);
``raw``
    raw little-endian 16-bit frames back to back in a file (``.y16``, ``.raw``);
``images``
    still 8- or 16-bit images (PNG, TIFF, PGM) in name order.

``VideoCapture`` and file reads block, so those sources read in a thread of their own and hand
frames to the event loop through a bounded queue (:data:`SOURCE_QUEUE_FRAMES`); a frame that
does not fit is dropped and counted. Files are played at the configured rate and end like a
stream that closes: the driver reopens them after its backoff (a rotated file is read anew).

:class:`CameraDriver` is a :class:`~borderwatch.drivers.base.Driver`: reconnect with capped,
jittered backoff, rate-limited logs and :class:`~borderwatch.drivers.base.SensorHealth` come
from the base. Each frame is checked (:func:`check_frame`: size, pixel type, black, saturated,
flat) and rejected under its reason, or handed on as a :class:`Reading` whose item data is
``{"kind": "frame", "image": ndarray, "seq", "t_capture", "ticket"}``. Detection is CPU-heavy,
so the driver hands on at most ``max_frames_in_flight`` frames that the next stage has not
finished (:class:`FrameCredits`); a frame arriving when all are taken is dropped and counted
(``frames_dropped``) before it is queued anywhere. The next stage returns each frame's
:class:`FrameTicket` with what became of it, which health counts too (``no_position``,
``detect_error``, ``bad_calibration`` ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Self

import numpy as np

from borderwatch.config.devices import (
    IMAGE_SUFFIXES,
    AnyCamera,
    DeviceUrl,
)
from borderwatch.drivers.base import Driver, SensorHealth
from borderwatch.drivers.framestream import FrameItem, FrameStreamDecoder, Image, RawFrame
from borderwatch.drivers.transport import (
    Transport,
    TransportError,
    TransportSettings,
    read_stream,
)
from borderwatch.sensors.base import Accepted, Item, Rejected

log = logging.getLogger(__name__)

#: Frames a threaded source holds for the event loop; more are dropped (``frames_dropped``).
SOURCE_QUEUE_FRAMES = 2
#: Bytes asked of a frame stream at a time (a 640×512 Y16 frame is 655,392 bytes with header).
STREAM_READ_BYTES = 1 << 20
#: Pace of files without a rate of their own, frames/s.
DEFAULT_FILE_FPS = 30.0
#: A frame handed on and not returned within this time frees its credit (``frames_lost``), s.
FRAME_TIMEOUT_S = 10.0
#: Outcomes of the next stage that mean the camera cannot work at all (status ``fault``).
FATAL_OUTCOMES = frozenset({"bad_calibration", "no_detector"})
#: Outcome key of a frame that went through the next stage.
DONE = "done"


# ------------------------------------------------------------------------------- flow control


class FrameTicket:
    """A frame's claim on one of its camera's credits; :meth:`done` returns it (once)."""

    __slots__ = ("_credits", "_done", "taken_at")

    def __init__(self, credits: FrameCredits, taken_at: float) -> None:
        self._credits = credits
        self._done = False
        self.taken_at = taken_at

    def done(self, outcome: str | None = None, detail: str = "") -> None:
        """The frame is finished with: ``outcome`` None when it went through, else the reason it
        gave nothing (a health counter key), with ``detail`` for the health line. Thread-safe;
        calls after the first are ignored."""
        self._credits.release(self, outcome, detail)


class FrameCredits:
    """At most ``limit`` frames of one camera handed on and not yet done with.

    Thread-safe: the driver takes tickets on the event loop, the detection stage returns them
    from its worker thread. A ticket not returned within ``timeout_s`` (a frame lost on the
    way) frees its credit and is counted as ``frames_lost``.
    """

    def __init__(
        self,
        limit: int,
        timeout_s: float = FRAME_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.timeout_s = timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._out: list[FrameTicket] = []
        self._outcomes: Counter[str] = Counter()
        self._last_detail: dict[str, str] = {}

    def take(self) -> FrameTicket | None:
        """A ticket for a new frame, or None when ``limit`` frames are out."""
        now = self._clock()
        with self._lock:
            lost = [t for t in self._out if now - t.taken_at > self.timeout_s]
            for ticket in lost:
                ticket._done = True
                self._out.remove(ticket)
                self._outcomes["frames_lost"] += 1
            if len(self._out) >= self.limit:
                return None
            ticket = FrameTicket(self, now)
            self._out.append(ticket)
            return ticket

    def release(self, ticket: FrameTicket, outcome: str | None, detail: str) -> None:
        """Return ``ticket`` (see :meth:`FrameTicket.done`)."""
        with self._lock:
            if ticket._done:
                return
            ticket._done = True
            self._out.remove(ticket)
            self._outcomes[DONE if outcome is None else outcome] += 1
            if outcome is not None:
                self._last_detail[outcome] = detail

    @property
    def in_flight(self) -> int:
        """Frames out now."""
        with self._lock:
            return len(self._out)

    def take_outcomes(self) -> tuple[Counter[str], dict[str, str]]:
        """Outcomes (reason → count; :data:`DONE` for frames that went through) returned since
        the last call, and each reason's last detail."""
        with self._lock:
            outcomes, self._outcomes = self._outcomes, Counter()
            details, self._last_detail = self._last_detail, {}
        return outcomes, details


# ------------------------------------------------------------------------------- frame checks


def check_frame(image: Image, width: int, height: int, pixel_format: str) -> Rejected | None:
    """Why a frame cannot be used, or None when it can.

    Reasons: ``wrong_size`` (not ``width``×``height``), ``wrong_format`` (not the configured
    pixel type), and what :func:`borderwatch.sensors.camera.detect.check_frame` refuses for
    every detector: ``black`` (no signal: lens cap, dead sensor), ``saturated`` (the sun, a
    fire filling the view), ``flat`` (one value everywhere: a shutter closed for calibration).
    """
    from borderwatch.sensors.camera.detect import FrameError
    from borderwatch.sensors.camera.detect import check_frame as detector_check

    if image.ndim != 2 or image.shape != (height, width):
        shape = "×".join(str(n) for n in image.shape[::-1])
        return Rejected("wrong_size", f"frame of {shape} pixels, expected {width}×{height}")
    expected = np.uint16 if pixel_format == "y16" else np.uint8
    if image.dtype != expected:
        return Rejected("wrong_format", f"{image.dtype} pixels, expected {pixel_format}")
    try:
        detector_check(image)
    except FrameError as exc:
        return Rejected(exc.key, exc.reason)
    return None


def to_gray(image: np.ndarray[Any, Any], pixel_format: str, width: int, height: int) -> Image:
    """A captured picture as a 2-D gray frame: colour is converted (BT.601 luma), a packed
    16-bit buffer of ``width``×``height`` pixels (V4L2 Y16 with RGB conversion off) is viewed
    as uint16."""
    import cv2

    if pixel_format == "y16" and image.dtype == np.uint8 and image.size == width * height * 2:
        packed = np.ascontiguousarray(image).reshape(-1)
        return packed.view("<u2").reshape(height, width)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)  # type: ignore[return-value]
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)  # type: ignore[return-value]
    return image  # 2-D already (or a shape check_frame rejects)


# ------------------------------------------------------------------------------- frame sources


class FrameSource(Transport):
    """An open camera. Frames are read whole with :meth:`read_frames`; byte reads and writes
    do not apply (a camera is receive-only)."""

    message_oriented = True

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.bytes_in = 0

    @classmethod
    async def open(cls, endpoint: DeviceUrl, settings: TransportSettings) -> Self:
        raise TransportError("open_failed", f"{endpoint.url}: open cameras with open_frame_source")

    async def read(self) -> bytes:
        raise TransportError("disconnected", f"{self.url}: a camera is read with read_frames")

    async def write(self, data: bytes) -> None:
        raise TransportError("write_failed", f"{self.url}: a camera is receive-only")

    async def read_frames(self) -> list[FrameItem]:
        """The next frames and rejections (at least one item); :class:`TransportError`
        ``disconnected`` when the stream is lost or the file ends."""
        raise NotImplementedError

    def finish(self) -> list[FrameItem]:
        """What is owed at the end of the connection (a frame cut off)."""
        return []


class StreamFrameSource(FrameSource):
    """The raw frame stream over TCP (:mod:`borderwatch.drivers.framestream`)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, url: str):
        super().__init__(url)
        self._reader = reader
        self._writer = writer
        self._decoder = FrameStreamDecoder()

    @classmethod
    async def connect(cls, endpoint: DeviceUrl, timeout_s: float) -> Self:
        """Connect to the stream's server; :class:`TransportError` ``open_failed``."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(endpoint.host, endpoint.port, limit=STREAM_READ_BYTES),
                timeout_s,
            )
        except (OSError, TimeoutError) as exc:
            raise TransportError("open_failed", f"{endpoint.url}: {exc or 'timed out'}") from exc
        return cls(reader, writer, endpoint.url)

    async def read_frames(self) -> list[FrameItem]:
        while True:
            data = await read_stream(self._reader, STREAM_READ_BYTES, self.url)
            self.bytes_in += len(data)
            items = self._decoder.feed(data)
            if items:
                return items

    def finish(self) -> list[FrameItem]:
        return self._decoder.close()

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


#: Opens a blocking source (in a worker thread) and returns its frames one by one; raises
#: :class:`TransportError` ``open_failed`` when it cannot open.
Opener = Callable[[], Iterator[FrameItem]]


class ThreadedFrameSource(FrameSource):
    """A blocking source read in a thread of its own; frames reach the event loop through a
    bounded queue (full: the frame is dropped and counted in :attr:`dropped`).

    Args:
        url: the source, for messages.
        frames: the source's frames, from a generator run in the reader thread.
        fps: pace of a file, frames/s; None reads as fast as the source delivers (live).
    """

    def __init__(self, url: str, frames: Iterator[FrameItem], fps: float | None) -> None:
        super().__init__(url)
        self._frames = frames
        self._period = None if fps is None else 1.0 / fps
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[FrameItem | None] = asyncio.Queue(SOURCE_QUEUE_FRAMES)
        self._end: TransportError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera {url}", daemon=True)

    @classmethod
    async def start(cls, url: str, opener: Opener, fps: float | None, timeout_s: float) -> Self:
        """Open the source in a worker thread (VideoCapture blocks while it connects), then
        start reading it; :class:`TransportError` ``open_failed``."""
        try:
            frames = await asyncio.wait_for(asyncio.to_thread(opener), timeout_s)
        except TimeoutError as exc:
            raise TransportError("open_failed", f"{url}: timed out opening") from exc
        self = cls(url, frames, fps)
        self._thread.start()
        return self

    def _run(self) -> None:
        end = TransportError("disconnected", f"{self.url}: end of stream")
        next_at = time.monotonic()
        try:
            for item in self._frames:
                if self._period is not None:
                    next_at += self._period
                    if self._stop.wait(max(0.0, next_at - time.monotonic())):
                        break
                elif self._stop.is_set():
                    break
                self._deliver(item)
        except TransportError as exc:
            end = exc
        except Exception as exc:  # a library error ends this connection, not the driver
            end = TransportError("disconnected", f"{self.url}: {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(Exception):
                close = getattr(self._frames, "close", None)
                if close is not None:
                    close()
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is reading
            self._loop.call_soon_threadsafe(self._ended, end)

    def _deliver(self, item: FrameItem) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._offer, item)

    def _offer(self, item: FrameItem) -> None:
        if isinstance(item, RawFrame):
            self.bytes_in += item.image.nbytes
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1

    def _ended(self, end: TransportError) -> None:
        self._end = end
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)  # wakes a waiting reader; a full queue has no waiter

    async def read_frames(self) -> list[FrameItem]:
        if self._queue.empty() and self._end is not None:
            raise self._end
        item = await self._queue.get()
        if item is None:
            assert self._end is not None
            raise self._end
        return [item]

    async def aclose(self) -> None:
        # The thread ends after its current read (VideoCapture cannot be interrupted) and
        # releases the source itself; nothing waits for it.
        self._stop.set()


def _capture_opener(config: AnyCamera, endpoint: DeviceUrl) -> tuple[Opener, float | None]:
    """VideoCapture for RTSP/HTTP streams, V4L2 devices and video files."""
    pixel_format = config.pixel_format
    live = endpoint.scheme in ("capture", "v4l2")

    def opener() -> Iterator[FrameItem]:
        import cv2

        timeouts = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(config.stale_after_s * 2000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(config.stale_after_s * 2000),
        ]
        if endpoint.scheme == "v4l2":
            cap = cv2.VideoCapture(endpoint.url, cv2.CAP_V4L2)
            if pixel_format == "y16" and cap.isOpened():
                # UVC thermal cores deliver Y16 unconverted only when asked to.
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc("Y", "1", "6", " "))
                cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
        elif endpoint.scheme == "video" and not Path(endpoint.url).is_file():
            raise TransportError("open_failed", f"{endpoint.url}: no such file")
        else:
            cap = cv2.VideoCapture(endpoint.url, cv2.CAP_FFMPEG, timeouts)
        if not cap.isOpened():
            cap.release()
            raise TransportError("open_failed", f"{endpoint.url}: VideoCapture could not open it")
        return _capture_frames(cap, pixel_format, config.width, config.height)

    fps = None if live else config.fps or _video_fps(endpoint.url)
    return opener, fps


def _video_fps(path: str) -> float:
    import cv2

    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS)) if cap.isOpened() else 0.0
    finally:
        cap.release()
    return fps if 0.0 < fps <= 1000.0 else DEFAULT_FILE_FPS


def _capture_frames(cap: Any, pixel_format: str, width: int, height: int) -> Iterator[FrameItem]:
    try:
        seq = 0
        while True:
            ok, image = cap.read()
            if not ok or image is None:
                return
            yield RawFrame(to_gray(image, pixel_format, width, height), seq)
            seq += 1
    finally:
        cap.release()


def _raw_opener(config: AnyCamera, path: str) -> Opener:
    frame_bytes = config.width * config.height * 2

    def opener() -> Iterator[FrameItem]:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the generator
        except OSError as exc:
            raise TransportError("open_failed", f"{path}: {exc}") from exc
        return _raw_frames(handle, frame_bytes, config.width, config.height)

    return opener


def _raw_frames(handle: Any, frame_bytes: int, width: int, height: int) -> Iterator[FrameItem]:
    with handle:
        seq = 0
        while True:
            data = handle.read(frame_bytes)
            if len(data) < frame_bytes:
                if data:
                    yield Rejected("truncated", f"{len(data)} bytes at the end of the file")
                return
            yield RawFrame(np.frombuffer(data, dtype="<u2").reshape(height, width), seq)
            seq += 1


def _image_paths(pattern: str) -> list[str]:
    if os.path.isdir(pattern):
        names = sorted(os.listdir(pattern))
        return [os.path.join(pattern, n) for n in names if n.lower().endswith(IMAGE_SUFFIXES)]
    return sorted(glob.glob(pattern))


def _images_opener(config: AnyCamera, pattern: str) -> Opener:
    def opener() -> Iterator[FrameItem]:
        paths = _image_paths(pattern)
        if not paths:
            raise TransportError("open_failed", f"{pattern}: no images")
        return _image_frames(paths, config.pixel_format, config.width, config.height)

    return opener


def _image_frames(
    paths: list[str], pixel_format: str, width: int, height: int
) -> Iterator[FrameItem]:
    import cv2

    for seq, path in enumerate(paths):
        image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if image is None:
            yield Rejected("corrupt", f"{path}: not a readable image")
            continue
        yield RawFrame(to_gray(image, pixel_format, width, height), seq)


@contextlib.asynccontextmanager
async def open_frame_source(
    config: AnyCamera, timeout_s: float = 10.0
) -> AsyncIterator[FrameSource]:
    """``async with open_frame_source(config) as source:`` opens the camera's source and closes
    it on every path; :class:`TransportError` ``open_failed`` when it cannot open."""
    endpoint = config.endpoint
    source: FrameSource
    file_fps = config.fps or DEFAULT_FILE_FPS
    if endpoint.scheme == "tcp":
        source = await StreamFrameSource.connect(endpoint, timeout_s)
    elif endpoint.scheme == "raw":
        opener = _raw_opener(config, endpoint.url)
        source = await ThreadedFrameSource.start(endpoint.url, opener, file_fps, timeout_s)
    elif endpoint.scheme == "images":
        opener = _images_opener(config, endpoint.url)
        source = await ThreadedFrameSource.start(endpoint.url, opener, file_fps, timeout_s)
    else:
        opener, fps = await asyncio.to_thread(_capture_opener, config, endpoint)
        source = await ThreadedFrameSource.start(endpoint.url, opener, fps, timeout_s)
    try:
        yield source
    finally:
        await source.aclose()


# ------------------------------------------------------------------------------- the driver


class CameraDriver(Driver[AnyCamera]):
    """Reads one camera; hands on checked frames, at most ``max_frames_in_flight`` unfinished.

    See the module docstring. Health counts accepted frames as messages, rejected frames by
    reason, ``frames_dropped`` (source queue full, or no credit), and the outcomes the next
    stage reports; an outcome in :data:`FATAL_OUTCOMES` puts the camera in ``fault``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.credits = FrameCredits(self.config.max_frames_in_flight)
        self._source_dropped = 0
        self._source_bytes = 0
        self._fatal: str | None = None

    async def _session(self) -> None:
        async with open_frame_source(self.config, self._settings.open_timeout_s) as source:
            self._connected(source)
            self._source_dropped = 0
            self._source_bytes = 0
            try:
                items = await source.read_frames()
                # This connection delivers: the next failure backs off from the start again.
                self._backoff.reset()
                while True:
                    self._handle_frames(source, items)
                    items = await source.read_frames()
            finally:
                self._transport = None
                self._connected_at = None
                self._handle_frames(source, source.finish())

    def _handle_frames(self, source: FrameSource, items: list[FrameItem]) -> None:
        t_rx = self._clock()
        self._bytes_in += source.bytes_in - self._source_bytes
        self._source_bytes = source.bytes_in
        if items:
            self._last_bytes = t_rx
        if source.dropped > self._source_dropped:
            lost = source.dropped - self._source_dropped
            self._source_dropped = source.dropped
            self._device_error("frames_dropped", f"{lost} frames dropped: the node fell behind")
        out: list[Item] = []
        for item in items:
            checked = self._check(item)
            if checked is not None:
                out.append(checked)
        self._handle_items(out, t_rx)
        self._collect_outcomes()

    def _check(self, item: FrameItem) -> Item | None:
        if isinstance(item, Rejected):
            return item
        config = self.config
        bad = check_frame(item.image, config.width, config.height, config.pixel_format)
        if bad is not None:
            return bad
        ticket = self.credits.take()
        if ticket is None:
            self._device_error(
                "frames_dropped", "detection is busy with earlier frames; frame dropped"
            )
            return None
        data = {
            "kind": "frame",
            "image": item.image,
            "seq": item.seq,
            "t_capture": item.t_capture,
            "ticket": ticket,
        }
        return Accepted(config.pixel_format, data, item.seq)

    def _collect_outcomes(self) -> None:
        outcomes, details = self.credits.take_outcomes()
        for reason, count in outcomes.items():
            if reason != DONE:
                self._rejected[reason] += count
        fatal = outcomes.keys() & FATAL_OUTCOMES
        if fatal:
            reason = min(fatal)
            self._fatal = f"{reason}: {details.get(reason, '')}"[:200]
        elif outcomes.keys() - {"frames_lost"}:
            self._fatal = None  # frames go through (or fail for passing reasons) again

    def health(self, now: float | None = None) -> SensorHealth:
        self._collect_outcomes()
        return super().health(now)

    def _status(self, now: float) -> tuple[str, str]:
        status, detail = super()._status(now)
        if self._fatal is not None and status != "fault":
            return "fault", self._fatal
        if status == "fault" and "baud rate" in detail:
            detail = detail.split(" (")[0] + " (camera blind or wrong frame format?)"
        return status, detail
