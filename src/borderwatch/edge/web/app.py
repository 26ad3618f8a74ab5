"""The console's HTTP and WebSocket routes (FastAPI); documents are described in
:mod:`.models` and ``docs/console.md``.

No route loads anything from outside the service: the Swagger and ReDoc pages (which would
load a CDN) are disabled; ``/openapi.json`` stays.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

from borderwatch import __version__
from borderwatch.edge.web.console import STATIC_DIR, Console
from borderwatch.edge.web.models import (
    ActBody,
    ActResult,
    AlertCollection,
    AlertHistory,
    ConsoleConfig,
    Health,
    TrackCollection,
    UnitCollection,
)

log = logging.getLogger(__name__)

Verb = Literal["acknowledge", "assign", "close"]


class _JsonText(Response):
    media_type = "application/json"


def _json(text: str) -> Response:
    return _JsonText(text, headers={"Cache-Control": "no-store"})


def create_app(console: Console, static_dir: Path = STATIC_DIR) -> FastAPI:
    """The console's application, serving ``console``'s picture."""
    app = FastAPI(
        title=f"borderwatch {console.role} console",
        version=__version__,
        description="Live picture of a borderwatch node or centre (docs/console.md).",
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> Response:
        # A fault behind a request (the store, a bad table) is one error answer, counted.
        console.count("internal")
        log.error("console: %s %s failed: %r", request.method, request.url.path, exc)
        return JSONResponse({"ok": False, "alert": None, "error": "internal error"}, 500)

    @app.get("/", include_in_schema=False, response_model=None)
    def index() -> Response:
        page = static_dir / "index.html"
        if not page.is_file():
            return PlainTextResponse("console not built: run make web", status_code=503)
        return FileResponse(page, headers={"Cache-Control": "no-cache"})

    if static_dir.is_dir():
        app.mount("/static", StaticFiles(directory=static_dir), name="static")

    @app.get("/api/config", response_model=ConsoleConfig)
    def config() -> Any:
        """What the page needs to start: role, map centre, border, basemap, tiles, sensors."""
        return JSONResponse(console.config())

    @app.get("/api/tracks", response_model=TrackCollection)
    async def tracks() -> Any:
        """Every track as a GeoJSON FeatureCollection (one Point per track)."""
        return _json(console.tracks_json())

    @app.get("/api/units", response_model=UnitCollection)
    async def units() -> Any:
        """Own units (nodes' positions)."""
        return _json(console.units_json())

    @app.get("/api/alerts", response_model=AlertCollection)
    async def alerts() -> Any:
        """Current alerts: not closed, or closed less than ten minutes ago."""
        return _json(console.alerts_json())

    @app.get("/api/alerts/history", response_model=AlertHistory)
    async def history(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[datetime | None, Query(description="ISO 8601 time")] = None,
    ) -> Any:
        """Alerts newest first (centre: from its store; node: held since its start); a
        ``before`` without a zone is UTC."""
        if before is not None and before.tzinfo is None:
            before = before.replace(tzinfo=UTC)
        return JSONResponse({"alerts": await console.history(limit, before)})

    @app.get("/api/health", response_model=Health)
    async def health() -> Any:
        """The service's health: broker link, nodes, console counters."""
        return JSONResponse(console.health())

    @app.post(
        "/api/alerts/{alert_id}/{verb}",
        response_model=ActResult,
        responses={404: {"model": ActResult}, 409: {"model": ActResult}},
    )
    async def act(alert_id: str, verb: Verb, body: ActBody) -> Any:
        """Acknowledge, assign or close an alert (404 unknown, 409 not allowed now)."""
        outcome = await console.act(verb, alert_id, body)
        return JSONResponse(outcome.body, status_code=outcome.status)

    @app.get(
        "/tiles/{z}/{x}/{y}",
        response_class=Response,
        responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}, 404: {}},
    )
    def tile(z: int, x: int, y: str) -> Response:
        """A raster tile from the local MBTiles file (XYZ numbering)."""
        row, _, suffix = y.partition(".")
        good = row.isdigit() and suffix in ("", "png", "jpg", "jpeg")
        found = console.tile(z, x, int(row)) if good else None
        if found is None:
            return Response(status_code=404)
        data, media_type = found
        return Response(data, media_type=media_type, headers={"Cache-Control": "max-age=3600"})

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        # A page of another site open in the operator's browser must not act on alerts: a
        # browser names the page's origin, which must be this service (tools send none).
        origin = websocket.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != websocket.headers.get("host"):
            console.hub.error("origin", "WebSocket from origin %r refused", origin[:100])
            await websocket.close(code=1008)
            return
        await console.hub.serve(websocket, console.greeting(), console.ws_act)

    return app
