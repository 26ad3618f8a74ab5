"""A scenario's truth seen by a camera at a fixed site, rendered to frame files.

``borderwatch render SCENARIO --out DIR --at E N HEADING`` samples the scenario's targets at
the camera's frame rate, renders each frame (:mod:`borderwatch.simulator.render`) and writes:

* thermal: ``DIR/frame_000000.png`` … (16-bit Y16 PNG, 0.01 K per count);
* night vision: ``DIR/frames.avi`` (8-bit MJPG);
* ``DIR/truth_pixels.csv``: ``frame,t,truth_id,cls,u0,v0,u1,v1,visible``, each live
  target's box in each frame (float pixels), for scoring detections against truth.

The camera's intrinsics and mount come from a ``--camera`` file (as for
``borderwatch detect``), else a 640×512, 24° camera 3 m up, level. Frames are a pure function
of the scenario, the seed and the camera: the same arguments write the same bytes.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from borderwatch.config.camera import load_camera_file
from borderwatch.config.scenario import Scenario
from borderwatch.fusion.detections import TargetClass
from borderwatch.sensors.camera.detect import geometry_of
from borderwatch.sensors.camera.geometry import CameraIntrinsics, CameraMount, PlatformPose
from borderwatch.simulator.render import (
    RenderTarget,
    render_nightvision,
    render_thermal,
    target_boxes,
    write_video,
    write_y16_sequence,
)
from borderwatch.simulator.run import border_of
from borderwatch.simulator.truth import build_targets, stream, truth_table

__all__ = ["CameraView", "render_scenario"]

#: ``spawn_key`` domain of the rendering noise (after the simulator's own streams).
RENDER_STREAM = 7
TRUTH_PIXEL_COLUMNS = ("frame", "t", "truth_id", "cls", "u0", "v0", "u1", "v1", "visible")
_CLASS_NAME = {
    TargetClass.PERSON: "person",
    TargetClass.BOAT: "boat",
    TargetClass.VEHICLE: "vehicle",
    TargetClass.UNKNOWN: "person",
}


@dataclass(frozen=True)
class CameraView:
    """A camera at a fixed site: intrinsics, mount and pose."""

    intr: CameraIntrinsics
    mount: CameraMount
    pose: PlatformPose

    @classmethod
    def from_file(cls, camera: Path | None, pose: PlatformPose) -> CameraView:
        """The camera of a ``--camera`` file (its intrinsics and mount), else the default."""
        geometry = None
        if camera is not None:
            geometry = geometry_of(load_camera_file(camera).detector)
        if geometry is None:
            geometry = (CameraIntrinsics.from_fov(640, 512, 24.0), CameraMount(height_m=3.0))
        return cls(geometry[0], geometry[1], pose)


def render_scenario(
    scenario: Scenario,
    view: CameraView,
    out: Path,
    kind: Literal["thermal", "nightvision"] = "thermal",
    fps: float = 10.0,
    start_s: float = 0.0,
    duration_s: float | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Render the scenario's targets as the camera sees them into ``out``; a summary."""
    seed = scenario.seed if seed is None else seed
    end = (
        scenario.duration_s
        if duration_s is None
        else min(scenario.duration_s, start_s + duration_s)
    )
    times = np.arange(start_s, end + 1e-9, 1.0 / fps)
    targets = build_targets(scenario, border_of(scenario), seed)
    table = truth_table(targets, times)
    rng = stream(seed, RENDER_STREAM)
    out.mkdir(parents=True, exist_ok=True)
    boxes_rows: list[list[object]] = []

    def frames() -> Iterator[NDArray[Any]]:
        for k, t in enumerate(times):
            rows = table.rows_at(float(t))
            scene = [
                RenderTarget(float(x), float(y), _CLASS_NAME[TargetClass(int(c))])
                for (x, y), c in zip(table.xy[rows], table.cls[rows], strict=True)
            ]
            boxes, visible, _r = target_boxes(scene, view.intr, view.mount, view.pose)
            for i, tid in enumerate(table.truth_id[rows]):
                u0, v0, u1, v1 = (round(float(b), 2) for b in boxes[i])
                boxes_rows.append(
                    [
                        k,
                        round(float(t), 3),
                        targets[int(tid)].id,
                        scene[i].cls,
                        u0,
                        v0,
                        u1,
                        v1,
                        int(visible[i]),
                    ]
                )
            if kind == "thermal":
                yield render_thermal(scene, view.intr, view.mount, view.pose, rng)
            else:
                yield render_nightvision(scene, view.intr, view.mount, view.pose, rng)

    if kind == "thermal":
        written = len(write_y16_sequence(frames(), out))
        output = str(out / "frame_%06d.png")
    else:
        written = write_video(frames(), out / "frames.avi", fps=fps)
        output = str(out / "frames.avi")
    with (out / "truth_pixels.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(TRUTH_PIXEL_COLUMNS)
        writer.writerows(boxes_rows)
    visible_rows = sum(int(r[-1]) for r in boxes_rows)  # type: ignore[call-overload]
    return {
        "frames": written,
        "kind": kind,
        "output": output,
        "truth_pixels": str(out / "truth_pixels.csv"),
        "targets_in_view": visible_rows,
        "seed": seed,
    }
