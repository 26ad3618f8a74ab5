"""Settings of the control centre (``borderwatch centre --config FILE``), validated by pydantic.

The centre subscribes to every node through one broker, fuses their tracks, de-duplicates
their alerts and keeps alerts, operator actions and track histories in a database
(``docs/centre.md``). Unknown keys are refused (``extra="forbid"``), so a misspelt setting fails
at start-up, pointing at its line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from borderwatch.config.mqtt import MqttSettings
from borderwatch.config.node import FrameSettings
from borderwatch.config.tak import TakSettings
from borderwatch.config.web import WebSettings
from borderwatch.config.yamlload import load_yaml_model
from borderwatch.fusion.t2t import GATE_CHI2_999

CentreId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
"""A centre id: prefixes centre alert and track ids (``centre-1:17``) and names its topics."""


class CentreStoreSettings(BaseModel):
    """Where alerts, operator actions and track histories are kept."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        default="sqlite:///centre.db",
        min_length=1,
        description="Database URL: sqlite:///FILE (a relative FILE is resolved against the "
        "configuration file's folder), sqlite:// (in memory) or postgresql://user:pw@host/db.",
    )
    track_batch_s: float = Field(
        default=1.0,
        gt=0.0,
        allow_inf_nan=False,
        description="Received track messages are written to the history at least this often, s "
        "(one transaction per batch).",
    )
    track_batch_max: int = Field(
        default=500,
        ge=1,
        description="A batch of track messages is written as soon as it holds this many.",
    )
    process: bool = Field(
        default=False,
        description="Run the store in a process of its own, so the database work never holds "
        "the centre's interpreter (false: in a worker thread of the centre's process). Off by "
        "default: on a 2-core machine, moving each alert and track across the process boundary "
        "cost more than it saved (docs/centre.md).",
    )


class CentreFusionSettings(BaseModel):
    """Track-to-track fusion of the nodes' tracks (``fusion/t2t.py``)."""

    model_config = ConfigDict(extra="forbid")

    gate_chi2: float = Field(
        default=GATE_CHI2_999,
        gt=0.0,
        allow_inf_nan=False,
        description="Association gate on the squared Mahalanobis distance of two node tracks "
        "(4 degrees of freedom); the default is the 99.9 % point.",
    )
    stale_s: float = Field(
        default=10.0,
        gt=0.0,
        allow_inf_nan=False,
        description="A node track not reported for this long, s, leaves the picture.",
    )
    max_gate_m: float = Field(
        default=300.0,
        gt=0.0,
        allow_inf_nan=False,
        description="Node tracks further apart than this, m, never associate.",
    )
    q_m2ps3: float = Field(
        default=0.5,
        ge=0.0,
        allow_inf_nan=False,
        description="Process noise spectral density used to predict node tracks to the "
        "picture time, m²/s³.",
    )
    picture_interval_s: float = Field(
        default=1.0,
        gt=0.0,
        allow_inf_nan=False,
        description="Seconds between fused pictures (computed and published).",
    )
    time_source: Literal["wall", "messages"] = Field(
        default="wall",
        description="Time of each picture: wall (the centre's clock, for live nodes whose "
        "clocks are GNSS- or NTP-disciplined) or messages (the latest track time received, "
        "for replays of recordings).",
    )


class CentreDedupSettings(BaseModel):
    """When alerts of several nodes are one crossing (``fusion/alertdedup.py``)."""

    model_config = ConfigDict(extra="forbid")

    window_s: float = Field(
        default=30.0, ge=0.0, allow_inf_nan=False, description="Largest time gap, s."
    )
    radius_m: float = Field(
        default=50.0, ge=0.0, allow_inf_nan=False, description="Largest distance, m."
    )
    segment_slack: int = Field(
        default=1, ge=0, description="How many border segments apart two alerts may be."
    )
    retention_s: float = Field(
        default=600.0,
        gt=0.0,
        allow_inf_nan=False,
        description="A centre alert is forgotten this long after its last node event, s "
        "(later events of its node alerts then start a new one).",
    )

    @model_validator(mode="after")
    def _retention_covers_window(self) -> Self:
        if self.retention_s < self.window_s:
            raise ValueError("retention_s must not be less than window_s")
        return self


class CentreIntakeSettings(BaseModel):
    """Bounds on what the centre accepts and holds."""

    model_config = ConfigDict(extra="forbid")

    max_payload_bytes: int = Field(
        default=262_144,
        ge=1024,
        description="Larger payloads are refused unread (counted as oversized).",
    )
    queue: int = Field(
        default=10_000,
        ge=1,
        description="Received messages waiting to be processed; beyond it new ones are dropped "
        "and counted.",
    )
    track_queue: int = Field(
        default=20_000,
        ge=1,
        description="Received track summaries waiting to be processed (they have a queue and "
        "a broker connection of their own, behind alerts); beyond it new ones are dropped and "
        "counted (a later summary of the track supersedes them).",
    )
    track_qos: Literal[0, 1] = Field(
        default=0,
        description="QoS of the track subscription. 0 (default): the broker sends track "
        "summaries without acknowledgements or a stored session; after a reconnect the retained "
        "track topics give the latest state of every track. 1: every summary is acknowledged.",
    )
    track_batch: int = Field(
        default=100,
        ge=1,
        description="Most track summaries fused in one turn, between checks for alerts, "
        "states and commands.",
    )
    outgoing: int = Field(
        default=10_000,
        ge=1,
        description="Centre alert events and command replies waiting for the broker; beyond it "
        "the oldest are dropped and counted (alerts are in the store regardless).",
    )
    remembered_msg_ids: int = Field(
        default=200_000,
        ge=1,
        description="Message ids remembered to drop duplicates (the store also refuses a "
        "duplicate alert event, whatever its age).",
    )
    session_expiry_s: int = Field(
        default=3600,
        ge=0,
        description="How long the broker keeps the centre's session (subscriptions and QoS 1 "
        "messages) while the centre is disconnected, s; 0: a clean session each time.",
    )
    log_interval_s: float = Field(
        default=10.0,
        gt=0.0,
        allow_inf_nan=False,
        description="Each kind of bad input is logged at most once in this many seconds (all "
        "are counted).",
    )


class CentreConfig(BaseModel):
    """A control centre: its id, the deployment frame, broker, store, fusion and limits."""

    model_config = ConfigDict(extra="forbid")

    centre_id: CentreId = Field(
        description="Id of this centre: topics borderwatch/v1/centre/<centre_id>/..., centre "
        "alert ids <centre_id>:<n>, fused track ids <centre_id>:<n>."
    )
    frame: FrameSettings = Field(
        description="Origin of the deployment's local plane, the same as the nodes'."
    )
    mqtt: MqttSettings = Field(
        default_factory=MqttSettings,
        description="Broker connection (url, client_id, keepalive_s, credentials, tls, backoff, "
        "publish_timeout_s, command_timeout_s); the node-only outbox and track settings are "
        "not used. client_id defaults to borderwatch-centre-<centre_id>.",
    )
    store: CentreStoreSettings = Field(
        default_factory=CentreStoreSettings, description="The database."
    )
    fusion: CentreFusionSettings = Field(
        default_factory=CentreFusionSettings, description="Track-to-track fusion."
    )
    dedup: CentreDedupSettings = Field(
        default_factory=CentreDedupSettings, description="Alert de-duplication."
    )
    intake: CentreIntakeSettings = Field(
        default_factory=CentreIntakeSettings, description="Input and queue bounds."
    )
    tak: TakSettings | None = Field(
        default=None,
        description="CoT events of the fused tracks, the nodes' positions and the centre's "
        "alerts to TAK clients or a TAK server (see docs/tak.md); none: no TAK output.",
    )
    web: WebSettings | None = Field(
        default=None, description="Web console settings (see docs/console.md)."
    )


def resolve_store_url(url: str, folder: Path) -> str:
    """``url`` with a relative SQLite file made absolute against ``folder``; other URLs
    (absolute SQLite files, in-memory SQLite, PostgreSQL) unchanged."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return url  # the store names the bad URL when it opens it
    database = parsed.database
    if not parsed.drivername.startswith("sqlite") or database in (None, "", ":memory:"):
        return url
    if Path(database).is_absolute():
        return url
    return parsed.set(database=str(folder / database)).render_as_string(hide_password=False)


def load_centre_config(path: str | Path) -> CentreConfig:
    """Read and validate a centre configuration file; a relative SQLite path in ``store.url``
    is resolved against the file's folder. Errors are :class:`~borderwatch.errors.ConfigError`
    with the file and line of the offending setting."""
    path = Path(path)
    config = load_yaml_model(path, CentreConfig)
    if config.tak is not None:
        config = config.model_copy(update={"tak": config.tak.with_base(path.parent)})
    if config.web is not None:
        config = config.model_copy(update={"web": config.web.with_base(path.parent)})
    url = resolve_store_url(config.store.url, path.parent.resolve())
    if url != config.store.url:
        config = config.model_copy(update={"store": config.store.model_copy(update={"url": url})})
    return config
