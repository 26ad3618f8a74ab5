"""Example scenarios shipped with borderwatch (also reachable as ``config/scenarios/``).

A command that takes a scenario accepts a file path or the name of one of these.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from borderwatch.errors import ConfigError


def builtin_scenarios() -> dict[str, Path]:
    """Names and paths of the shipped scenarios."""
    folder = Path(str(files(__name__)))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_scenario(name_or_path: str | Path) -> Path:
    """An existing scenario file, or the shipped scenario of that name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = builtin_scenarios()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    known = ", ".join(shipped)
    raise ConfigError(f"no such scenario file or built-in scenario (built-in: {known})", path=path)
