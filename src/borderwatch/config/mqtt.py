"""Settings of a node's MQTT output (the ``mqtt:`` section of a node configuration).

The node publishes to one broker, normally the boat-local Mosquitto that is bridged to the
centre when a radio link exists (see ``docs/mqtt.md`` and ``config/mosquitto/``). Alerts and
track summaries pass through a durable SQLite outbox, so the broker may be unreachable for as
long as the outbox's disk allows. Unknown keys are refused (``extra="forbid"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from borderwatch.config.urls import host_port_url, url_host

#: Default ports of the two URL schemes.
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class TlsSettings(BaseModel):
    """TLS towards the broker (needed when the node talks to the centre's broker directly)."""

    model_config = ConfigDict(extra="forbid")

    ca_file: Path | None = Field(
        default=None,
        description="PEM file of the certificate authorities that sign the broker's certificate; "
        "none: the system's trusted authorities.",
    )
    cert_file: Path | None = Field(
        default=None, description="PEM client certificate, for brokers that require one."
    )
    key_file: Path | None = Field(
        default=None, description="PEM private key of cert_file; given with cert_file."
    )

    @model_validator(mode="after")
    def _cert_with_key(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class BackoffSettings(BaseModel):
    """Delays between connection attempts: exponential from ``initial_s``, capped at ``max_s``,
    each scaled by a random factor in [0.5, 1) so nodes that lost the link together do not
    retry in lock step."""

    model_config = ConfigDict(extra="forbid")

    initial_s: float = Field(
        default=0.5, gt=0.0, allow_inf_nan=False, description="First delay, s."
    )
    max_s: float = Field(
        default=30.0,
        gt=0.0,
        allow_inf_nan=False,
        description="Longest delay, s: after an outage the node is back within this.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max_s < self.initial_s:
            raise ValueError("max_s must not be less than initial_s")
        return self


class MqttSettings(BaseModel):
    """Where and how a node publishes over MQTT 5."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        default="mqtt://127.0.0.1:1883",
        description="Broker address, mqtt://host:port (plain) or mqtts://host:port (TLS); the "
        "port defaults to 1883 and 8883. Normally the boat-local broker.",
    )
    client_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="MQTT client id; none: borderwatch-<node_id>. Must be unique per node: the "
        "broker disconnects an older connection with the same id.",
    )
    keepalive_s: int = Field(
        default=15,
        ge=2,
        le=65535,
        description="Keep-alive interval, s. The broker declares the node gone (and publishes "
        "its last will) after 1.5 times this without a packet.",
    )
    username: str | None = Field(default=None, description="User name, if the broker needs one.")
    password: SecretStr | None = Field(
        default=None, description="Password of username (never logged)."
    )
    tls: TlsSettings | None = Field(
        default=None,
        description="TLS settings; none: plain TCP for mqtt:// and system authorities for "
        "mqtts://.",
    )
    backoff: BackoffSettings = Field(
        default_factory=BackoffSettings, description="Reconnect delays."
    )
    outbox_path: Path = Field(
        default=Path("outbox.sqlite3"),
        description="SQLite file of the outbox (alerts and track summaries waiting for the "
        "broker). Keep it on persistent storage: it is what survives a restart.",
    )
    track_interval_s: float = Field(
        default=1.0,
        gt=0.0,
        allow_inf_nan=False,
        description="Seconds between the node's track summaries (alerts go out at once).",
    )
    track_dead_reckoning_m: float = Field(
        default=5.0,
        ge=0.0,
        allow_inf_nan=False,
        description="A track is summarised again only when a receiver's constant-velocity "
        "prediction from its last summary has drifted this far, m, from the node's estimate "
        "(or at the heartbeat, or when it is new, changes status or class); 0: every track "
        "every track_interval_s.",
    )
    track_heartbeat_s: float = Field(
        default=5.0,
        gt=0.0,
        allow_inf_nan=False,
        description="Every track is summarised at least this often, s (keep it well below the "
        "centre's fusion.stale_s).",
    )
    track_border_kind: Literal["green", "blue"] = Field(
        default="blue",
        description="Border kind in the topic of this node's tracks "
        "(borderwatch/v1/track/<kind>/<track_id>) when the node does not classify them.",
    )
    max_inflight: int = Field(
        default=32,
        ge=1,
        le=1000,
        description="Outbox messages published before waiting for their acknowledgements; "
        "more hides more link latency when draining a backlog.",
    )
    publish_timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        allow_inf_nan=False,
        description="Seconds to wait for the broker's PUBACK before the connection is "
        "treated as broken and the message is sent again on the next one.",
    )
    command_timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        allow_inf_nan=False,
        description="Seconds a command handler may take before an error reply is sent.",
    )
    centre_id: str = Field(
        default="centre",
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$",
        description="The centre a node forwards operator actions from its console to "
        "(borderwatch/v1/centre/<centre_id>/cmd/<verb>); not used by a centre.",
    )
    max_track_rows: int = Field(
        default=100_000,
        ge=10,
        description="Most track summary rows the outbox keeps during an outage (one per track "
        "after coalescing, two for an ended one); beyond it the oldest are dropped and "
        "counted. Alerts are never dropped.",
    )

    @field_validator("url")
    @classmethod
    def _broker_url(cls, url: str) -> str:
        host_port_url(url, DEFAULT_PORTS, "mqtt://127.0.0.1:1883")
        return url

    @property
    def host(self) -> str:
        """Broker host name or address."""
        return url_host(self.url)

    @property
    def port(self) -> int:
        """Broker TCP port."""
        parts = urlsplit(self.url)
        return parts.port or DEFAULT_PORTS[parts.scheme]

    @property
    def uses_tls(self) -> bool:
        """True for mqtts:// or when TLS settings are given."""
        return urlsplit(self.url).scheme == "mqtts" or self.tls is not None
