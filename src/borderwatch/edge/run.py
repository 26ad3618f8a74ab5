"""``borderwatch node``: load the configuration, run the node until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from borderwatch.config.node import load_node_config, with_broker
from borderwatch.edge.node import Node, Output
from borderwatch.edge.outputs import JsonLinesOutput
from borderwatch.edge.signals import stop_on_signals

log = logging.getLogger(__name__)


async def serve_node(
    config_path: str | Path,
    *,
    record: str | Path | None = None,
    broker: str | None = None,
    http: str | None = None,
) -> Node:
    """Run the node of ``config_path`` until a stop signal; returns it (for its counters).

    ``http`` (``HOST:PORT``) serves the web console; it overrides ``web.http`` of the config.
    """
    config = load_node_config(config_path)
    if broker is not None:
        config = with_broker(config, broker)
    recorder = JsonLinesOutput(record) if record is not None else None
    outputs: list[Output] = [recorder] if recorder is not None else []
    node = Node(config, outputs)
    if node.mqtt is not None:
        log.info("publishing to %s", config.mqtt.url if config.mqtt else "")
    server = None
    address = http or (config.web.http if config.web is not None else None)
    if address is not None:
        from borderwatch.config.web import WebSettings
        from borderwatch.edge.web.node import NodeConsole
        from borderwatch.edge.web.server import ConsoleServer

        console = NodeConsole(node, config.web or WebSettings())
        node.outputs.append(console)
        server = ConsoleServer(console, address)
    try:
        with stop_on_signals(node.stop):
            if server is None:
                await node.run()
            else:
                from borderwatch.edge.web.server import serve_alongside

                await serve_alongside(server, node.run)
    finally:
        if recorder is not None:
            recorder.close()
    return node


def run_node(
    config_path: str | Path,
    *,
    record: str | Path | None = None,
    broker: str | None = None,
    http: str | None = None,
) -> int:
    """Entry point of ``borderwatch node``; exit status 0 after a clean shutdown."""
    asyncio.run(serve_node(config_path, record=record, broker=broker, http=http))
    return 0
