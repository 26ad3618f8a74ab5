"""``borderwatch bench node``: CPU a node needs for a boat's devices, on one core.

The load is the one a patrol boat's node must carry: GPS at 10 Hz, AIS at 50 messages/s
(100 vessels reporting every 2 s) and a radar reporting 200 targets once a second. The simulator
serves those devices as real byte streams on pseudo-terminals; ``borderwatch node`` runs in its
own process (pinned to one core) reading them, and its CPU time (user + system, from
``/proc/<pid>/stat``) is measured over the run after a warm-up. The emulator runs in this
process, so its work is not counted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np

from borderwatch.config.scenario import Scenario
from borderwatch.schema import NodeState, parse_message
from borderwatch.simulator.devices import device_streams
from borderwatch.simulator.emulate import DeviceEmulator
from borderwatch.simulator.nodeconfig import write_node_config
from borderwatch.simulator.run import simulate

#: The load named in the issue: GPS 10 Hz, AIS 50 msg/s, radar 1 Hz with 200 targets.
GPS_HZ = 10.0
AIS_VESSELS = 100
AIS_INTERVAL_S = 2.0
RADAR_TARGETS = 200
WARMUP_S = 10.0


def load_scenario_document(duration_s: float, seed: int = 11) -> dict[str, Any]:
    """A scenario with the benchmark's device load (half the radar targets carry AIS)."""
    rng = np.random.default_rng(seed)
    targets = []
    for i in range(AIS_VESSELS):
        start = rng.uniform(-3000, 3000, 2)
        heading = rng.uniform(0, 2 * np.pi)
        end = start + 3000 * np.array([np.sin(heading), np.cos(heading)])
        targets.append(
            {
                "id": f"vessel-{i}",
                "class": "boat",
                "motion": {
                    "type": "waypoints",
                    "speed_mps": float(rng.uniform(2, 6)),
                    "points": [start.round(1).tolist(), end.round(1).tolist()],
                },
                "ais": {
                    "mmsi": 279_100_000 + i,
                    "class": "A",
                    "interval_s": AIS_INTERVAL_S,
                    "name": f"VESSEL {i}",
                },
            }
        )
    return {
        "name": "bench-node-load",
        "seed": seed,
        "duration_s": duration_s,
        "origin": {"lat_deg": 44.187, "lon_deg": 19.335, "alt_m": 180},
        "border": [{"name": "river", "kind": "blue", "points": [[-6000, 0], [6000, 0]]}],
        "platforms": [
            {
                "name": "patrol-boat",
                "speed_mps": 4.0,
                "points": [[-1000, -200], [1000, -200]],
                "gps": {"rate_hz": GPS_HZ, "heading_sensor": True},
                "ais": {"mmsi": 279_000_007, "class": "A", "interval_s": 6, "name": "POLICIJA 7"},
            }
        ],
        "targets": targets,
        "generate": [
            {
                "name": "dark",
                "count": RADAR_TARGETS - AIS_VESSELS,
                "class": "boat",
                "speed_mps": [1.0, 5.0],
                "heading": "random",
                "region": [-3500, -3500, 3500, 3500],
            }
        ],
        "sensors": [
            {
                "id": "boat-radar",
                "type": "radar",
                "mount": {"platform": "patrol-boat"},
                "fov": {"max_range_m": 20000},
                "sigma_range_m": 10,
                "sigma_bearing_deg": 0.8,
                "pd": 1.0,
                "clutter_rate": 0,
                "update_interval_s": 1.0,
            }
        ],
        "devices": [
            {"sensor_id": "boat-gps", "type": "gps", "platform": "patrol-boat"},
            {"sensor_id": "boat-ais", "type": "ais", "platform": "patrol-boat"},
            {
                "sensor_id": "boat-radar",
                "type": "radar",
                "platform": "patrol-boat",
                "bearing": "relative",
            },
        ],
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _last_state(record: Path) -> NodeState | None:
    state = None
    if record.exists():
        for line in record.read_text(encoding="utf-8").splitlines():
            if '"node_state"' in line:
                message = parse_message(line)
                if isinstance(message, NodeState):
                    state = message
    return state


def run_node_bench(
    seconds: float = 60.0, progress: Callable[[str], None] = lambda msg: None
) -> dict[str, Any]:
    """Serve the load for ``WARMUP_S + seconds`` and measure the node's CPU over ``seconds``."""
    import asyncio

    duration = WARMUP_S + seconds
    scenario = Scenario.model_validate(load_scenario_document(duration + 5.0))
    sim = simulate(scenario)
    streams = device_streams(sim, datetime.now(UTC))
    with TemporaryDirectory(prefix="borderwatch-bench-node-") as tmp:
        out = Path(tmp)
        record = out / "record.jsonl"
        with DeviceEmulator(streams, out, speed=1.0, until_s=duration + 5.0) as emulator:
            config = write_node_config(out, sim, emulator.served, node_id="bench-node")
            env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
            profile = os.environ.get("BORDERWATCH_BENCH_PROFILE")
            python = [sys.executable] + (["-m", "cProfile", "-o", profile] if profile else [])
            command = [*python, "-m", "borderwatch.cli", "node", "--config", str(config)]
            command += ["--record", str(record)]
            node = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
            with contextlib.suppress(AttributeError, OSError):  # not every OS pins
                os.sched_setaffinity(node.pid, {min(os.sched_getaffinity(0))})
            measured: dict[str, float] = {}

            async def serve() -> None:
                task = asyncio.create_task(emulator.serve())
                await asyncio.sleep(WARMUP_S)
                progress(f"warm-up done; measuring the node for {seconds:g} s")
                measured["cpu0"], measured["t0"] = _cpu_seconds(node.pid), time.monotonic()
                await asyncio.sleep(seconds)
                measured["cpu1"], measured["t1"] = _cpu_seconds(node.pid), time.monotonic()
                emulator.stop()
                await task

            try:
                asyncio.run(serve())
            finally:
                node.send_signal(signal.SIGTERM)
                node.wait(timeout=30)
        state = _last_state(record)
    wall = measured["t1"] - measured["t0"]
    cpu = measured["cpu1"] - measured["cpu0"]
    counters = emulator.counters
    sent = {
        k: {"chunks": v.chunks, "overflow_chunks": v.overflow_chunks} for k, v in counters.items()
    }
    result: dict[str, Any] = {
        "seconds": round(wall, 1),
        "cpu_percent_of_one_core": round(100.0 * cpu / wall, 1),
        "load": {
            "gps_hz": GPS_HZ,
            "ais_msgs_per_s": AIS_VESSELS / AIS_INTERVAL_S,
            "radar_targets_per_s": RADAR_TARGETS,
        },
        "sent": sent,
    }
    if state is not None:
        result["node"] = {
            "messages_received": state.messages_received,
            "errors": state.errors,
            "error_counts": state.error_counts,
            "sensors": {
                s.sensor_id: {
                    "messages": s.messages,
                    "detections": s.detections,
                    "errors": s.errors,
                }
                for s in state.sensors
            },
        }
    result["text"] = (
        f"node CPU: {result['cpu_percent_of_one_core']:.1f} % of one core over {wall:.0f} s "
        f"(GPS {GPS_HZ:g} Hz, AIS {AIS_VESSELS / AIS_INTERVAL_S:g} msg/s, radar "
        f"{RADAR_TARGETS} targets at 1 Hz; target < 20 %)\n" + json.dumps(result.get("node", {}))
    )
    return result
