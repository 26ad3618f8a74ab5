"""Simple outputs of a node: a JSON-lines recording of every message it publishes.

Network outputs (MQTT, CoT, the web console) share the same one-method interface,
:class:`borderwatch.edge.node.Output`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from borderwatch.schema import Envelope


class JsonLinesOutput:
    """Appends each message as one line of JSON to a file (``borderwatch parse``-friendly).

    Alerts and health reports are flushed at once, so a node killed mid-run leaves every alert
    it raised on disk; track reports are flushed with them (or when the file closes).
    """

    name = "jsonl"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = self.path.open("a", encoding="utf-8")

    async def publish(self, message: Envelope) -> None:
        self._file.write(message.model_dump_json())
        self._file.write("\n")
        if message.type != "track":
            self._file.flush()

    def close(self) -> None:
        """Flush and close the file."""
        self._file.close()
