"""Settings of the TAK output (the ``tak:`` section of a node or centre configuration).

Tracks, own units and alerts go out as Cursor on Target (CoT) XML events to TAK clients (ATAK,
WinTAK, iTAK) or a TAK server, over UDP (unicast or the SA multicast group), TCP or TLS
(``docs/tak.md``). Unknown keys are refused (``extra="forbid"``).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from borderwatch.config.urls import host_port_url, url_host

#: Schemes of an output's URL.
TAK_SCHEMES = ("udp", "tcp", "tls")

Affiliation = Literal["p", "u", "a", "n", "s", "h"]
"""CoT affiliation letters a policy may choose: pending, unknown, assumed friend, neutral,
suspect, hostile (friend ``f`` is reserved for own units)."""

#: A MIL-STD-2525 battle dimension and function as CoT writes it after ``a-<affiliation>-``.
TypeSuffix = Annotated[str, Field(pattern=r"^[PAGSUX](-[A-Za-z0-9]+)*$")]


class AffiliationPolicy(BaseModel):
    """Which affiliation each kind of track is shown with (CoT ``a-<affiliation>-…``)."""

    model_config = ConfigDict(extra="forbid")

    track: Affiliation = Field(
        default="u", description="A track with no open alert: u (unknown) by default."
    )
    approach: Affiliation = Field(
        default="u",
        description="A track with an open approach alert (about to cross): u by default; s "
        "(suspect) where policy says so.",
    )
    crossing: Affiliation = Field(
        default="u",
        description="A track with an open crossing alert: u by default; s (suspect) or h "
        "(hostile) where policy says so.",
    )
    identified: Affiliation = Field(
        default="u",
        description="A vessel identified by AIS that is not one of ours (an open alert still "
        "takes precedence): u by default, n (neutral) where policy says so.",
    )
    dark: Affiliation = Field(
        default="u",
        description="A boat seen by radar or camera without AIS: u by default, s where policy "
        "says so.",
    )


class TypeMapping(BaseModel):
    """The CoT type after ``a-<affiliation>-`` for each class (sources in docs/tak.md)."""

    model_config = ConfigDict(extra="forbid")

    person: TypeSuffix = Field(
        default="G-U-C-I",
        description="A person or group on foot: ground unit, infantry (G-U-C-I).",
    )
    vehicle: TypeSuffix = Field(
        default="G-E-V-C", description="A land vehicle: ground equipment, civilian vehicle."
    )
    boat: TypeSuffix = Field(default="S-X", description="A boat: sea surface, non-military (S-X).")
    unknown: TypeSuffix = Field(
        default="G", description="A target of unknown class: ground track (G)."
    )
    own_boat: TypeSuffix = Field(
        default="S-X-L",
        description="Own patrol boats (friendly): sea surface, law enforcement vessel (S-X-L).",
    )
    own_ground: TypeSuffix = Field(
        default="G-U-U-L-C",
        description="Own mobile units on land (friendly): civilian law enforcement unit.",
    )


class TakOutputSettings(BaseModel):
    """One destination of CoT events."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=r"^[a-z0-9_-]{1,32}$",
        description="Name of the output in logs and health (tak.<name>).",
    )
    url: str = Field(
        description="udp://host:port (a TAK client or the SA multicast group, e.g. "
        "udp://239.2.3.1:6969), tcp://host:port (a TAK server's plain streaming input, "
        "typically 8087) or tls://host:port (a TAK server's TLS input, typically 8089)."
    )
    ca_file: Path | None = Field(
        default=None,
        description="tls: PEM file of the authorities that sign the server's certificate; "
        "none: the system's trusted authorities. Relative to the configuration file.",
    )
    cert_file: Path | None = Field(
        default=None, description="tls: PEM client certificate (TAK servers require one)."
    )
    key_file: Path | None = Field(
        default=None, description="tls: PEM private key of cert_file; given with cert_file."
    )
    server_hostname: str | None = Field(
        default=None,
        description="tls: name the server's certificate must carry; none: the URL's host.",
    )
    multicast_ttl: int = Field(
        default=1,
        ge=0,
        le=255,
        description="udp to a multicast group: how many routers the events may cross (1: "
        "the local network only).",
    )

    @field_validator("url")
    @classmethod
    def _tak_url(cls, url: str) -> str:
        host_port_url(url, TAK_SCHEMES, "tls://tak.example:8089", port_required=True)
        return url

    @model_validator(mode="after")
    def _tls_files(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        uses_files = self.ca_file or self.cert_file or self.server_hostname
        if uses_files and self.scheme != "tls":
            raise ValueError("ca_file, cert_file, key_file and server_hostname are for tls://")
        return self

    @property
    def scheme(self) -> str:
        """udp, tcp or tls."""
        return urlsplit(self.url).scheme

    @property
    def host(self) -> str:
        """Host name or address of the destination."""
        return url_host(self.url)

    @property
    def port(self) -> int:
        """Port of the destination."""
        port = urlsplit(self.url).port
        assert port is not None  # checked by the validator
        return port

    @property
    def multicast(self) -> bool:
        """True for a UDP output to a multicast group address."""
        try:
            return ipaddress.ip_address(self.host).is_multicast
        except ValueError:
            return False

    def with_base(self, folder: Path) -> TakOutputSettings:
        """These settings with relative TLS file paths resolved against ``folder``."""
        update = {
            name: folder / value
            for name in ("ca_file", "cert_file", "key_file")
            if isinstance(value := getattr(self, name), Path) and not value.is_absolute()
        }
        return self.model_copy(update=update)


class TakSettings(BaseModel):
    """CoT events of tracks, own units and alerts to TAK clients and servers."""

    model_config = ConfigDict(extra="forbid")

    outputs: list[TakOutputSettings] = Field(
        min_length=1, description="Where the events go; each output has its own queue."
    )
    callsign_prefix: str = Field(
        default="",
        max_length=16,
        description="Put before every callsign shown in TAK (e.g. 'BW ' to tell these items "
        "from other sources).",
    )
    affiliation: AffiliationPolicy = Field(
        default_factory=AffiliationPolicy,
        description="Affiliation of tracks by what is known of them (policy: unknown unless "
        "the deployment decides otherwise).",
    )
    types: TypeMapping = Field(
        default_factory=TypeMapping, description="CoT type of each class and of own units."
    )
    own_units: dict[str, Literal["boat", "ground"]] = Field(
        default_factory=dict,
        description="Kind of each own unit by node id (boat or ground); units not listed are "
        "default_unit.",
    )
    default_unit: Literal["boat", "ground"] = Field(
        default="boat", description="Kind of an own unit not listed in own_units."
    )
    alert_type: str = Field(
        default="b-a-g",
        pattern=r"^b-[a-z](-[A-Za-z0-9]+)*$",
        description="CoT type of alert events; b-a-g (ATAK: geo-fence breached) makes ATAK "
        "raise an alert with range and bearing to the target (docs/tak.md).",
    )
    track_stale_s: float = Field(
        default=5.0,
        gt=0.0,
        le=3600.0,
        allow_inf_nan=False,
        description="A track event is valid this long, s; keep it above twice the report "
        "interval (1 s) plus the link's delay, so a track stays on the map between reports.",
    )
    unit_stale_s: float = Field(
        default=30.0,
        gt=0.0,
        le=3600.0,
        allow_inf_nan=False,
        description="An own unit's position is valid this long, s.",
    )
    alert_stale_s: float = Field(
        default=900.0,
        gt=0.0,
        le=86400.0,
        allow_inf_nan=False,
        description="An alert event is valid this long, s (its end removes it sooner).",
    )
    track_min_interval_s: float = Field(
        default=1.0,
        ge=0.0,
        le=60.0,
        allow_inf_nan=False,
        description="Fewest seconds between two events of one track (a new track, a change "
        "of type and its removal go out at once).",
    )
    send_deletes: bool = Field(
        default=True,
        description="Follow the final (stale) event of an ended track or alert with a t-x-d-d "
        "delete, which TAK clients act on at once.",
    )
    max_queued_tracks: int = Field(
        default=5000,
        ge=1,
        description="Tracks and units whose latest event waits for a slow or absent "
        "destination (one event per uid); beyond it the oldest waiting is dropped, counted.",
    )
    max_queued_alerts: int = Field(
        default=2000,
        ge=1,
        description="Alert events waiting, in order; beyond it the oldest is dropped, "
        "counted. Alerts go out before tracks and are never dropped to make room for them.",
    )
    backoff_initial_s: float = Field(
        default=0.5, gt=0.0, allow_inf_nan=False, description="tcp/tls: first reconnect delay, s."
    )
    backoff_max_s: float = Field(
        default=30.0,
        gt=0.0,
        allow_inf_nan=False,
        description="tcp/tls: longest reconnect delay, s (capped, jittered exponential).",
    )
    connect_timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        allow_inf_nan=False,
        description="tcp/tls: seconds to connect (and finish the TLS handshake) or to hand a "
        "batch of events to the kernel before the connection is treated as broken.",
    )
    log_interval_s: float = Field(
        default=30.0,
        gt=0.0,
        allow_inf_nan=False,
        description="Each kind of transport error is logged at most once in this many "
        "seconds per output (all are counted).",
    )

    @field_validator("outputs")
    @classmethod
    def _unique_names(cls, outputs: list[TakOutputSettings]) -> list[TakOutputSettings]:
        names = [o.name for o in outputs]
        if len(set(names)) != len(names):
            raise ValueError(f"output names must be unique, got {names}")
        return outputs

    @model_validator(mode="after")
    def _ordered_backoff(self) -> Self:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must not be less than backoff_initial_s")
        return self

    def with_base(self, folder: Path) -> TakSettings:
        """These settings with relative TLS file paths resolved against ``folder``."""
        return self.model_copy(update={"outputs": [o.with_base(folder) for o in self.outputs]})
