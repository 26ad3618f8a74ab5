"""Settings of an edge node (``borderwatch node --config FILE``), validated by pydantic.

A node is one patrol boat or mobile unit: its devices, the deployment's local frame, the border
it watches, the tracker's settings and the pipeline's bounds. Unknown keys are refused
(``extra="forbid"``) so a misspelt setting fails at start-up, pointing at its line, instead of
being silently ignored in the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from borderwatch.config.devices import DeviceConfig
from borderwatch.config.mqtt import MqttSettings
from borderwatch.config.tak import TakSettings
from borderwatch.config.tracker import TrackerConfig
from borderwatch.config.web import WebSettings
from borderwatch.config.yamlload import load_yaml_model
from borderwatch.fusion.frames import LocalFrame
from borderwatch.sensors.co2session import Co2SessionSettings

NodeId = Annotated[str, Field(pattern=r"^[a-z0-9_.-]{1,64}$")]


class FrameSettings(BaseModel):
    """Origin of the deployment's local east-north-up plane (WGS-84)."""

    model_config = ConfigDict(extra="forbid")

    lat_deg: float = Field(ge=-90.0, le=90.0, description="Latitude of the origin, degrees.")
    lon_deg: float = Field(ge=-180.0, le=180.0, description="Longitude of the origin, degrees.")
    alt_m: float = Field(default=0.0, description="Height of the origin above the ellipsoid, m.")

    def local_frame(self) -> LocalFrame:
        """The :class:`LocalFrame` these settings describe."""
        return LocalFrame(self.lat_deg, self.lon_deg, self.alt_m)


class QueueSettings(BaseModel):
    """Bounds of the queues between pipeline stages; a full queue drops and counts."""

    model_config = ConfigDict(extra="forbid")

    readings: int = Field(
        default=20_000,
        ge=1,
        description="Parsed device messages waiting for the sensor stage. At 5,000 messages/s "
        "the default holds four seconds of input.",
    )


class FusionSettings(BaseModel):
    """How often the node runs the tracker, and with what settings."""

    model_config = ConfigDict(extra="forbid")

    scan_interval_s: float = Field(
        default=0.5,
        gt=0.0,
        le=10.0,
        description="Longest time between tracker steps, s: without new detections the tracker "
        "still steps this often (coasting, deletion, releases from the reorder window).",
    )
    min_step_interval_s: float = Field(
        default=0.05,
        ge=0.0,
        le=10.0,
        description="Shortest time between tracker steps, s: detections that arrive meanwhile "
        "(a radar's scan comes as a burst) are taken together in the next step.",
    )
    tracker: TrackerConfig = Field(
        default_factory=lambda: TrackerConfig(reorder_lag_s=1.0),
        description="Tracker settings (see docs/fusion.md). A node holds detections for "
        "reorder_lag_s = 1 s by default: AIS reports are stamped with their fix time, which "
        "is up to a second before they arrive.",
    )


class HealthSettings(BaseModel):
    """Health reporting."""

    model_config = ConfigDict(extra="forbid")

    interval_s: float = Field(
        default=5.0, gt=0.0, description="Seconds between health reports (node state)."
    )


class NodeConfig(BaseModel):
    """One edge node: a patrol boat or mobile unit and its devices."""

    model_config = ConfigDict(extra="forbid")

    node_id: NodeId = Field(
        description="Id of the node, unique in the deployment; prefixes its track and alert ids."
    )
    frame: FrameSettings = Field(
        description="Origin of the local plane the fusion core works in; the same for every "
        "node of a deployment, so their tracks line up."
    )
    border: Path | None = Field(
        default=None,
        description="GeoJSON file of the border lines to watch (relative paths are relative to "
        "this configuration file); none: tracks only, no crossing alerts.",
    )
    simulated: bool = Field(
        default=False, description="True when the devices are the simulator's, not real ones."
    )
    exercise: bool = Field(
        default=False, description="True during a declared exercise; marks every message."
    )
    devices: list[DeviceConfig] = Field(
        default_factory=list, description="The node's devices, each with a unique sensor_id."
    )
    queues: QueueSettings = Field(
        default_factory=QueueSettings, description="Bounds of the pipeline's queues."
    )
    fusion: FusionSettings = Field(
        default_factory=FusionSettings, description="Tracker settings and step interval."
    )
    co2: Co2SessionSettings = Field(
        default_factory=Co2SessionSettings,
        description="How CO2 inspection sessions are judged (see docs/co2.md).",
    )
    health: HealthSettings = Field(
        default_factory=HealthSettings, description="Health reporting settings."
    )
    mqtt: MqttSettings | None = Field(
        default=None,
        description="MQTT broker and outbox (see docs/mqtt.md); none: the node publishes "
        "nothing on the network (it still logs and, with --record, records).",
    )
    tak: TakSettings | None = Field(
        default=None,
        description="CoT events of tracks, own position and alerts to TAK clients or a TAK "
        "server (see docs/tak.md); none: no TAK output.",
    )
    web: WebSettings | None = Field(
        default=None, description="Web console settings (see docs/console.md)."
    )

    @field_validator("devices")
    @classmethod
    def _unique_sensor_ids(cls, devices: list[DeviceConfig]) -> list[DeviceConfig]:
        seen: set[str] = set()
        for device in devices:
            if device.sensor_id in seen:
                raise ValueError(f"sensor_id {device.sensor_id!r} is used twice")
            seen.add(device.sensor_id)
        return devices

    @model_validator(mode="after")
    def _one_gps(self) -> NodeConfig:
        gps = [d.sensor_id for d in self.devices if d.type == "gps"]
        if len(gps) > 1:
            raise ValueError(f"a node has one navigation source; got gps devices {gps}")
        return self


def load_node_config(path: str | Path) -> NodeConfig:
    """Read and validate a node configuration file; relative ``border``, outbox and device file
    paths are resolved against the file's folder. Errors are
    :class:`~borderwatch.errors.ConfigError` with the file and line of the offending setting."""
    path = Path(path)
    config = load_yaml_model(path, NodeConfig)
    config = config.model_copy(
        update={"devices": [d.with_base(path.parent) for d in config.devices]}
    )
    if config.border is not None and not config.border.is_absolute():
        config = config.model_copy(update={"border": path.parent / config.border})
    if config.tak is not None:
        config = config.model_copy(update={"tak": config.tak.with_base(path.parent)})
    if config.web is not None:
        config = config.model_copy(update={"web": config.web.with_base(path.parent)})
    if config.mqtt is not None and not config.mqtt.outbox_path.is_absolute():
        mqtt = config.mqtt.model_copy(update={"outbox_path": path.parent / config.mqtt.outbox_path})
        config = config.model_copy(update={"mqtt": mqtt})
    return config


def with_broker(config: NodeConfig, url: str) -> NodeConfig:
    """``config`` publishing to the broker at ``url`` (``--broker`` overrides the file)."""
    mqtt = MqttSettings(url=url) if config.mqtt is None else config.mqtt.model_copy()
    mqtt = MqttSettings.model_validate({**mqtt.model_dump(), "url": url})
    return config.model_copy(update={"mqtt": mqtt})
