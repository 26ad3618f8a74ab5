"""Device settings of a node: one pydantic model per device type, keyed by ``type``.

A node's configuration lists its devices; each names the transport it is read through in
``url`` (see :func:`parse_device_url` for the forms) and the ``sensor_id`` its readings and
health carry. ``docs/drivers.md`` describes every field with YAML examples.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from borderwatch.config.camera import DetectorSettings, MountSettings

#: Schemes of pyserial's URL handlers that a device may use besides a plain device path.
PYSERIAL_SCHEMES = frozenset({"socket", "rfc2217", "loop"})
#: Schemes borderwatch opens itself: TCP client, UDP listener, MQTT subscription.
NETWORK_SCHEMES = frozenset({"tcp", "udp", "mqtt"})

_URL = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<rest>.*)$", re.IGNORECASE)
_HOST_PORT = re.compile(
    r"^(?:\[(?P<ip6>[0-9a-fA-F:.]+)\]|(?P<host>[A-Za-z0-9_.-]+)):(?P<port>\d+)$"
)
_SERIAL_PATH = re.compile(r"^(?:/\S+|COM\d+)$")


@dataclass(frozen=True, slots=True)
class DeviceUrl:
    """A device ``url`` taken apart.

    Attributes:
        scheme: ``serial`` for a device path, else the URL scheme (``socket``, ``rfc2217``,
            ``loop``, ``tcp``, ``udp``, ``mqtt``).
        url: the text as configured (what pyserial opens for serial and pyserial URLs).
        host: host name or address (network schemes and ``socket``/``rfc2217``), else "".
        port: TCP/UDP port (network schemes and ``socket``/``rfc2217``), else 0.
        topic: MQTT topic filter (``mqtt`` only, wildcards ``+`` and ``#`` kept), else "".
    """

    scheme: str
    url: str
    host: str = ""
    port: int = 0
    topic: str = ""

    @property
    def is_serial(self) -> bool:
        """True when pyserial opens it (a device path or a pyserial URL)."""
        return self.scheme == "serial" or self.scheme in PYSERIAL_SCHEMES


def _host_port(text: str, url: str) -> tuple[str, int]:
    m = _HOST_PORT.fullmatch(text)
    if m is None:
        raise ValueError(f"{url!r}: expected host:port after the scheme")
    port = int(m["port"])
    if not 0 < port < 65536:
        raise ValueError(f"{url!r}: port {port} outside 1..65535")
    return m["ip6"] or m["host"], port


def _check_topic_filter(topic: str, url: str) -> None:
    if not topic:
        raise ValueError(f"{url!r}: an MQTT URL needs a topic filter after host:port/")
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"{url!r}: '#' must be a whole last topic level")
        if "+" in level and level != "+":
            raise ValueError(f"{url!r}: '+' must be a whole topic level")


def parse_device_url(url: str) -> DeviceUrl:
    """Take a device ``url`` apart; raise ValueError saying what is wrong.

    Forms:

    * a serial device path: ``/dev/ttyUSB0``, ``/dev/serial/by-id/...``, ``/tmp/sim/gps``
      (also ``COM3``);
    * pyserial URLs: ``socket://host:port`` (raw TCP), ``rfc2217://host:port`` (telnet
      serial server), ``loop://`` (loopback: what is written is read back);
    * ``tcp://host:port``: connect as a TCP client and read the stream;
    * ``udp://host:port``: bind that address and read datagrams (``0.0.0.0`` for all);
    * ``mqtt://host:port/topic/filter``: subscribe to the filter (``+``/``#`` allowed; ``#``
      is taken literally here, not as a URL fragment).
    """
    m = _URL.fullmatch(url)
    if m is None:
        if _SERIAL_PATH.fullmatch(url):
            return DeviceUrl("serial", url)
        raise ValueError(
            f"{url!r} is neither a device path (/dev/...) nor a URL "
            "(socket://, rfc2217://, loop://, tcp://, udp://, mqtt://)"
        )
    scheme, rest = m["scheme"].lower(), m["rest"]
    if scheme == "loop":
        return DeviceUrl(scheme, url)
    if scheme in ("socket", "rfc2217"):
        # pyserial options may follow as ?logging=debug; the address is before them.
        host, port = _host_port(rest.split("?", 1)[0], url)
        return DeviceUrl(scheme, url, host, port)
    if scheme in ("tcp", "udp"):
        host, port = _host_port(rest, url)
        return DeviceUrl(scheme, url, host, port)
    if scheme == "mqtt":
        address, _, topic = rest.partition("/")
        host, port = _host_port(address, url)
        _check_topic_filter(topic, url)
        return DeviceUrl(scheme, url, host, port, topic)
    known = ", ".join(sorted(PYSERIAL_SCHEMES | NETWORK_SCHEMES))
    raise ValueError(f"{url!r}: unknown scheme {scheme!r} (known: {known})")


# ------------------------------------------------------------------------------------ models

PositiveSeconds = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
Offset2 = tuple[
    Annotated[float, Field(allow_inf_nan=False)], Annotated[float, Field(allow_inf_nan=False)]
]


class BaseDevice(BaseModel):
    """Fields every device has; a device type is a subclass that fixes ``type``."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="Device type, which selects the model and the driver.")

    sensor_id: str = Field(
        pattern=r"^[a-z0-9_.-]{1,64}$",
        description="Id of the sensor in readings, health and provenance (lower case, digits, "
        "'_.-', at most 64 characters); unique within a node.",
    )
    url: str = Field(
        description="Where the device is read: a serial device path (/dev/ttyUSB0), a pyserial "
        "URL (socket://host:port, rfc2217://host:port, loop://), tcp://host:port (client), "
        "udp://host:port (bind and listen) or mqtt://host:port/topic/filter (subscribe)."
    )
    baudrate: int = Field(
        default=4800, gt=0, description="Serial line speed, bit/s (ignored by network URLs)."
    )
    stale_after_s: PositiveSeconds = Field(
        default=5.0,
        description="The sensor is stale when connected but no message was accepted for this "
        "long, s.",
    )
    reconnect_initial_s: PositiveSeconds = Field(
        default=0.5, description="First delay before reopening a failed transport, s."
    )
    reconnect_max_s: PositiveSeconds = Field(
        default=30.0,
        description="Cap of the reconnect delay, s; delays double from reconnect_initial_s up "
        "to this cap, with random jitter.",
    )

    @field_validator("url")
    @classmethod
    def _url_parses(cls, url: str) -> str:
        parse_device_url(url)
        return url

    @model_validator(mode="after")
    def _backoff_order(self) -> Self:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must not be less than reconnect_initial_s")
        return self

    @property
    def endpoint(self) -> DeviceUrl:
        """The parsed ``url``."""
        return parse_device_url(self.url)

    def with_base(self, folder: Path) -> Self:
        """The device with the relative file paths of its settings taken from ``folder`` (the
        configuration file's); the same device when it has none."""
        return self


class GpsDevice(BaseDevice):
    """The node's own GNSS receiver (NMEA 0183: fix, velocity, heading, accuracy)."""

    type: Literal["gps"] = Field(default="gps", description="Device type: gps.")
    antenna_offset_m: Offset2 = Field(
        default=(0.0, 0.0),
        description="Antenna position relative to the platform reference point, m: (forward, "
        "right).",
    )


class AisDevice(BaseDevice):
    """An AIS receiver or transponder (AIVDM/AIVDO, mixed with other NMEA sentences)."""

    type: Literal["ais"] = Field(default="ais", description="Device type: ais.")
    baudrate: int = Field(
        default=38400, gt=0, description="Serial line speed, bit/s (AIS uses 38400)."
    )
    own_mmsi: list[Annotated[int, Field(ge=0, le=999_999_999)]] = Field(
        default_factory=list,
        description="MMSIs of the own platform's transponders: their reports are marked own "
        "ship, not targets.",
    )


class RadarDevice(BaseDevice):
    """A radar's target output (NMEA TTM tracked targets, TLL target positions)."""

    type: Literal["radar"] = Field(default="radar", description="Device type: radar.")
    range_sigma_m: float = Field(
        default=15.0, gt=0.0, allow_inf_nan=False, description="1-σ range error, m."
    )
    bearing_sigma_deg: float = Field(
        default=1.0, gt=0.0, allow_inf_nan=False, description="1-σ bearing error, degrees."
    )
    mount_offset_m: Offset2 = Field(
        default=(0.0, 0.0),
        description="Antenna position relative to the platform reference point, m: (forward, "
        "right).",
    )
    mount_yaw_deg: float = Field(
        default=0.0,
        allow_inf_nan=False,
        description="Angle of the radar's zero bearing clockwise from the platform's bow, "
        "degrees; added to relative bearings.",
    )


class Gmp343Device(BaseDevice):
    """A Vaisala GMP343-style CO2 probe streaming ASCII readings."""

    type: Literal["gmp343"] = Field(default="gmp343", description="Device type: gmp343.")
    # The GMP343 leaves the factory at 19200 bit/s (8N1), unlike most CO2 sensors' 9600.
    baudrate: int = Field(default=19200, gt=0, description="Serial line speed, bit/s.")


class SenseAirDevice(BaseDevice):
    """A SenseAir K30/S8-style CO2 sensor, polled over Modbus RTU."""

    type: Literal["senseair"] = Field(default="senseair", description="Device type: senseair.")
    baudrate: int = Field(default=9600, gt=0, description="Serial line speed, bit/s.")
    poll_interval_s: PositiveSeconds = Field(
        default=2.0, description="Time between read-input-registers requests, s."
    )
    slave: int = Field(
        default=0xFE, description="Modbus slave address (1..247, or 254 = 0xFE: any sensor)."
    )

    @field_validator("slave")
    @classmethod
    def _modbus_address(cls, slave: int) -> int:
        if not (1 <= slave <= 247 or slave == 0xFE):
            raise ValueError("a Modbus slave address is 1..247, or 254 (any sensor)")
        return slave

    @model_validator(mode="after")
    def _pollable(self) -> Self:
        scheme = self.endpoint.scheme
        if scheme in ("udp", "mqtt"):
            raise ValueError(f"a polled sensor needs a two-way transport, not {scheme}://")
        if self.stale_after_s <= self.poll_interval_s:
            raise ValueError("stale_after_s must be longer than poll_interval_s")
        return self


class MqttDetectionsDevice(BaseDevice):
    """A networked sensor publishing JSON Detection messages (borderwatch schema) over MQTT."""

    type: Literal["mqtt_detections"] = Field(
        default="mqtt_detections", description="Device type: mqtt_detections."
    )

    @model_validator(mode="after")
    def _mqtt_url(self) -> Self:
        if self.endpoint.scheme != "mqtt":
            raise ValueError("mqtt_detections needs an mqtt://host:port/topic URL")
        return self


# ------------------------------------------------------------------------------------ cameras

#: Suffixes of raw 16-bit frame files (little-endian Y16, frames back to back).
RAW_FRAME_SUFFIXES = (".y16", ".raw")
#: Suffixes of still images read as a frame sequence (a glob pattern, a directory or one file).
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".pgm")
#: Network schemes OpenCV's VideoCapture (FFmpeg) reads.
CAPTURE_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https"})
_V4L2_DEVICE = re.compile(r"^/dev/video\d+$")
#: Camera URL schemes that name files (relative paths are taken from the configuration's folder).
FILE_SCHEMES = frozenset({"raw", "images", "video"})


def parse_camera_url(url: str) -> DeviceUrl:
    """Take a camera ``url`` apart; the scheme says which frame source reads it.

    Forms and the ``scheme`` they give:

    * ``tcp://host:port`` → ``tcp``: a raw frame stream (``docs/camera-node.md``, framing);
    * ``rtsp://…``, ``rtsps://…``, ``http(s)://…`` → ``capture``: a network video stream read by
      OpenCV's ``VideoCapture`` (FFmpeg);
    * ``/dev/videoN`` → ``v4l2``: a V4L2 device (UVC cameras, grabbers, thermal cores on USB);
    * a path ending ``.y16`` or ``.raw`` → ``raw``: raw little-endian 16-bit frames back to back;
    * a glob pattern, a directory, or a path ending ``.png``/``.tif``/``.tiff``/``.pgm`` →
      ``images``: still images (8- or 16-bit) in name order, one frame each;
    * any other path → ``video``: a video file read by ``VideoCapture``.
    """
    m = _URL.fullmatch(url)
    if m is not None:
        scheme = m["scheme"].lower()
        if scheme == "tcp":
            host, port = _host_port(m["rest"], url)
            return DeviceUrl("tcp", url, host, port)
        if scheme in CAPTURE_SCHEMES:
            if not m["rest"]:
                raise ValueError(f"{url!r}: a stream URL needs a host")
            return DeviceUrl("capture", url)
        known = ", ".join(sorted(CAPTURE_SCHEMES | {"tcp"}))
        raise ValueError(f"{url!r}: unknown camera scheme {scheme!r} (known: {known}, or a path)")
    if not url.strip() or url != url.strip():
        raise ValueError(f"{url!r}: a camera path must not be empty or start/end with blanks")
    if _V4L2_DEVICE.fullmatch(url):
        return DeviceUrl("v4l2", url)
    lower = url.lower()
    if lower.endswith(RAW_FRAME_SUFFIXES):
        return DeviceUrl("raw", url)
    if any(c in url for c in "*?[") or url.endswith("/") or lower.endswith(IMAGE_SUFFIXES):
        return DeviceUrl("images", url)
    return DeviceUrl("video", url)


class CameraIntrinsicsSettings(BaseModel):
    """The camera's optics: a horizontal field of view (ideal pinhole, centred) or an OpenCV
    calibration file (camera matrix and distortion, as ``cv2.FileStorage`` writes them)."""

    model_config = ConfigDict(extra="forbid")

    hfov_deg: float | None = Field(
        default=None,
        gt=0.0,
        lt=180.0,
        description="Horizontal field of view, degrees (square pixels, principal point at the "
        "centre, no distortion).",
    )
    calibration_file: Path | None = Field(
        default=None,
        description="OpenCV calibration file (YAML/XML with camera_matrix and "
        "distortion_coefficients), e.g. from cv2.calibrateCamera; relative to the configuration "
        "file. A file that cannot be read puts the camera in fault at start; the node goes on.",
    )

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.hfov_deg is None) == (self.calibration_file is None):
            raise ValueError("give exactly one of hfov_deg and calibration_file")
        return self


class CameraMountSettings(MountSettings):
    """Where the camera sits on the platform and where it points (angles relative to the
    platform's heading, or to the site's reference direction)."""

    offset_m: Offset2 = Field(
        default=(0.0, 0.0),
        description="Camera position relative to the platform reference point (the GNSS "
        "antenna), m: (forward, right).",
    )

    def geometry(self) -> dict[str, float]:
        """The fields of :class:`borderwatch.sensors.camera.geometry.CameraMount`."""
        return self.model_dump(exclude={"offset_m"})


class CameraSiteSettings(BaseModel):
    """A camera on a fixed mast (no GNSS of its own): its surveyed position and heading."""

    model_config = ConfigDict(extra="forbid")

    lat_deg: float = Field(ge=-90.0, le=90.0, description="Latitude of the camera, degrees.")
    lon_deg: float = Field(ge=-180.0, le=180.0, description="Longitude of the camera, degrees.")
    heading_deg: float = Field(
        default=0.0,
        ge=0.0,
        lt=360.0,
        description="Reference direction the mount yaw is counted from, degrees clockwise from "
        "true north (0: the mount yaw is a true bearing).",
    )
    sigma_pos_m: float = Field(
        default=1.0, ge=0.0, allow_inf_nan=False, description="1-σ position error, m."
    )
    sigma_heading_deg: float = Field(
        default=0.1, ge=0.0, allow_inf_nan=False, description="1-σ heading error, degrees."
    )


class CameraDevice(BaseDevice):
    """Fields of every camera: frame source, frame format, optics, mount, pose source and the
    frame-handling limits. ``docs/camera-node.md`` describes them with a YAML example."""

    url: str = Field(
        description="Frame source: tcp://host:port (raw frame stream), rtsp://… or http(s)://… "
        "(video stream), /dev/videoN (V4L2), a video file, a raw .y16 file, or still images "
        "(a glob pattern such as /data/frames/*.png, or a directory)."
    )
    width: int = Field(gt=0, le=8192, description="Frame width, pixels; others are rejected.")
    height: int = Field(gt=0, le=8192, description="Frame height, pixels; others are rejected.")
    fps: float | None = Field(
        default=None,
        gt=0.0,
        le=1000.0,
        description="Pace at which files (video, raw, images) are played, frames/s; default "
        "the video's own rate, else 30. Live sources are read as fast as they send.",
    )
    intrinsics: CameraIntrinsicsSettings = Field(description="The camera's optics.")
    mount: CameraMountSettings = Field(
        default_factory=CameraMountSettings, description="Mount position and pointing."
    )
    site: CameraSiteSettings | None = Field(
        default=None,
        description="A fixed camera's surveyed pose; without it the pose comes from the "
        "node's GNSS (a gps device) at each frame's time.",
    )
    pixel_sigma: float = Field(
        default=0.5,
        gt=0.0,
        allow_inf_nan=False,
        description="1-σ error of a detection's centre in the image, pixels.",
    )
    max_range_m: float = Field(
        default=3000.0,
        gt=0.0,
        allow_inf_nan=False,
        description="Farthest range a detection may claim from its elevation, m; beyond it (or "
        "when the range is ill-conditioned) the detection is bearing-only.",
    )
    max_frames_in_flight: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Frames handed to detection and not yet done; a frame arriving when this "
        "many are in flight is dropped and counted (frames_dropped).",
    )
    stale_after_s: PositiveSeconds = Field(
        default=3.0, description="The camera is stale when no frame was accepted for this long, s."
    )
    detector: DetectorSettings = Field(
        default_factory=DetectorSettings,
        description="The frame detector (docs/cameras.md), including the Y16 conversion to "
        "temperature (y16_gain_k, y16_offset_k); its intrinsics and mount come from the device.",
    )

    @model_validator(mode="after")
    def _detector_fits(self) -> Self:
        if self.detector.intrinsics is not None or self.detector.mount is not None:
            raise ValueError("set intrinsics and mount on the camera device, not in detector")
        kind = "nightvision" if self.type == "nightvision_camera" else "thermal"
        if self.detector.kind != kind:
            raise ValueError(f"a {self.type} needs detector kind {kind!r}")
        return self

    @field_validator("url")
    @classmethod
    def _url_parses(cls, url: str) -> str:
        parse_camera_url(url)
        return url

    @property
    def endpoint(self) -> DeviceUrl:
        """The parsed ``url`` (scheme ``tcp``, ``capture``, ``v4l2``, ``raw``, ``images`` or
        ``video``)."""
        return parse_camera_url(self.url)

    def with_base(self, folder: Path) -> Self:
        """Relative file sources, calibration and model files taken from ``folder``."""
        update: dict[str, object] = {}
        if self.endpoint.scheme in FILE_SCHEMES and not Path(self.url).is_absolute():
            update["url"] = str(folder / self.url)
        calibration = self.intrinsics.calibration_file
        if calibration is not None and not calibration.is_absolute():
            intrinsics = self.intrinsics.model_copy(
                update={"calibration_file": folder / calibration}
            )
            update["intrinsics"] = intrinsics
        model = self.detector.dnn_model
        if model is not None and not model.is_absolute():
            update["detector"] = self.detector.model_copy(update={"dnn_model": folder / model})
        return self.model_copy(update=update) if update else self


class ThermalCameraDevice(CameraDevice):
    """A thermal imaging camera: 16-bit radiometric frames (Y16) or its 8-bit video."""

    type: Literal["thermal_camera"] = Field(
        default="thermal_camera", description="Device type: thermal_camera."
    )
    pixel_format: Literal["y16", "y8"] = Field(
        default="y16",
        description="y16: raw 16-bit counts (raw stream/files, 16-bit images, V4L2 Y16); y8: "
        "the camera's 8-bit video (RTSP, video files).",
    )


class NightVisionCameraDevice(CameraDevice):
    """A night-vision / low-light camera: 8-bit grayscale video (colour is converted)."""

    type: Literal["nightvision_camera"] = Field(
        default="nightvision_camera", description="Device type: nightvision_camera."
    )
    pixel_format: Literal["y8"] = Field(default="y8", description="Always y8 (8-bit gray).")
    detector: DetectorSettings = Field(
        default_factory=lambda: DetectorSettings(kind="nightvision"),
        description="The frame detector (docs/cameras.md), kind nightvision; its intrinsics "
        "and mount come from the device.",
    )


AnyCamera = ThermalCameraDevice | NightVisionCameraDevice
"""The camera device models."""

AnyDevice = (
    GpsDevice
    | AisDevice
    | RadarDevice
    | Gmp343Device
    | SenseAirDevice
    | MqttDetectionsDevice
    | ThermalCameraDevice
    | NightVisionCameraDevice
)
"""The device models as a plain union (for annotations outside pydantic)."""

DeviceConfig = Annotated[AnyDevice, Field(discriminator="type")]
"""Any device, keyed by ``type``: gps, ais, radar, gmp343, senseair, mqtt_detections,
thermal_camera or nightvision_camera."""
