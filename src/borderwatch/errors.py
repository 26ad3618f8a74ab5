"""The project's exception hierarchy.

Every error borderwatch raises on purpose derives from :class:`BorderwatchError`, so callers can
catch ours without catching programming errors. Input errors carry the file and line they came
from, because an operator fixing a file needs to know where to look.
"""

from __future__ import annotations

from pathlib import Path


class BorderwatchError(Exception):
    """Base class of all errors raised by borderwatch on purpose."""


class InputError(BorderwatchError):
    """Bad input from a file or message: says where (file, line) and what is wrong."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}:{line}"
            where += ": "
        super().__init__(f"{where}{message}")


class ConfigError(InputError):
    """A configuration or scenario file that does not validate."""


class BorderError(InputError):
    """A border geometry that cannot be used (wrong type, too few points, bad tags)."""


class DetectionRejectedError(BorderwatchError):
    """A single detection the fusion core or a converter refuses; ``reason`` is a counter key."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


class CommandError(BorderwatchError):
    """An operator command a node or centre refuses (unknown verb, bad arguments, unknown id)."""
