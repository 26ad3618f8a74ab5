"""What a node console and the centre console share: the live picture, the WebSocket hub, the
1 Hz frame and health ticks, the map layers from configuration, and the act contract.

Subclasses (:mod:`.node`, :mod:`.centre`) feed the picture from the service and carry out
operator actions; this class turns it into documents and frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from borderwatch.config.web import WebSettings
from borderwatch.edge.web.hub import ActMessage, Hub
from borderwatch.edge.web.models import ActBody
from borderwatch.edge.web.picture import (
    AlertRecord,
    LivePicture,
    TrackRows,
    dumps,
    feature_collection,
    iso,
)
from borderwatch.errors import BorderError
from borderwatch.fusion.borders import load_border
from borderwatch.fusion.frames import LocalFrame

log = logging.getLogger(__name__)

#: The page's bundle (``make web``).
STATIC_DIR: Final = Path(__file__).parent / "static"

#: Shortest time between two track or unit frames, s (the contract's 1 Hz).
FRAME_INTERVAL_S: Final = 1.0

Role = Literal["node", "centre"]


class ActOutcome:
    """The answer to an operator action: HTTP status and the ``{ok, alert, error}`` body."""

    __slots__ = ("body", "status")

    def __init__(self, status: int, alert: dict[str, Any] | None, error: str | None) -> None:
        self.status = status
        self.body: dict[str, Any] = {"ok": status == 200, "alert": alert, "error": error}


class Console:
    """Base of the node and centre consoles.

    Args:
        role: ``node`` or ``centre``.
        service_id: the node or centre id.
        settings: the ``web:`` settings.
        frame: the deployment's local plane (map centre, border conversion).
        clock: the service's clock, Unix seconds (action and health times).
    """

    def __init__(
        self,
        role: Role,
        service_id: str,
        settings: WebSettings,
        frame: LocalFrame,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.role: Role = role
        self.id = service_id
        self.settings = settings
        self.frame = frame
        self.clock = clock
        # Wall-clock stamps (raised_wall, server_time) are real Unix time even when the
        # service runs on a clock of its own (the exercise's runs fast): a page compares them
        # with its own clock.
        self.wall = time.time
        self.started = clock()
        self.picture = LivePicture(trail_points=settings.trail_points, history=settings.history)
        self.hub = Hub(
            capacity=settings.client_queue,
            send_timeout_s=settings.send_timeout_s,
            max_clients=settings.max_clients,
            log_interval_s=settings.log_interval_s,
        )
        self.errors: dict[str, int] = {}
        self.frame_ms = 0.0
        self.frame_ms_max = 0.0
        self._tracks_dirty = False
        self._units_dirty = False
        self._layers: dict[str, Any] | None = None
        self._tiles: dict[str, Any] | Literal[False] | None = False

    # ----------------------------------------------------------------- for subclasses

    def track_rows(self) -> TrackRows | None:
        """The latest table of tracks when it changed since the last call (None otherwise)."""
        return None

    def broker(self) -> dict[str, Any]:
        """``{"url", "connected"}`` of the service's broker link."""
        return {"url": None, "connected": False}

    def node_states(self) -> list[dict[str, Any]]:
        """NodeState JSON of the nodes this service knows."""
        return []

    def flags(self) -> tuple[bool, bool]:
        """(exercise, simulated)."""
        return False, False

    def border_geojson(self) -> dict[str, Any]:
        """Border lines in lat/lon; default: the ``web.border`` file, if any."""
        if self.settings.border is None:
            return {"type": "FeatureCollection", "features": []}
        return border_lines(self.settings.border, self.frame)

    def sensors_geojson(self) -> dict[str, Any]:
        """Sensor fields of view."""
        return {"type": "FeatureCollection", "features": []}

    def extra_health(self) -> dict[str, int]:
        """More console counters."""
        return {}

    async def act(self, verb: str, alert_id: str, body: ActBody) -> ActOutcome:
        """Carry out an operator action."""
        raise NotImplementedError

    async def history(self, limit: int, before: datetime | None) -> list[dict[str, Any]]:
        """Alert properties, newest first (default: what the picture holds)."""
        return [r.properties() for r in self.picture.history_page(limit, before)]

    # ----------------------------------------------------------------- to subclasses

    def mark_tracks(self) -> None:
        """New tracks are waiting: the next tick makes a frame of them."""
        self._tracks_dirty = True

    def mark_units(self) -> None:
        """Own positions changed: the next tick sends them."""
        self._units_dirty = True

    def alert_changed(self, record: AlertRecord) -> None:
        """Send an alert frame at once."""
        self.hub.urgent(self.alert_frame(record))

    def count(self, what: str) -> None:
        """Count one console error."""
        self.errors[what] = self.errors.get(what, 0) + 1

    # ----------------------------------------------------------------------- documents

    def alert_frame(self, record: AlertRecord) -> str:
        """The WebSocket ``alert`` frame of a record."""
        return dumps(
            {"type": "alert", "feature": record.feature(), "server_time": round(self.wall(), 3)}
        )

    def tracks_json(self) -> str:
        """``GET /api/tracks``."""
        return self.picture.tracks_collection()

    def units_json(self) -> str:
        """``GET /api/units``."""
        return feature_collection(dumps(f) for f in self.picture.unit_features())

    def alerts_json(self) -> str:
        """``GET /api/alerts``."""
        now = self.wall()
        return feature_collection(dumps(r.feature()) for r in self.picture.current_alerts(now))

    def health(self) -> dict[str, Any]:
        """``GET /api/health``."""
        now = self.clock()
        stats = self.hub.stats
        errors = dict(stats.ws_errors)
        for key, value in self.errors.items():
            errors[key] = errors.get(key, 0) + value
        return {
            "role": self.role,
            "id": self.id,
            "time": iso(datetime.fromtimestamp(now, UTC)),
            "uptime_s": round(max(0.0, now - self.started), 1),
            "broker": self.broker(),
            "nodes": self.node_states(),
            "console": {
                "clients": len(self.hub.clients),
                "ws_errors": sum(errors.values()),
                "errors": errors,
                "frames_sent": stats.frames_sent,
                "track_frames_dropped": stats.track_frames_dropped,
                "clients_overflowed": stats.clients_overflowed,
                "tracks": len(self.picture.track_json),
                "frame_ms": round(self.frame_ms, 2),
                "frame_ms_max": round(self.frame_ms_max, 2),
                **self.extra_health(),
            },
        }

    def config(self) -> dict[str, Any]:
        """``GET /api/config``."""
        exercise, simulated = self.flags()
        layers = self._static_layers()
        return {
            "role": self.role,
            "id": self.id,
            "exercise": exercise,
            "simulated": simulated,
            "center": [self.frame.lon_deg, self.frame.lat_deg],
            "language": self.settings.language,
            "languages": self.languages(),
            "operator": self.settings.operator,
            "border": layers["border"],
            "basemap": layers["basemap"],
            "tiles": self.tiles_info(),
            "sensors": self.sensors_geojson(),
        }

    def languages(self) -> list[str]:
        """The configured languages, or those the page's bundle has (with the default)."""
        if self.settings.languages is not None:
            return self.settings.languages
        try:
            built = json.loads((STATIC_DIR / "i18n" / "index.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            built = []
        names = {x for x in built if isinstance(x, str)} if isinstance(built, list) else set()
        return sorted(names | {self.settings.language})

    def _static_layers(self) -> dict[str, Any]:
        if self._layers is None:
            try:
                border = self.border_geojson()
            except (BorderError, OSError, ValueError) as exc:
                self.count("border")
                log.error("console: border not shown: %s", exc)
                border = {"type": "FeatureCollection", "features": []}
            self._layers = {"border": border, "basemap": basemap(self.settings.basemap)}
        return self._layers

    def tiles_info(self) -> dict[str, Any] | None:
        """The ``tiles`` object of the config (None without a readable MBTiles file)."""
        if self._tiles is False:
            self._tiles = mbtiles_info(self.settings.mbtiles)
        return self._tiles

    def tile(self, z: int, x: int, y: int) -> tuple[bytes, str] | None:
        """A tile's bytes and media type from the MBTiles file, or None."""
        info = self.tiles_info()
        if info is None or self.settings.mbtiles is None:
            return None
        return read_tile(self.settings.mbtiles, z, x, y, info["format"])

    def greeting(self) -> list[str]:
        """The first frames to a new WebSocket client: hello, then the snapshot."""
        now = round(self.wall(), 3)
        hello = dumps({"type": "hello", "role": self.role, "id": self.id, "server_time": now})
        snapshot = (
            f'{{"type":"snapshot","tracks":{self.tracks_json()},"units":{self.units_json()},'
            f'"alerts":{self.alerts_json()},"health":{dumps(self.health())}}}'
        )
        return [hello, snapshot]

    async def ws_act(self, message: ActMessage) -> dict[str, Any]:
        """An act message from a WebSocket client; never raises."""
        try:
            body = ActBody(operator=message.operator, assignee=message.assignee, note=message.note)
            outcome = await self.act(message.verb, message.alert_id, body)
        except Exception as exc:  # a console fault must not end the connection
            self.count("act_failed")
            log.exception("console: action on %s failed", message.alert_id)
            return {"ok": False, "alert": None, "error": f"internal error: {exc}"}
        return outcome.body

    # --------------------------------------------------------------------------- ticks

    async def run(self) -> None:
        """Send track and unit frames (at most 1 Hz) and health frames until cancelled."""
        loop = asyncio.get_running_loop()
        next_health = loop.time() + self.settings.health_interval_s
        while True:
            await asyncio.sleep(FRAME_INTERVAL_S)
            try:
                self.tick()
                if loop.time() >= next_health:
                    next_health = loop.time() + self.settings.health_interval_s
                    self.hub.latest("health", dumps({"type": "health", "health": self.health()}))
            except Exception:  # a bad table must not end the console
                self.count("frame_failed")
                log.exception("console: frame not made")

    def tick(self) -> None:
        """Make and send the frames due now (tracks, units)."""
        started = time.perf_counter()
        rows = self.track_rows() if self._tracks_dirty else None
        self._tracks_dirty = False
        if rows is not None:
            frame = self.picture.set_tracks(rows)
            self.hub.tracks(frame)
            # Event-loop time of one tracks frame: the conversion, the features, the text.
            self.frame_ms = 1e3 * (time.perf_counter() - started)
            self.frame_ms_max = max(self.frame_ms_max, self.frame_ms)
        if self._units_dirty:
            self._units_dirty = False
            features = self.picture.unit_features()
            self.hub.latest("units", dumps({"type": "units", "features": features}))


# ------------------------------------------------------------------------------ map layers


def border_lines(path: Path, frame: LocalFrame) -> dict[str, Any]:
    """A border file's lines as WGS-84 LineStrings with ``kind`` and ``name``."""
    border = load_border(path, frame)
    doc = border.to_geojson(frame)
    features = []
    for feature in doc["features"]:
        xy = np.asarray(feature["geometry"]["coordinates"], dtype=np.float64)
        latlon = frame.to_wgs84(xy)
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "kind": feature["properties"]["kind"],
                    "name": feature["properties"]["name"] or "",
                },
                "geometry": {
                    "type": "LineString",
                    "coordinates": np.round(latlon[:, ::-1], 7).tolist(),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def basemap(paths: list[Path]) -> dict[str, Any]:
    """The features of the basemap GeoJSON files; unreadable files are logged and skipped."""
    features: list[dict[str, Any]] = []
    for path in paths:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.error("console: basemap %s not shown: %s", path, exc)
            continue
        if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
            items = doc.get("features") or []
        elif isinstance(doc, dict) and doc.get("type") == "Feature":
            items = [doc]
        else:
            log.error("console: basemap %s is not a GeoJSON Feature(Collection)", path)
            continue
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("geometry"), dict):
                given = item.get("properties")
                props: dict[str, Any] = given if isinstance(given, dict) else {}
                features.append(
                    {
                        "type": "Feature",
                        "geometry": item["geometry"],
                        "properties": {
                            "layer": str(props.get("layer", "land")),
                            "name": str(props.get("name", "")),
                        },
                    }
                )
    return {"type": "FeatureCollection", "features": features}


def mbtiles_info(path: Path | None) -> dict[str, Any] | None:
    """The ``tiles`` object for an MBTiles file (None when absent or unreadable)."""
    if path is None:
        return None
    try:
        with _mbtiles(path) as db:
            meta = dict(db.execute("SELECT name, value FROM metadata").fetchall())
            zooms = db.execute("SELECT min(zoom_level), max(zoom_level) FROM tiles").fetchone()
    except (sqlite3.Error, OSError) as exc:
        log.error("console: tiles %s not served: %s", path, exc)
        return None
    fmt = str(meta.get("format", "png")).lower()
    fmt = "jpg" if fmt in ("jpg", "jpeg") else "png"
    return {
        "url": "/tiles/{z}/{x}/{y}",
        "minzoom": int(meta.get("minzoom", zooms[0] if zooms[0] is not None else 0)),
        "maxzoom": int(meta.get("maxzoom", zooms[1] if zooms[1] is not None else 0)),
        "format": fmt,
        "attribution": str(meta.get("attribution", "")),
    }


def read_tile(path: Path, z: int, x: int, y: int, fmt: str) -> tuple[bytes, str] | None:
    """One tile (XYZ numbering; MBTiles rows are TMS, flipped) or None."""
    if not (0 <= z <= 30 and 0 <= x < 2**z and 0 <= y < 2**z):
        return None
    try:
        with _mbtiles(path) as db:
            row = db.execute(
                "SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?",
                (z, x, (2**z - 1) - y),
            ).fetchone()
    except (sqlite3.Error, OSError) as exc:
        log.error("console: tile %d/%d/%d not read: %s", z, x, y, exc)
        return None
    if row is None:
        return None
    return bytes(row[0]), "image/jpeg" if fmt == "jpg" else "image/png"


def _mbtiles(path: Path) -> contextlib.closing[sqlite3.Connection]:
    """The MBTiles file, read-only (a missing file is an error, not a new database)."""
    return contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True))
