"""Device settings of a node: one pydantic model per device type, keyed by ``type``.

A node's configuration lists its devices; each names the transport it is read through in
``url`` (see :func:`parse_device_url` for the forms) and the ``sensor_id`` its readings and
health carry. ``docs/drivers.md`` describes every field with YAML examples.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


AnyDevice = (
    GpsDevice | AisDevice | RadarDevice | Gmp343Device | SenseAirDevice | MqttDetectionsDevice
)
"""The device models as a plain union (for annotations outside pydantic)."""

DeviceConfig = Annotated[AnyDevice, Field(discriminator="type")]
"""Any device, keyed by ``type``: gps, ais, radar, gmp343, senseair or mqtt_detections."""
