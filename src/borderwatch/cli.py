"""The ``borderwatch`` command line.

Each sub-command imports its implementation lazily, so ``borderwatch --help`` stays fast and a
command never pays for libraries it does not use. Formats written by the commands are contracts
(see ``docs/cli.md``): other tools are measured through them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from borderwatch import __version__
from borderwatch.errors import BorderwatchError, InputError

log = logging.getLogger("borderwatch")

DEFAULT_DEMO_SCENARIO = "green-night-patrol"
DEFAULT_EXERCISE_SCENARIO = "joint-patrol-exercise"
DEFAULT_DEVICES_DIR = Path("build/devices")


def _cmd_simulate(args: argparse.Namespace) -> int:
    from borderwatch.scenarios import resolve_scenario

    if args.devices:
        from borderwatch.simulator.emulate import serve_scenario

        serve_scenario(
            resolve_scenario(args.scenario),
            args.out or DEFAULT_DEVICES_DIR,
            seed=args.seed,
            speed=args.speed,
            duration_s=args.duration,
            announce=lambda device: print(device.line(), flush=True),
        )
        return 0
    from borderwatch.simulator.run import simulate_to_dir

    if args.out is None:
        raise InputError("--out is required (except with --devices)")
    summary = simulate_to_dir(resolve_scenario(args.scenario), args.out, seed=args.seed)
    print(json.dumps(summary, sort_keys=True))
    return 0


def _cmd_track(args: argparse.Namespace) -> int:
    from borderwatch.config.tracker import TrackerConfig
    from borderwatch.trackfile import track_files

    config = TrackerConfig.from_yaml(args.config) if args.config else TrackerConfig()
    summary = track_files(
        detections=args.detections,
        tracks_out=args.out,
        border=args.border,
        alerts_out=args.alerts,
        config=config,
        approach_out=args.approach_alerts,
    )
    log.info("track: %s", json.dumps(summary, sort_keys=True))
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from borderwatch.simulator.scoring import score_files

    result = score_files(
        truth=args.truth,
        tracks=args.tracks,
        alerts=args.alerts,
        border=args.border,
        c=args.c,
        p=args.p,
    )
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    # One core means one thread: set before numpy's libraries load their thread pools.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    from borderwatch.bench import one_core, run_bench

    if args.suite == "parsers":
        from borderwatch.bench_parsers import run_parser_bench

        with one_core():
            result = run_parser_bench()
    elif args.suite == "node":
        from borderwatch.bench_node import run_node_bench

        result = run_node_bench(args.seconds, progress=lambda msg: log.info("bench: %s", msg))
    elif args.suite == "camera":
        from borderwatch.bench_camera import run_camera_bench

        result = run_camera_bench(seed=args.seed)
    elif args.suite == "camera-node":
        from borderwatch.bench_camera_node import run_camera_node_bench

        result = run_camera_node_bench(min(args.seconds, 10.0), seed=args.seed)
    elif args.suite == "console":
        from borderwatch.bench_console import run_console_bench

        result = run_console_bench(
            args.tracks, args.seconds, progress=lambda msg: log.info("bench: %s", msg)
        )
    elif args.suite == "e2e":
        from borderwatch.bench_e2e import run_e2e_bench

        result = run_e2e_bench(
            max(args.targets),
            args.seconds,
            args.broker,
            rate_hz=args.rate,
            outage_s=args.outage,
            seed=args.seed,
            progress=lambda msg: log.info("bench: %s", msg),
        )
    else:
        result = run_bench(
            targets=args.targets,
            scans=args.scans,
            seed=args.seed,
            quality=not args.speed_only,
            progress=lambda msg: log.info("bench: %s", msg),
        )
    if args.json:
        result.pop("text")
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(result["text"])
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    from borderwatch.camera_detect import detect_command

    return detect_command(args.inputs, args.out, args.camera)


def _cmd_render(args: argparse.Namespace) -> int:
    from borderwatch.config.scenario import load_scenario
    from borderwatch.scenarios import resolve_scenario
    from borderwatch.sensors.camera.geometry import PlatformPose
    from borderwatch.simulator.camerascene import CameraView, render_scenario

    e, n, heading = args.at
    view = CameraView.from_file(args.camera, PlatformPose(e, n, heading))
    summary = render_scenario(
        load_scenario(resolve_scenario(args.scenario)),
        view,
        args.out,
        kind=args.kind,
        fps=args.fps,
        start_s=args.start,
        duration_s=args.duration,
        seed=args.seed,
    )
    print(json.dumps(summary, sort_keys=True))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.single:
        from borderwatch.demo import run_demo

        return run_demo(args.scenario or DEFAULT_DEMO_SCENARIO, args.out, seed=args.seed)
    from borderwatch.exercise import run_exercise

    if not args.verbose:
        # Nodes and centre log every connection and alert; the exercise prints its own console.
        logging.getLogger("borderwatch.edge").setLevel(logging.ERROR)
        logging.getLogger("borderwatch.drivers").setLevel(logging.ERROR)
        logging.getLogger("alembic").setLevel(logging.WARNING)
    run_exercise(
        args.scenario or DEFAULT_EXERCISE_SCENARIO,
        args.out,
        speed=args.speed,
        seed=args.seed,
        broker_url=args.broker,
        duration_s=args.duration,
        http=None if args.http == "off" else args.http,
    )
    return 0


def _cmd_parse(args: argparse.Namespace) -> int:
    from borderwatch.parsecmd import parse_file

    parse_file(args.file, args.format)
    return 0


def _cmd_node(args: argparse.Namespace) -> int:
    from borderwatch.edge.run import run_node

    return run_node(args.config, record=args.record, broker=args.broker, http=args.http)


def _cmd_centre(args: argparse.Namespace) -> int:
    from borderwatch.edge.centre import run_centre

    return run_centre(args.config, broker=args.broker, http=args.http)


def _cmd_validate_config(args: argparse.Namespace) -> int:
    from borderwatch.config.node import load_node_config

    config = load_node_config(args.file)
    devices = ", ".join(f"{d.sensor_id} ({d.type})" for d in config.devices) or "none"
    print(f"{args.file}: valid node configuration for {config.node_id}; devices: {devices}")
    return 0


def _http_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--http",
        default=None,
        metavar="HOST:PORT",
        help="serve the web console here (port 0: a free one, logged); overrides web.http",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="borderwatch",
        description="Multi-sensor fusion and border-crossing detection for border surveillance.",
    )
    parser.add_argument("--version", action="version", version=f"borderwatch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "simulate",
        help="run a scenario: write truth, detections and border (or serve its devices)",
    )
    p.add_argument(
        "scenario", type=Path, help="scenario YAML file, or the name of a shipped scenario"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output directory (required without --devices; default {DEFAULT_DEVICES_DIR} with)",
    )
    p.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    p.add_argument(
        "--devices",
        action="store_true",
        help="serve the scenario's devices on ptys/UDP in real time; prints "
        "'<sensor_id> <type> <path-or-udp-address>' per device",
    )
    p.add_argument(
        "--speed", type=float, default=1.0, help="with --devices: scenario seconds per second"
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="with --devices: stop at this scenario time, s (default: the scenario's end)",
    )
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("track", help="track detections from a CSV file")
    p.add_argument("--detections", type=Path, required=True, help="detections.csv (t,x,y,sigma)")
    p.add_argument("--out", type=Path, required=True, help="tracks.csv to write")
    p.add_argument("--border", type=Path, default=None, help="border GeoJSON (LineString)")
    p.add_argument("--alerts", type=Path, default=None, help="alerts.csv to write")
    p.add_argument("--config", type=Path, default=None, help="tracker settings YAML")
    p.add_argument(
        "--approach-alerts",
        type=Path,
        default=None,
        help="also write 'about to cross' alerts (with time_to_cross_s) to this CSV",
    )
    p.set_defaults(func=_cmd_track)

    p = sub.add_parser("score", help="score tracks and alerts against truth; prints JSON")
    p.add_argument("--truth", type=Path, required=True, help="truth.csv")
    p.add_argument("--tracks", type=Path, required=True, help="tracks.csv")
    p.add_argument("--alerts", type=Path, default=None, help="alerts.csv")
    p.add_argument(
        "--border",
        type=Path,
        default=None,
        help="border GeoJSON for truth crossings (default: border.geojson beside truth.csv)",
    )
    p.add_argument("--c", type=float, default=50.0, help="GOSPA cut-off distance c, metres")
    p.add_argument("--p", type=float, default=2.0, help="GOSPA order p")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser(
        "detect",
        help="detect warm bodies / movers in thermal or night-vision images and videos; "
        "writes file,frame,x,y,w,h,score,label",
    )
    p.add_argument("inputs", type=Path, nargs="+", metavar="IMAGE_OR_VIDEO")
    p.add_argument("--out", type=Path, required=True, help="output CSV file")
    p.add_argument(
        "--camera", type=Path, default=None, help="camera YAML: detector, intrinsics, mount"
    )
    p.set_defaults(func=_cmd_detect)

    p = sub.add_parser(
        "render", help="render a scenario's truth as a camera at a fixed site sees it"
    )
    p.add_argument("scenario", type=Path, help="scenario YAML file, or a shipped scenario's name")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument(
        "--at",
        type=float,
        nargs=3,
        required=True,
        metavar=("E", "N", "HEADING"),
        help="camera site east and north (m, scenario frame) and heading (degrees)",
    )
    p.add_argument("--camera", type=Path, default=None, help="camera YAML: intrinsics, mount")
    p.add_argument("--kind", choices=["thermal", "nightvision"], default="thermal")
    p.add_argument("--fps", type=float, default=10.0, help="frames per second")
    p.add_argument("--start", type=float, default=0.0, help="scenario time of frame 0, s")
    p.add_argument("--duration", type=float, default=None, help="seconds to render")
    p.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("bench", help="measure tracker (default) or device-parser figures")
    p.add_argument(
        "suite",
        nargs="?",
        default="tracker",
        choices=["tracker", "parsers", "node", "e2e", "camera", "camera-node", "console"],
        help="what to measure (default: %(default)s)",
    )
    p.add_argument(
        "--targets",
        type=int,
        nargs="+",
        default=[10, 100, 1000],
        help="simultaneous target counts to measure",
    )
    p.add_argument("--scans", type=int, default=120, help="scans (1 Hz) per run")
    p.add_argument(
        "--seconds",
        type=float,
        default=60.0,
        help="node: measuring time after warm-up; e2e: load duration; camera-node: time per "
        "measurement (at most 10); console: measuring time once the page shows the tracks, s",
    )
    p.add_argument(
        "--tracks",
        type=int,
        default=1000,
        help="console: moving tracks (targets of the stress scenario; default: %(default)s)",
    )
    p.add_argument(
        "--broker",
        default=None,
        help="e2e: broker URL mqtt://HOST:PORT (default: start one on loopback)",
    )
    p.add_argument(
        "--rate",
        type=int,
        default=1,
        choices=[1, 2, 5, 10],
        help="e2e: detections of each target a second (default: %(default)s)",
    )
    p.add_argument(
        "--outage",
        type=float,
        default=0.0,
        metavar="S",
        help="e2e: stop the node-centre broker for S seconds during the run (default: none)",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--speed-only", action="store_true", help="skip the tracking-quality scenarios")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser(
        "demo",
        help="a simulated joint patrol: two boat nodes, a mobile unit and a centre over MQTT",
    )
    p.add_argument(
        "--scenario",
        default=None,
        help=f"scenario file or shipped scenario name (default: {DEFAULT_EXERCISE_SCENARIO}; "
        f"with --single: {DEFAULT_DEMO_SCENARIO})",
    )
    p.add_argument(
        "--single",
        action="store_true",
        help="one in-memory tracker over all sensors, no broker (the fusion core alone)",
    )
    p.add_argument(
        "--speed", type=float, default=10.0, help="scenario seconds per wall second (exercise)"
    )
    p.add_argument(
        "--broker", default=None, help="use this MQTT broker instead of starting one (exercise)"
    )
    p.add_argument(
        "--duration", type=float, default=None, help="run only the first S scenario seconds"
    )
    p.add_argument("--out", type=Path, default=Path("build/demo"), help="output directory")
    p.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    p.add_argument(
        "--http",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="serve the centre's web console here while the exercise runs (the next free port "
        "if taken; default: %(default)s); off: do not serve it",
    )
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "parse", help="parse a device recording: accepted messages as JSON lines, summary last"
    )
    p.add_argument("file", type=Path, help="recorded bytes from a device (NMEA, AIS, CO2)")
    p.add_argument(
        "--format",
        choices=["auto", "nmea", "ais", "gmp343", "senseair"],
        default="auto",
        help="input format (default: %(default)s; SenseAir Modbus streams need senseair)",
    )
    p.set_defaults(func=_cmd_parse)

    p = sub.add_parser("node", help="run an edge node: devices, fusion, alerts (until Ctrl-C)")
    p.add_argument("--config", type=Path, required=True, help="node configuration (YAML)")
    p.add_argument(
        "--broker", default=None, help="MQTT broker URL mqtt://HOST:PORT (overrides the config)"
    )
    p.add_argument(
        "--record", type=Path, default=None, help="append every published message to this file"
    )
    _http_argument(p)
    p.set_defaults(func=_cmd_node)

    p = sub.add_parser("centre", help="run the control centre: fuse nodes' tracks, store alerts")
    p.add_argument("--config", type=Path, required=True, help="centre configuration (YAML)")
    p.add_argument(
        "--broker", default=None, help="MQTT broker URL mqtt://HOST:PORT (overrides the config)"
    )
    _http_argument(p)
    p.set_defaults(func=_cmd_centre)

    p = sub.add_parser(
        "validate-config", help="check a node configuration file; errors name the bad line"
    )
    p.add_argument("file", type=Path, help="node configuration (YAML)")
    p.set_defaults(func=_cmd_validate_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args))
    except BorderwatchError as exc:
        print(f"borderwatch {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
