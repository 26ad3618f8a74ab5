"""Settings of the web console (the ``web:`` section of a node or centre configuration).

The console is served by the node or centre itself (``--http HOST:PORT``, see
``docs/console.md``). Everything the page shows comes from the service: the basemap from local
GeoJSON files, raster tiles (optional) from a local MBTiles file. Unknown keys are refused
(``extra="forbid"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Language = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")]


def parse_http(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as host and port; port 0 picks a free one.

    Raises:
        ValueError: not ``HOST:PORT``, or the port is not in 0..65535.
    """
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{value!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"{value!r}: the port must be 0..65535")
    return host, number


class WebSettings(BaseModel):
    """The web console: where it listens, what it shows besides the live picture, its bounds."""

    model_config = ConfigDict(extra="forbid")

    http: str | None = Field(
        default=None,
        description="HOST:PORT to serve the console on (port 0: a free one, logged); none: not "
        "served unless --http is given (the flag overrides this).",
    )
    basemap: list[Path] = Field(
        default_factory=list,
        description="Local GeoJSON files drawn under the picture (rivers, roads, places); each "
        "feature's properties.layer names its style (water, land, road, place). Relative "
        "paths are relative to the configuration file.",
    )
    mbtiles: Path | None = Field(
        default=None,
        description="Local MBTiles file of raster tiles (png or jpg) served at /tiles/z/x/y; "
        "none: no tiles, the page draws the basemap files only.",
    )
    border: Path | None = Field(
        default=None,
        description="Border GeoJSON shown on the map when the service has no border of its own "
        "(a centre); a node shows the border it watches.",
    )
    language: Language = Field(default="en", description="Language the page starts in.")
    languages: list[Language] | None = Field(
        default=None,
        description="Languages the operator may choose; none: every language the page was "
        "built with (static/i18n/index.json).",
    )
    operator: str | None = Field(
        default=None,
        max_length=64,
        description="Operator name the page fills in; none: each operator types theirs.",
    )
    history: int = Field(
        default=1000,
        ge=10,
        le=100_000,
        description="Alerts held in memory (newest kept; the centre's store keeps them all).",
    )
    trail_points: int = Field(
        default=60,
        ge=0,
        le=600,
        description="Positions kept per track for its trail on the map (about one a report).",
    )
    radar_range_m: float = Field(
        default=5000.0,
        gt=0.0,
        allow_inf_nan=False,
        description="Radius of a radar's coverage disc drawn on the map, m (display only).",
    )
    client_queue: int = Field(
        default=64,
        ge=4,
        le=100_000,
        description="Alert and reply frames waiting for one WebSocket client; beyond it the "
        "client is disconnected (it resynchronises on reconnect). Track frames are never "
        "queued: a slow client gets the latest only.",
    )
    send_timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        allow_inf_nan=False,
        description="A WebSocket send that takes longer, s, ends the client's connection.",
    )
    max_message_bytes: int = Field(
        default=65_536,
        ge=1024,
        description="Largest WebSocket message a client may send; larger ones close its "
        "connection (counted).",
    )
    max_clients: int = Field(
        default=100, ge=1, description="WebSocket clients served at once; more are refused."
    )
    health_interval_s: float = Field(
        default=5.0,
        gt=0.0,
        allow_inf_nan=False,
        description="Seconds between health frames to WebSocket clients.",
    )
    log_interval_s: float = Field(
        default=10.0,
        gt=0.0,
        allow_inf_nan=False,
        description="Each kind of bad client input is logged at most once in this many seconds "
        "(all are counted).",
    )

    @model_validator(mode="after")
    def _checked(self) -> Self:
        if self.http is not None:
            parse_http(self.http)
        if self.languages is not None and self.language not in self.languages:
            raise ValueError(f"language {self.language!r} is not in languages {self.languages}")
        return self

    def with_base(self, folder: Path) -> WebSettings:
        """These settings with relative file paths made absolute against ``folder``."""

        def absolute(path: Path) -> Path:
            return path if path.is_absolute() else folder / path

        return self.model_copy(
            update={
                "basemap": [absolute(p) for p in self.basemap],
                "mbtiles": None if self.mbtiles is None else absolute(self.mbtiles),
                "border": None if self.border is None else absolute(self.border),
            }
        )
