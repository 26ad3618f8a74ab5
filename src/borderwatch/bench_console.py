"""``borderwatch bench console``: the web console's speed in a real browser.

The service is a real node (:class:`~borderwatch.edge.node.Node` with its
:class:`~borderwatch.edge.web.node.NodeConsole`) fed by the simulator's ``stress-1000``
scenario: every scan's detections are published on time, wall clock, to the node's MQTT
detection topic on a broker started on loopback (Mosquitto when installed), and the node tracks
them and raises crossing alerts as in the field. Headless Chromium (Debian's, driven by
Playwright) opens the console and measures, in the page:

* frames per second while the map pans and zooms with every track on screen
  (``requestAnimationFrame`` timestamps);
* the interval between applied track frames (the service sends them at 1 Hz);
* alert on-screen latency: from the alert's ``raised_wall`` (when the node raised it) to its
  row entering the DOM (a ``MutationObserver`` and ``Date.now()``; one machine, one clock).

Shared with the browser tests: Debian's Chromium and a guard that lets the page reach the
service on loopback and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from borderwatch.errors import BorderwatchError

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright, Route

    from borderwatch.edge.node import Node
    from borderwatch.simulator.run import Simulation

log = logging.getLogger(__name__)

#: Shipped scenario the bench runs: 1000 targets over 20 km x 20 km around a green border.
SCENARIO = "stress-1000"
#: Browser window, CSS pixels (a landscape tablet).
VIEWPORT_W, VIEWPORT_H = 1280, 800
#: Seconds of scripted panning and zooming measured for frames per second.
PAN_ZOOM_S = 10.0
#: Longest wait for the service to start and for the page to show most tracks, s.
START_TIMEOUT_S = 90.0
#: The service runs the scenario this many seconds past the measurements.
SPARE_S = 15.0

#: Chromium switches: no sandbox (root in containers), software rendering, and none of the
#: browser's own network traffic (updates, sync, safe browsing).
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class ConsoleBenchError(BorderwatchError):
    """The console bench could not run (no browser, the service did not start)."""


def chromium_path() -> str | None:
    """The system Chromium (``chromium`` or ``chromium-browser`` on PATH), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch_chromium(playwright: Playwright) -> Browser:
    """Headless system Chromium with :data:`CHROMIUM_ARGS`."""
    path = chromium_path()
    if path is None:
        raise ConsoleBenchError("no chromium binary on PATH (Debian package chromium)")
    return playwright.chromium.launch(executable_path=path, args=list(CHROMIUM_ARGS))


def is_loopback(url: str) -> bool:
    """True for URLs the page may load: loopback hosts, and data:/blob: URLs."""
    parts = urlsplit(url)
    if parts.scheme in {"data", "blob"}:
        return True
    return parts.hostname in LOOPBACK_HOSTS


@dataclass
class LoopbackGuard:
    """A route handler: requests to loopback go on, every other request is aborted and kept in
    :attr:`refused` (``context.route("**/*", guard)``)."""

    refused: list[str] = field(default_factory=list)

    def __call__(self, route: Route) -> None:
        url = route.request.url
        if is_loopback(url):
            route.continue_()
        else:
            self.refused.append(url)
            route.abort("blockedbyclient")


# ------------------------------------------------------------------------------ the service


def _scenario(tracks: int, duration_s: float) -> Any:
    """The stress scenario with its generated targets scaled to ``tracks`` and its duration
    set."""
    from borderwatch.config.scenario import load_scenario
    from borderwatch.scenarios import resolve_scenario

    scenario = load_scenario(resolve_scenario(SCENARIO))
    total = sum(g.count for g in scenario.generate)
    generate = [
        g.model_copy(update={"count": round(g.count * tracks / total)}) for g in scenario.generate
    ]
    return scenario.model_copy(update={"generate": generate, "duration_s": duration_s})


def _taken(node: Node) -> int:
    """Detections the node's sensor stage has made."""
    return sum(c.detections for c in node.stage.counters.values())


async def _feed_on_time(
    sim: Simulation, broker_url: str, node_id: str, start: float, stop: threading.Event
) -> int:
    """Publish every scan at ``start + t`` (wall clock) to the node's detection topics, stamped
    with that time, a scan as one JSON array; returns the detections published."""
    import secrets
    import socket

    import aiomqtt
    from pydantic import TypeAdapter

    from borderwatch import __version__
    from borderwatch.edge.mqtt import topics
    from borderwatch.schema import Detection, Publisher, batch_to_detections

    scan_json = TypeAdapter(list[Detection])

    publisher = Publisher(
        frame=sim.frame,
        node_id=node_id,
        epoch=datetime.fromtimestamp(start, UTC),
        sensor_ids=sim.sensor_ids,
        software_version=__version__,
        simulated=True,
        exercise=True,
    )
    parts = urlsplit(broker_url)
    client = aiomqtt.Client(
        parts.hostname or "127.0.0.1",
        parts.port or 1883,
        identifier=f"borderwatch-bench-console-feeder-{secrets.token_hex(3)}",
        protocol=aiomqtt.ProtocolVersion.V5,
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    sent = 0
    async with client:
        for scan in sim.scans:
            if stop.is_set():
                break
            delay = start + scan.t - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            topic = topics.sensor_detections(node_id, sim.sensor_ids[scan.sensor])
            detections = batch_to_detections(scan.detections, publisher)
            await client.publish(topic, scan_json.dump_json(detections), qos=0)
            sent += len(detections)
    return sent


@dataclass
class _Service:
    """The node and its console, run in a thread of their own (their own event loop)."""

    tracks: int
    duration_s: float
    workdir: Path
    ready: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    url: str = ""
    error: BaseException | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # handed to the bench's thread
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        from borderwatch.config.web import WebSettings
        from borderwatch.edge.broker import mqtt_broker
        from borderwatch.edge.node import Node
        from borderwatch.edge.web.node import NodeConsole
        from borderwatch.edge.web.server import ConsoleServer, serve_alongside
        from borderwatch.exercise import node_config
        from borderwatch.simulator.run import simulate, write_border

        sim = simulate(_scenario(self.tracks, self.duration_s))
        write_border(self.workdir / "border.geojson", sim)
        async with mqtt_broker(None) as url:
            config = node_config("bench", sim.sensor_ids, sim, url, self.workdir)
            # the node publishes nothing: the page is what is measured
            node = Node(config.model_copy(update={"mqtt": None}), [])
            console = NodeConsole(node, WebSettings())
            node.outputs.append(console)
            server = ConsoleServer(console, "127.0.0.1:0")
            async with asyncio.TaskGroup() as tasks:
                service = tasks.create_task(serve_alongside(server, node.run()), name="node")
                deadline = time.monotonic() + START_TIMEOUT_S
                while not (
                    server.started.is_set() and all(h.connected for h in node.sensor_health())
                ):
                    if time.monotonic() > deadline or service.done():
                        node.stop()
                        raise ConsoleBenchError("the node or its console did not start")
                    await asyncio.sleep(0.05)
                self.url = server.url
                start = float(int(time.time()) + 1)
                feeder = tasks.create_task(
                    _feed_on_time(sim, url, "bench", start, self.stop), name="feed"
                )
                self.ready.set()
                while not self.stop.is_set() and not feeder.done():
                    await asyncio.sleep(0.1)
                self.stop.set()
                sent = await feeder
                self.figures = {"detections_published": sent, "detections_taken": _taken(node)}
                node.stop()


# ------------------------------------------------------------------------------ the page

#: Installed before the page's own script: the time each alert row first enters the list.
_ROW_OBSERVER = """
window.__rowShown = {};
document.addEventListener("DOMContentLoaded", () => {
  const list = document.getElementById("alert-list");
  new MutationObserver((records) => {
    const now = Date.now();
    for (const record of records) {
      for (const node of record.addedNodes) {
        const id = node.nodeType === 1 ? node.dataset.alertId : undefined;
        if (id && !(id in window.__rowShown)) window.__rowShown[id] = now;
      }
    }
  }).observe(list, { childList: true });
});
"""

#: Scripted pans and zooms over ``seconds`` while requestAnimationFrame records frame times.
_PAN_ZOOM = """
async (seconds) => {
  const map = borderwatch.map;
  const times = [];
  let running = true;
  const tick = (t) => { times.push(t); if (running) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const moves = [
    () => map.panBy([240, 0], { duration: 0.6 }),
    () => map.panBy([-240, 150], { duration: 0.6 }),
    () => map.zoomIn(1),
    () => map.panBy([0, -150], { duration: 0.6 }),
    () => map.zoomOut(1),
  ];
  const end = performance.now() + seconds * 1000;
  let moved = 0;
  const draws = borderwatch.draws;
  while (performance.now() < end) {
    moves[moved % moves.length]();
    moved += 1;
    await pause(800);
  }
  running = false;
  await pause(50);
  return { times, moved, redraws: borderwatch.draws - draws, drawMs: borderwatch.drawMs };
}
"""

#: For each alert: id, raised_wall (ms) and when its row entered the list (ms).
_ALERT_TIMES = """
() => [...borderwatch.alerts.values()].map(
  (a) => [a.id, a.raisedWall * 1000, window.__rowShown[a.id] ?? null])
"""

#: Fits the map to every track.
_FIT_ALL = """
() => {
  const points = [...borderwatch.tracks.values()].map((t) => [t.lat, t.lon]);
  borderwatch.map.fitBounds(points, { padding: [10, 10], animate: false });
  return borderwatch.map.getZoom();
}
"""


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _frame_figures(times_ms: list[float]) -> dict[str, Any]:
    intervals = np.diff(np.asarray(times_ms, dtype=np.float64))
    if intervals.size == 0:
        return {"frames": len(times_ms), "mean_fps": None, "p95_frame_ms": None}
    span_s = float(times_ms[-1] - times_ms[0]) / 1000.0
    p95 = float(np.percentile(intervals, 95))
    return {
        "frames": len(times_ms),
        "mean_fps": round((len(times_ms) - 1) / span_s, 1),
        "mean_frame_ms": round(float(intervals.mean()), 2),
        "p95_frame_ms": round(p95, 2),
        "p5_fps": round(1000.0 / p95, 1),
        "max_frame_ms": round(float(intervals.max()), 1),
    }


def _interval_figures(stamps_ms: list[float]) -> dict[str, Any]:
    intervals = np.diff(np.asarray(stamps_ms, dtype=np.float64)) / 1000.0
    if intervals.size == 0:
        return {"frames": len(stamps_ms)}
    return {
        "frames": len(stamps_ms),
        "mean_s": round(float(intervals.mean()), 3),
        "p50_s": round(float(np.percentile(intervals, 50)), 3),
        "p95_s": round(float(np.percentile(intervals, 95)), 3),
        "max_s": round(float(intervals.max()), 3),
    }


def _latency_figures(latencies_ms: list[float]) -> dict[str, Any]:
    return {
        "alerts": len(latencies_ms),
        "p50_ms": None if not latencies_ms else round(float(np.percentile(latencies_ms, 50)), 1),
        "p95_ms": None if not latencies_ms else round(float(np.percentile(latencies_ms, 95)), 1),
        "max_ms": None if not latencies_ms else round(max(latencies_ms), 1),
    }


def _measure(
    page: Page, tracks: int, seconds: float, progress: Callable[[str], None]
) -> dict[str, Any]:
    timeout_ms = START_TIMEOUT_S * 1000
    page.wait_for_selector("body[data-ready='1']", timeout=timeout_ms)
    page.wait_for_function("() => borderwatch.connected", timeout=timeout_ms)
    connected_ms = page.evaluate("() => Date.now()")
    want = int(tracks * 0.9)
    progress(f"page connected; waiting for {want} tracks")
    page.wait_for_function(f"() => borderwatch.tracks.size >= {want}", timeout=timeout_ms)
    began = time.monotonic()
    began_ms = page.evaluate("() => Date.now()")
    zoom = page.evaluate(_FIT_ALL)
    page.wait_for_timeout(1500)
    on_screen = page.evaluate("() => borderwatch.visible")
    shown_now = page.evaluate("() => borderwatch.tracks.size")
    progress(f"{shown_now} tracks, {on_screen} on screen at zoom {zoom}; panning and zooming")
    run = page.evaluate(_PAN_ZOOM, PAN_ZOOM_S)
    rest = seconds - (time.monotonic() - began)
    if rest > 0:
        progress(f"collecting track frames and alerts for {rest:.0f} s more")
        page.wait_for_timeout(rest * 1000)
    frames_ms = page.evaluate("() => borderwatch.trackFrames.slice()")
    frames_ms = [t for t in frames_ms if t >= began_ms]
    applied = page.evaluate("() => borderwatch.applyMs")
    shown = page.evaluate(_ALERT_TIMES)
    latencies = [
        float(seen - raised)
        for _, raised, seen in shown
        if seen is not None and raised is not None and raised >= connected_ms
    ]
    return {
        "tracks_shown": page.evaluate("() => borderwatch.tracks.size"),
        "tracks_on_screen": on_screen,
        "zoom": zoom,
        "apply_ms": {
            "p50": _round(_percentile(applied, 50)),
            "max": _round(max(applied, default=None)),
        },
        "redraw_ms": {
            "p50": _round(_percentile(run["drawMs"], 50)),
            "max": _round(max(run["drawMs"], default=None)),
        },
        "pan_zoom": {
            "seconds": PAN_ZOOM_S,
            "moves": run["moved"],
            "redraws": run["redraws"],
            **_frame_figures(run["times"]),
        },
        "track_frames": _interval_figures(frames_ms),
        "alert_latency": _latency_figures(latencies),
        "bad_frames": page.evaluate("() => borderwatch.bad"),
    }


def run_console_bench(
    tracks: int = 1000, seconds: float = 40.0, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Measure the console with ``tracks`` moving tracks for about ``seconds`` (at least the
    pan-and-zoom run) after the page shows them; returns the figures and a ``text`` summary.

    Raises:
        ConsoleBenchError: no Chromium, or the service or the page did not come up.
    """
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    say = progress or (lambda _msg: None)
    if chromium_path() is None:
        raise ConsoleBenchError("no chromium binary on PATH (Debian package chromium)")
    seconds = max(seconds, PAN_ZOOM_S + 2.0)
    with tempfile.TemporaryDirectory(prefix="borderwatch-bench-console-") as tmp:
        # the scenario must outlast the page's start (tracks confirm after a few scans)
        service = _Service(tracks, seconds + START_TIMEOUT_S / 3 + SPARE_S, Path(tmp))
        thread = threading.Thread(target=service.run, name="bench-console-service", daemon=True)
        say(f"simulating {tracks} targets and starting a node with its console")
        thread.start()
        try:
            if not service.ready.wait(START_TIMEOUT_S) or service.error is not None:
                raise ConsoleBenchError(f"the service did not start: {service.error}")
            say(f"console at {service.url}")
            with sync_playwright() as p:
                browser = launch_chromium(p)
                try:
                    context = browser.new_context(
                        viewport={"width": VIEWPORT_W, "height": VIEWPORT_H}
                    )
                    guard = LoopbackGuard()
                    context.route("**/*", guard)
                    context.add_init_script(_ROW_OBSERVER)
                    page = context.new_page()
                    page.goto(service.url)
                    figures = _measure(page, tracks, seconds, say)
                except PlaywrightError as exc:
                    raise ConsoleBenchError(f"the page did not work: {exc}") from exc
                finally:
                    browser.close()
        finally:
            service.stop.set()
            thread.join(timeout=30)
        if guard.refused:
            raise ConsoleBenchError(f"the page asked for addresses off loopback: {guard.refused}")
    result: dict[str, Any] = {
        "suite": "console",
        "service": f"a node fed by the simulator's {SCENARIO} scenario ({tracks} targets) through "
        "a broker on loopback, its console over HTTP and WebSocket",
        "browser": f"headless Chromium (software rendering), viewport {VIEWPORT_W}x{VIEWPORT_H}",
        "targets": tracks,
        "seconds": seconds,
        **figures,
        **service.figures,
        "targets_goal": {"fps": 30, "alert_latency_ms": 1000},
    }
    result["text"] = _summary(result)
    return result


def _fmt(value: Any, unit: str = "") -> str:
    return "–" if value is None else f"{value}{unit}"


def _summary(r: dict[str, Any]) -> str:
    pz, tf, al = r["pan_zoom"], r["track_frames"], r["alert_latency"]
    return "\n".join(
        [
            f"console bench: {r['tracks_shown']} tracks in the page, {r['tracks_on_screen']} on "
            f"screen at zoom {r['zoom']} ({r['browser']})",
            f"  pan and zoom, {pz['seconds']:.0f} s, {pz['moves']} moves, {pz['redraws']} redraws: "
            f"mean {_fmt(pz['mean_fps'])} fps, p95 frame {_fmt(pz['p95_frame_ms'], ' ms')} "
            f"(p5 {_fmt(pz.get('p5_fps'))} fps), longest {_fmt(pz.get('max_frame_ms'), ' ms')}"
            "   target >= 30 fps",
            f"  track frames applied: {tf['frames']}, "
            f"interval mean {_fmt(tf.get('mean_s'), ' s')}, p50 {_fmt(tf.get('p50_s'), ' s')}, "
            f"p95 {_fmt(tf.get('p95_s'), ' s')}, "
            f"max {_fmt(tf.get('max_s'), ' s')}   target 1 Hz",
            f"  alert on screen after raised: {al['alerts']} alerts, "
            f"p50 {_fmt(al['p50_ms'], ' ms')}, p95 {_fmt(al['p95_ms'], ' ms')}, "
            f"max {_fmt(al['max_ms'], ' ms')}   target <= 1000 ms",
            f"  applying a track frame: p50 {_fmt(r['apply_ms']['p50'], ' ms')}, "
            f"max {_fmt(r['apply_ms']['max'], ' ms')}; one redraw of the track canvas: "
            f"p50 {_fmt(r['redraw_ms']['p50'], ' ms')}, max {_fmt(r['redraw_ms']['max'], ' ms')}",
            f"  bad frames in the page: {r['bad_frames']}",
        ]
    )
