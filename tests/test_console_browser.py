"""The web console in a real browser against the real service.

The joint patrol exercise runs in a thread at 5x speed (two boat nodes and a mobile unit fed by
the simulator, a centre, all through a Mosquitto broker of this module's own), with the centre's
console served on loopback. Debian's Chromium (headless, driven by Playwright) opens the page
with every request routed: anything not on loopback is refused and fails the test. Screenshots
go to the test's temporary folder and to build/test-screenshots/.
"""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route, WebSocketRoute, sync_playwright

from borderwatch.bench_console import (
    LoopbackGuard,
    _frame_figures,
    _interval_figures,
    _latency_figures,
    _scenario,
    chromium_path,
    is_loopback,
    launch_chromium,
)
from borderwatch.edge.store import AlertStore
from tests.conftest import MosquittoBroker, _mosquitto_binary, free_port

if chromium_path() is None:
    pytest.skip("no chromium binary on PATH (Debian package chromium)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "src" / "borderwatch" / "edge" / "web" / "static"
SHOTS = ROOT / "build" / "test-screenshots"
#: Scenario seconds of the exercise (at 5x, 38 s of wall clock): crossings from ~50 s on.
DURATION_S = 190.0
SPEED = 5.0
OPERATOR = "officer-kovac"
#: Longest wait for something the service produces, s of wall clock.
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def console_built() -> None:
    """The page bundle, built with ``make web`` when it is missing."""
    if not (STATIC / "index.html").exists():
        subprocess.run(["make", "-C", str(ROOT), "web"], check=True)


@pytest.fixture(scope="module")
def service(
    console_built: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The exercise running with the centre's console on loopback: its URL and out folder."""
    from borderwatch.exercise import run_exercise

    broker = MosquittoBroker(_mosquitto_binary(), tmp_path_factory.mktemp("console-broker"))
    broker.start()
    out = tmp_path_factory.mktemp("console-exercise")
    port = free_port()
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            with (out / "exercise.log").open("w", encoding="utf-8") as stream:
                result["summary"] = run_exercise(
                    "joint-patrol-exercise",
                    out,
                    speed=SPEED,
                    duration_s=DURATION_S,
                    broker_url=broker.url,
                    stream=stream,
                    http=f"127.0.0.1:{port}",
                )
        except BaseException as exc:  # reported by the fixture
            result["error"] = exc

    thread = threading.Thread(target=run, name="exercise", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "api/config", timeout=2) as reply:
                config = json.load(reply)
            break
        except OSError:
            if "error" in result or time.monotonic() > deadline or not thread.is_alive():
                broker.stop()
                raise RuntimeError(f"the console did not start: {result.get('error')}") from None
            time.sleep(0.2)
    try:
        yield {"url": url, "out": out, "config": config}
    finally:
        thread.join(timeout=DURATION_S / SPEED + 60)
        broker.stop()
    assert "error" not in result, result.get("error")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as p:
        chromium = launch_chromium(p)
        try:
            yield chromium
        finally:
            chromium.close()


class Session:
    """A page of the console in a browser context of its own, with every request routed."""

    def __init__(self, browser: Any, url: str, width: int = 1280, height: int = 800) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.guard = LoopbackGuard()
        self.context.route("**/*", self.guard)
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.url = url

    def open(self) -> Page:
        self.page.goto(self.url)
        self.page.wait_for_selector("body[data-ready='1']")
        self.page.wait_for_function("() => window.borderwatch.connected")
        return self.page

    def shot(self, tmp_path: Path, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=tmp_path / f"{name}.png")
        shutil.copy(tmp_path / f"{name}.png", SHOTS / f"{name}.png")

    def close(self) -> None:
        self.context.close()
        assert self.guard.refused == [], f"requests off loopback: {self.guard.refused}"
        assert self.errors == [], f"errors in the page: {self.errors}"


@pytest.fixture(scope="module")
def session(browser: Any, service: dict[str, Any]) -> Iterator[Session]:
    """One page shared by the tests that follow the exercise in order."""
    s = Session(browser, service["url"])
    s.open()
    try:
        yield s
    finally:
        s.close()


def tracks(page: Page) -> dict[str, list[float]]:
    positions: dict[str, list[float]] = page.evaluate(
        "() => Object.fromEntries([...borderwatch.tracks].map(([id, t]) => [id, [t.lon, t.lat]]))"
    )
    return positions


def test_the_guard_lets_only_loopback_through() -> None:
    assert is_loopback("http://127.0.0.1:8080/static/app.js")
    assert is_loopback("ws://localhost:1/ws")
    assert is_loopback("http://[::1]:80/")
    assert is_loopback("data:image/png;base64,AAAA")
    assert not is_loopback("https://unpkg.com/leaflet/dist/leaflet.js")
    assert not is_loopback("http://tile.openstreetmap.org/1/1/1.png")
    assert not is_loopback("http://10.0.0.1/")


def test_bench_figures_from_frame_times() -> None:
    # 60 frames 16.7 ms apart, one of 100 ms: the slow 5 % shows in the p95
    times = [i * 16.7 for i in range(60)] + [59 * 16.7 + 100.0]
    figures = _frame_figures(times)
    assert figures["frames"] == 61
    assert 50 < figures["mean_fps"] < 60
    assert figures["max_frame_ms"] == 100.0
    assert _frame_figures([5.0])["mean_fps"] is None
    assert _interval_figures([0.0, 1000.0, 2100.0])["max_s"] == 1.1
    assert _latency_figures([]) == {"alerts": 0, "p50_ms": None, "p95_ms": None, "max_ms": None}
    assert _latency_figures([10.0, 30.0])["p50_ms"] == 20.0


def test_the_bench_scenario_scales_to_the_tracks_asked() -> None:
    scenario = _scenario(200, 50.0)
    assert sum(g.count for g in scenario.generate) == 200
    assert scenario.duration_s == 50.0


def test_the_page_loads_everything_from_the_service(
    session: Session, service: dict[str, Any], tmp_path: Path
) -> None:
    page = session.page
    assert page.title().endswith("borderwatch")
    assert service["config"]["role"] == "centre"
    assert "centre" in page.locator("#role").inner_text()
    requested = page.evaluate("() => performance.getEntriesByType('resource').map(e => e.name)")
    assert requested, "the page loaded nothing"
    assert all(is_loopback(u) for u in requested), requested
    # the border from /api/config is drawn: Leaflet's canvas renderer is on the map
    assert page.locator("#map canvas").count() >= 2
    assert session.guard.refused == []
    session.shot(tmp_path, "console-loaded")


def test_tracks_move_between_frames(session: Session, tmp_path: Path) -> None:
    page = session.page
    page.wait_for_function("() => borderwatch.tracks.size >= 3", timeout=WAIT_MS)
    before = tracks(page)
    frames = page.evaluate("() => borderwatch.trackFrames.length")
    page.wait_for_function(f"() => borderwatch.trackFrames.length >= {frames + 2}", timeout=WAIT_MS)
    after = tracks(page)
    moved = [i for i in before.keys() & after.keys() if before[i] != after[i]]
    assert moved, f"no track moved between frames: {before} -> {after}"
    assert page.evaluate("() => borderwatch.visible") > 0
    session.shot(tmp_path, "console-tracks")


def test_a_crossing_alert_appears_in_the_list(
    session: Session, service: dict[str, Any], tmp_path: Path
) -> None:
    page = session.page
    row = page.locator("#alert-list li[data-kind='crossing']").first
    row.wait_for(timeout=WAIT_MS * 2)
    alert_id = row.get_attribute("data-alert-id")
    with urllib.request.urlopen(service["url"] + "api/alerts", timeout=5) as reply:
        served = {
            f["properties"]["alert_id"]: f["properties"] for f in json.load(reply)["features"]
        }
    assert alert_id in served
    assert served[alert_id]["kind"] == "crossing"
    assert row.get_attribute("data-status") == served[alert_id]["status"]
    assert int(page.locator("#alert-count").inner_text()) >= 1
    session.shot(tmp_path, "console-alert")


def test_acknowledge_and_assign_reach_the_centre_store(
    session: Session, service: dict[str, Any], tmp_path: Path
) -> None:
    page = session.page
    row = page.locator("#alert-list li[data-status='open']").first
    row.wait_for(timeout=WAIT_MS)
    alert_id = row.get_attribute("data-alert-id")
    assert alert_id is not None
    row = page.locator(f"#alert-list li[data-alert-id='{alert_id}']")

    # without an operator name nothing is sent
    page.fill("#operator", "")
    row.locator("button[data-action='acknowledge']").click()
    assert page.locator("#toast").is_visible()
    assert row.get_attribute("data-status") == "open"

    page.fill("#operator", OPERATOR)
    row.locator("button[data-action='acknowledge']").click()
    page.wait_for_selector(f"li[data-alert-id='{alert_id}'][data-status='acknowledged']")

    row.locator("button[data-action='assign']").click()
    page.fill("#assignee", "patrol-7")
    page.click("#assign-ok")
    page.wait_for_selector(f"li[data-alert-id='{alert_id}'][data-status='assigned']")
    session.shot(tmp_path, "console-assigned")

    store = AlertStore.open(f"sqlite:///{service['out'] / 'centre.db'}")
    try:
        view = store.alert(alert_id)
        actions = store.actions(alert_id)
    finally:
        store.close()
    assert view is not None
    assert view.status == "assigned"
    assert view.acknowledged_by == OPERATOR
    assert view.assignee == "patrol-7"
    assert [(a.action, a.operator) for a in actions] == [
        ("acknowledge", OPERATOR),
        ("assign", OPERATOR),
    ]
    # the operator's name is remembered for the next visit
    assert page.evaluate("() => localStorage.getItem('borderwatch.operator')") == OPERATOR


def test_sound_is_allowed_after_a_tap_and_can_be_muted(session: Session) -> None:
    page = session.page
    button = page.locator("#sound")
    # the taps of the tests before unlocked audio (any tap does); a fresh page waits for one
    assert button.get_attribute("data-state") == "on"
    button.click()
    assert button.get_attribute("data-state") == "muted"
    assert page.evaluate("() => localStorage.getItem('borderwatch.muted')") == "1"
    button.click()
    assert button.get_attribute("data-state") == "on"


def test_languages_fall_back_to_english(browser: Any, service: dict[str, Any]) -> None:
    s = Session(browser, service["url"])

    def more_languages(route: Route) -> None:
        # the exercise's centre offers English only; offer what the bundle ships
        reply = route.fetch()
        config = reply.json()
        config["languages"] = ["en", "sq", "bs", "hr", "sr", "mk", "cnr"]
        route.fulfill(response=reply, json=config)

    s.context.route("**/api/config", more_languages)
    page = s.open()
    assert page.locator("#language option").count() == 7
    page.select_option("#language", "sq")
    page.wait_for_function("() => borderwatch.language === 'sq'")
    assert page.locator("label.field span[data-i18n='language']").inner_text() == "Gjuha"
    # a key the Albanian file does not have yet is shown in English
    assert page.locator("[role=tab][data-tab='alerts'] span[data-i18n]").inner_text() == "Alerts"
    # the choice is remembered
    page.reload()
    page.wait_for_function("() => window.borderwatch && borderwatch.language === 'sq'")
    s.close()


ALERT = {
    "type": "Feature",
    "id": "test:1",
    "geometry": {"type": "Point", "coordinates": [19.0, 42.0]},
    "properties": {
        "alert_id": "test:1",
        "kind": "crossing",
        "event": "new",
        "priority": "rescue",
        "border_kind": "blue",
        "direction": "left_to_right",
        "track_id": "test:7",
        "class": "person",
        "p_cross": 0.9,
        "status": "open",
        "raised_wall": 0.0,
    },
}


def test_malformed_frames_do_not_break_the_page_and_the_link_resyncs(
    browser: Any, service: dict[str, Any], tmp_path: Path
) -> None:
    routes: list[WebSocketRoute] = []

    def relay(ws: WebSocketRoute) -> None:
        ws.connect_to_server()
        routes.append(ws)

    s = Session(browser, service["url"])
    s.page.route_web_socket("**/ws", relay)
    page = s.open()
    page.wait_for_function("() => borderwatch.trackFrames.length >= 1", timeout=WAIT_MS)
    garbage = [
        "not json at all {",
        "[1, 2, 3]",
        json.dumps({"no": "type"}),
        json.dumps({"type": "tracks", "features": "lots"}),
        json.dumps(
            {
                "type": "tracks",
                "features": [
                    {"type": "Feature", "id": "x:1", "geometry": {"type": "Point"}},
                    {
                        "type": "Feature",
                        "id": "x:2",
                        "geometry": {"type": "Point", "coordinates": ["a", 1]},
                    },
                    {"id": "x:3", "geometry": {"type": "Point", "coordinates": [500, 95]}},
                    None,
                    7,
                ],
                "removed": "x",
            }
        ),
        json.dumps({"type": "alert", "feature": {"properties": None}}),
        json.dumps({"type": "alert"}),
        json.dumps({"type": "units", "features": [{"geometry": None}]}),
        json.dumps({"type": "health", "health": "bad"}),
        json.dumps({"type": "snapshot"}),
        json.dumps({"type": "surprise", "payload": [1e308, -1e308]}),
    ]
    for text in garbage:
        routes[0].send(text)
    page.wait_for_function("() => borderwatch.bad >= 10")
    bad = page.evaluate("() => borderwatch.bad")
    assert not any(i.startswith("x:") for i in tracks(page))
    # the page goes on: new frames are applied and tracks are drawn
    frames = page.evaluate("() => borderwatch.trackFrames.length")
    page.wait_for_function(f"() => borderwatch.trackFrames.length > {frames}", timeout=WAIT_MS)
    assert page.evaluate("() => borderwatch.tracks.size") > 0
    assert page.evaluate("() => borderwatch.bad") == bad

    # a well-formed alert still shows at once, and sounds once audio is allowed by a tap
    assert page.locator("#sound").get_attribute("data-state") == "locked"
    page.locator("#sound").click()
    page.wait_for_function("() => borderwatch.sound.state === 'on'")
    routes[0].send(json.dumps({"type": "alert", "server_time": time.time(), "feature": ALERT}))
    row = page.locator("li[data-alert-id='test:1']")
    row.wait_for()
    assert row.get_attribute("data-status") == "open"
    assert "RESCUE" in row.inner_text()
    # a rescue sounds even right after another alert's tone
    assert "test:1" in page.evaluate("() => borderwatch.sound.heard")

    # the link drops: the banner shows, the page reconnects and takes a fresh snapshot
    routes[0].close(code=1011, reason="test")
    page.wait_for_selector("#banner:not([hidden])")
    assert not page.evaluate("() => borderwatch.connected")
    faded = "() => getComputedStyle(document.querySelector('.leaflet-tracks-pane')).opacity"
    assert float(page.evaluate(faded)) < 1.0
    s.shot(tmp_path, "console-link-lost")
    page.wait_for_function("() => borderwatch.connected", timeout=WAIT_MS)
    page.wait_for_selector("#banner", state="hidden")
    assert float(page.evaluate(faded)) == 1.0
    assert len(routes) == 2
    page.wait_for_function(f"() => borderwatch.trackFrames.length > {frames + 1}", timeout=WAIT_MS)
    s.close()


def test_on_a_narrow_screen_the_list_folds_away(
    browser: Any, service: dict[str, Any], tmp_path: Path
) -> None:
    s = Session(browser, service["url"], width=600, height=900)
    page = s.open()
    assert not page.locator("#side").is_visible()
    page.click("#panel-toggle")
    page.wait_for_selector("#side", state="visible")
    page.wait_for_function(
        "() => getComputedStyle(document.getElementById('side')).transform === 'none'"
    )
    s.shot(tmp_path, "console-narrow")
    s.close()


# ----------------------------------------------------------------- a node with a local basemap

RIVER = [[19.30, 44.180], [19.34, 44.190], [19.38, 44.185]]
ZOOMS = range(11, 15)


def _tile_xy(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def _write_mbtiles(path: Path) -> int:
    """Raster tiles (a dark grid, PNG) over the river at zooms 11-14; returns how many."""
    import cv2
    import numpy as np

    tile = np.full((256, 256, 3), (40, 30, 20), dtype=np.uint8)
    tile[::32, :] = (90, 70, 50)
    tile[:, ::32] = (90, 70, 50)
    ok, png = cv2.imencode(".png", tile)
    assert ok
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
    db.execute(
        "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, "
        "tile_data BLOB)"
    )
    meta = {"name": "test", "format": "png", "minzoom": "11", "maxzoom": "14"}
    meta["attribution"] = "test grid"
    db.executemany("INSERT INTO metadata VALUES (?, ?)", list(meta.items()))
    count = 0
    for z in ZOOMS:
        x0, y1 = _tile_xy(19.28, 44.17, z)
        x1, y0 = _tile_xy(19.40, 44.20, z)
        for x in range(x0 - 2, x1 + 3):
            for y in range(y0 - 2, y1 + 3):
                tms = 2**z - 1 - y
                db.execute("INSERT INTO tiles VALUES (?, ?, ?, ?)", (z, x, tms, png.tobytes()))
                count += 1
    db.commit()
    db.close()
    return count


@pytest.fixture(scope="module")
def basemap_node(console_built: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``borderwatch node`` (no devices) serving its console with local GeoJSON and tiles."""
    folder = tmp_path_factory.mktemp("basemap-node")
    line = {"type": "LineString", "coordinates": RIVER}
    border = {"type": "Feature", "properties": {"kind": "blue", "name": "Drina"}, "geometry": line}
    (folder / "border.geojson").write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "borderwatch:frame": {"type": "wgs84"},
                "features": [border],
            }
        )
    )
    water = [[19.30, 44.178], [19.38, 44.183], [19.38, 44.187], [19.30, 44.182], [19.30, 44.178]]
    features = [
        {"type": "Feature", "properties": {"layer": "water", "name": "Drina"},
         "geometry": {"type": "Polygon", "coordinates": [water]}},
        {"type": "Feature", "properties": {"layer": "road", "name": "M19"},
         "geometry": {"type": "LineString", "coordinates": [[19.31, 44.20], [19.37, 44.17]]}},
        {"type": "Feature", "properties": {"layer": "place", "name": "Zvornik"},
         "geometry": {"type": "Point", "coordinates": [19.33, 44.195]}},
    ]  # fmt: skip
    (folder / "basemap.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features})
    )
    _write_mbtiles(folder / "tiles.mbtiles")
    (folder / "node.yaml").write_text(
        "node_id: tiles-node\n"
        "frame: {lat_deg: 44.185, lon_deg: 19.34, alt_m: 0}\n"
        "border: border.geojson\n"
        "devices: []\n"
        "web: {basemap: [basemap.geojson], mbtiles: tiles.mbtiles}\n"
    )
    port = free_port()
    with (folder / "node.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "borderwatch.cli", "node", "--config", str(folder / "node.yaml"),
             "--http", f"127.0.0.1:{port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "api/config", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((folder / "node.log").read_text()) from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_the_basemap_comes_from_local_files_and_the_service_tiles(
    browser: Any, basemap_node: str, tmp_path: Path
) -> None:
    s = Session(browser, basemap_node)
    tiles: list[tuple[str, int]] = []
    s.page.on("response", lambda r: tiles.append((r.url, r.status)) if "/tiles/" in r.url else None)
    page = s.open()
    assert page.locator("#role").inner_text() == "node tiles-node"
    page.wait_for_selector(".leaflet-tile-loaded")
    page.wait_for_selector(".place-label:text('Zvornik')")
    assert tiles, "no tile was asked for"
    assert all(u.startswith(basemap_node + "tiles/") for u, _ in tiles), tiles
    assert any(status == 200 for _, status in tiles)
    assert "test grid" in page.locator(".leaflet-control-attribution").inner_text()
    assert page.locator("#layers input[data-layer='tiles']").is_checked()
    # the map opens on the whole border (about 6 km): a few native tiles, not an overzoomed one
    assert page.evaluate("() => borderwatch.map.getZoom()") <= 14
    s.shot(tmp_path, "console-basemap")
    s.close()
