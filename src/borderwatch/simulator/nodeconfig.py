"""A node configuration that points at the simulator's served devices.

``borderwatch simulate SCENARIO --devices --out DIR`` writes ``DIR/node.yaml`` (and
``DIR/border.geojson``) so that ``borderwatch node --config DIR/node.yaml`` reads every simulated
device through its real transport with the scenario's frame, border and sensor noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from borderwatch.config.node import NodeConfig
from borderwatch.config.scenario import RadarSensorConfig, Scenario
from borderwatch.simulator.emulate import ServedDevice
from borderwatch.simulator.run import BORDER_FILE, Simulation, write_border

NODE_FILE = "node.yaml"


def _device_entry(scenario: Scenario, served: ServedDevice) -> dict[str, Any]:
    device = next(d for d in scenario.devices if d.sensor_id == served.sensor_id)
    entry: dict[str, Any] = {
        "type": served.type,
        "sensor_id": served.sensor_id,
        "url": served.address,
    }
    platform = next(
        (p for p in scenario.platforms if p.name == getattr(device, "platform", None)), None
    )
    if served.type == "ais" and platform is not None and platform.ais is not None:
        entry["own_mmsi"] = [platform.ais.mmsi]
    if served.type == "radar":
        radars = [
            s
            for s in scenario.sensors
            if isinstance(s, RadarSensorConfig)
            and s.mount.platform == getattr(device, "platform", None)
            and (getattr(device, "radar", None) in (None, s.id))
        ]
        if radars:
            entry["range_sigma_m"] = radars[0].sigma_range_m
            entry["bearing_sigma_deg"] = radars[0].sigma_bearing_deg
    if served.type == "senseair":
        entry["slave"] = getattr(device, "slave", 0xFE)
    return entry


def node_config_document(
    scenario: Scenario, served: Sequence[ServedDevice], node_id: str = "sim-node"
) -> dict[str, Any]:
    """The node configuration (as a YAML-ready dict) for the served devices of ``scenario``."""
    origin = scenario.origin
    return {
        "node_id": node_id,
        "simulated": True,
        "frame": {"lat_deg": origin.lat_deg, "lon_deg": origin.lon_deg, "alt_m": origin.alt_m},
        "border": BORDER_FILE,
        "devices": [_device_entry(scenario, s) for s in served],
    }


def write_node_config(
    out_dir: Path, sim: Simulation, served: Sequence[ServedDevice], node_id: str = "sim-node"
) -> Path:
    """Write ``node.yaml`` and ``border.geojson`` into ``out_dir``; returns the node file.

    The document is validated against :class:`NodeConfig` before it is written, so a
    scenario the node cannot read fails here, not when the node starts.
    """
    document = node_config_document(sim.scenario, served, node_id)
    NodeConfig.model_validate(document)
    write_border(out_dir / BORDER_FILE, sim)
    path = out_dir / NODE_FILE
    header = (
        f"# Node configuration for the simulated devices of scenario {sim.scenario.name!r}.\n"
        f"# Run: borderwatch node --config {path}\n"
    )
    path.write_text(header + yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path
