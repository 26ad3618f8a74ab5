"""The node's sensor stage: parsed device messages in, detections and platform updates out.

Each :class:`~borderwatch.drivers.base.Reading` is routed by its device's type:

``gps``
    updates the own-platform navigation estimate (position, velocity, heading) that places the
    boat's radar and cameras in the local frame, and is the node's own position report.
``radar``
    NMEA TTM targets become range-bearing detections from the radar's position (TLL: positions).
``ais``
    position reports become identified position detections (the MMSI rides along); static
    reports label the vessel; the node's own AIVDO reports are skipped (it does not track itself).
``gmp343`` / ``senseair``
    CO2 readings feed the device's inspection session, which may raise a concealment event.
``mqtt_detections``
    JSON detections from networked sensors, already in the wire schema.
``thermal_camera`` / ``nightvision_camera``
    frames go to the camera's :class:`~borderwatch.edge.camera.CameraStage` with the platform
    pose at the frame's time; its worker thread's detections are taken with the others, bearings
    through a :class:`~borderwatch.edge.camera.BearingPairer` (held up to 0.2 s for a partner).

The stage is synchronous and takes its time from the readings (reception time on the node's
time axis), so a recorded run replays to the same detections. Every message that produces
nothing says why in a per-sensor counter, which the node's health reports.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from borderwatch.config.devices import DeviceConfig, NightVisionCameraDevice, ThermalCameraDevice
from borderwatch.config.node import NodeConfig
from borderwatch.drivers.base import Reading
from borderwatch.errors import DetectionRejectedError
from borderwatch.fusion.detections import DetectionBatch
from borderwatch.fusion.frames import LocalFrame
from borderwatch.schema import Detection, detections_to_batch
from borderwatch.sensors.aisfeed import AisRegistry, ais_detections
from borderwatch.sensors.co2session import Co2SessionDetector, ConcealmentEvent
from borderwatch.sensors.navigation import NavigationEstimator, NavState
from borderwatch.sensors.radar import RadarSettings, radar_detections

if TYPE_CHECKING:
    from borderwatch.edge.camera import BearingPairer, CameraStage

log = logging.getLogger(__name__)

#: NMEA message kinds that describe the own platform.
NAV_KINDS = frozenset({"fix", "velocity", "heading", "accuracy", "dop"})
#: Radar targets received closer together than this belong to one burst (one scan's report),
#: converted with one platform state at the burst's last reception time, s.
RADAR_BURST_GAP_S = 0.05
#: Devices whose readings are camera frames.
CAMERA_DEVICES = (ThermalCameraDevice, NightVisionCameraDevice)
#: AIS message types that report a position.
AIS_POSITION_TYPES = frozenset({1, 2, 3, 18, 19, 27})


@dataclass(slots=True)
class SensorCounters:
    """What one sensor's messages became: detections, or a reason each one gave none."""

    messages: int = 0
    detections: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


class SensorStage:
    """Turns readings into detections (for the tracker), concealment events and a nav state.

    Args:
        config: the node's configuration (devices, CO2 session settings).
        frame: the deployment's local plane.
        epoch: the instant of ``t = 0`` on the node's time axis (reading times are seconds since
            the Unix epoch; the stage subtracts this).
    """

    def __init__(self, config: NodeConfig, frame: LocalFrame, epoch: datetime) -> None:
        self.frame = frame
        self.epoch = epoch.astimezone(UTC)
        self._epoch_s = self.epoch.timestamp()
        self.devices: dict[str, DeviceConfig] = {d.sensor_id: d for d in config.devices}
        #: Core sensor index of each sensor (its position in the configuration).
        self.sensor_index: dict[str, int] = {d.sensor_id: i for i, d in enumerate(config.devices)}
        self.nav = NavigationEstimator(frame)
        self.ais = AisRegistry()
        self.co2: dict[str, Co2SessionDetector] = {
            d.sensor_id: Co2SessionDetector(d.sensor_id, config.co2)
            for d in config.devices
            if d.type in ("gmp343", "senseair")
        }
        self.counters: dict[str, SensorCounters] = {s: SensorCounters() for s in self.devices}
        self._radar: dict[str, RadarSettings] = {
            d.sensor_id: RadarSettings(
                range_sigma_m=d.range_sigma_m,
                bearing_sigma_deg=d.bearing_sigma_deg,
                mount_offset_m=d.mount_offset_m,
                mount_yaw_deg=d.mount_yaw_deg,
            )
            for d in config.devices
            if d.type == "radar"
        }
        self.cameras: dict[str, CameraStage] = {}
        self._pairer: BearingPairer | None = None
        cameras = [d for d in config.devices if isinstance(d, CAMERA_DEVICES)]
        if cameras:
            from borderwatch.edge.camera import BearingPairer, CameraStage  # OpenCV only then

            self.cameras = {
                d.sensor_id: CameraStage(d, self.sensor_index[d.sensor_id], frame) for d in cameras
            }
            self._pairer = BearingPairer()
        self._batches: list[DetectionBatch] = []
        self._radar_pending: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        self._events: list[ConcealmentEvent] = []
        self.last_t: float | None = None

    def time_of(self, t_rx: float) -> float:
        """A reception time (Unix seconds) on the node's time axis."""
        return t_rx - self._epoch_s

    # ------------------------------------------------------------------ routing

    def handle(self, reading: Reading) -> None:
        """Route one reading; never raises for bad content (it is counted instead)."""
        counters = self.counters.get(reading.sensor_id)
        device = self.devices.get(reading.sensor_id)
        if counters is None or device is None:
            log.error("reading from unknown sensor %r dropped", reading.sensor_id)
            return
        counters.messages += 1
        t = self.time_of(reading.t_rx)
        self.last_t = t if self.last_t is None else max(self.last_t, t)
        data = reading.item.data
        kind = data.get("kind")
        reason: str | None
        if kind in NAV_KINDS:
            reason = self.nav.update(t, data) if device.type == "gps" else "not_navigation_source"
        elif kind == "radar_target" and device.type == "radar":
            reason = self._radar_target(reading.sensor_id, t, data)
        elif kind == "ais":
            reason = self._ais(reading.sensor_id, t, data)
        elif kind == "co2" and reading.sensor_id in self.co2:
            self._events.extend(self.co2[reading.sensor_id].update(t, float(data["ppm"])))
            reason = None
        elif kind == "detection":
            reason = self._networked(reading.sensor_id, data)
        elif kind == "frame" and reading.sensor_id in self.cameras:
            reason = self.cameras[reading.sensor_id].submit(t, data, self.nav.state(t))
        else:
            reason = f"unexpected_{kind}"
        if reason is not None:
            counters.skipped[reason] += 1

    def _add(self, sensor_id: str, batch: DetectionBatch, skipped: dict[str, int]) -> str | None:
        counters = self.counters[sensor_id]
        counters.skipped.update(skipped)
        if len(batch):
            self._batches.append(batch)
            counters.detections += len(batch)
        return None

    def _radar_target(self, sensor_id: str, t: float, data: dict[str, Any]) -> str | None:
        # A radar sends its targets in a burst once per scan: convert each burst in one call,
        # with one platform state, when the detections are taken.
        self._radar_pending.setdefault(sensor_id, []).append((t, data))
        return None

    def _flush_radar(self) -> None:
        for sensor_id, readings in self._radar_pending.items():
            start = 0
            for i in range(1, len(readings) + 1):
                if i < len(readings) and readings[i][0] - readings[i - 1][0] <= RADAR_BURST_GAP_S:
                    continue
                t = readings[i - 1][0]
                batch, skipped = radar_detections(
                    [data for _t, data in readings[start:i]],
                    t,
                    self.nav.state(t),
                    self._radar[sensor_id],
                    self.frame,
                    self.sensor_index[sensor_id],
                )
                self._add(sensor_id, batch, skipped)
                start = i
        self._radar_pending.clear()

    def _ais(self, sensor_id: str, t: float, data: dict[str, Any]) -> str | None:
        self.ais.update(data)
        if data.get("msg_type") not in AIS_POSITION_TYPES:
            return None
        if data.get("own"):
            # The node's own transponder (AIVDO): the platform is known from its GPS, not
            # tracked as a target. Other patrol boats (own MMSIs) are tracked and marked own.
            return "own_vessel"
        batch, skipped = ais_detections(
            [(t, data)], self.frame, self.sensor_index[sensor_id], utc_offset_s=self._epoch_s
        )
        return self._add(sensor_id, batch, skipped)

    def _networked(self, sensor_id: str, data: dict[str, Any]) -> str | None:
        # One payload (a single detection or a sensor's whole scan) is one conversion.
        messages = data.get("messages")
        if messages is None:
            messages = [data.get("message")]
        if not isinstance(messages, list) or not all(isinstance(m, Detection) for m in messages):
            return "malformed"
        mine = [m for m in messages if m.provenance.sensor_ids[0] == sensor_id]
        if len(mine) < len(messages):
            stray = next(m for m in messages if m.provenance.sensor_ids[0] != sensor_id)
            log.error(
                "%d detections (e.g. %s) on sensor %r's topic claim another sensor (%r); refused",
                len(messages) - len(mine),
                stray.msg_id,
                sensor_id,
                stray.provenance.sensor_ids[0],
            )
            # Counted per detection, as the scan's good ones are.
            self.counters[sensor_id].skipped["unknown_sensor"] += len(messages) - len(mine)
        if not mine:
            return None
        try:
            batch = detections_to_batch(
                mine, self.frame, {sensor_id: self.sensor_index[sensor_id]}, self.epoch
            )
        except DetectionRejectedError as exc:
            return exc.reason
        return self._add(sensor_id, batch, {})

    # ------------------------------------------------------------------ outputs

    def has_detections(self) -> bool:
        """Whether detections are waiting for :meth:`take_detections`."""
        return bool(
            self._batches
            or self._radar_pending
            or any(c.has_results() for c in self.cameras.values())
            or (self._pairer is not None and self._pairer.holding())
        )

    def take_detections(self) -> DetectionBatch:
        """Every detection made since the last call (radar bursts last)."""
        self._flush_radar()
        for sensor_id, camera in self.cameras.items():
            for batch in camera.take():
                self._add(sensor_id, batch, {})
        batches, self._batches = self._batches, []
        if self._pairer is None:
            return DetectionBatch.concat(batches)
        # Bearings of two cameras (or a camera and a partner's) that cross on one target.
        return self._pairer.take(DetectionBatch.concat(batches), self.last_t)

    def add_events(self, events: list[ConcealmentEvent]) -> None:
        """Queue concealment events raised outside :meth:`handle` (an officer ending a session)."""
        self._events.extend(events)

    def take_events(self) -> list[ConcealmentEvent]:
        """Concealment events raised since the last call."""
        events, self._events = self._events, []
        return events

    def nav_state(self, t: float) -> NavState | None:
        """The own-platform estimate predicted to ``t`` (None before the first fix)."""
        return self.nav.state(t)
