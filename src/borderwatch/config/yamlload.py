"""Load a YAML file into a pydantic model, reporting errors at the line that caused them.

The file is composed into a PyYAML node tree first (nodes carry their source marks), then
constructed into plain Python data and validated by the model. When validation fails, the ``loc``
path of the first pydantic error is walked through the node tree to find the line of the
offending key, so an operator sees ``scenario.yaml:42: sensors[1].pd: Input should be less than
or equal to 1`` instead of a traceback. The loader knows nothing about any particular model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from borderwatch.errors import ConfigError

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)

#: How many further validation errors are summarised after the first one.
MAX_EXTRA_ERRORS = 3


def load_yaml_model(path: str | Path, model_cls: type[ModelT]) -> ModelT:
    """Parse the YAML file at ``path`` and validate it as ``model_cls``.

    Raises :class:`~borderwatch.errors.ConfigError` naming the file and the (1-based) line of
    the offending key for an unreadable file, a YAML syntax error, an empty document or a
    validation error.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise ConfigError(f"cannot read: {reason}", path=path) from exc
    node, data = _parse(text, path)
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, node, path) from None


def _parse(text: str, path: Path) -> tuple[yaml.Node, Any]:
    """The composed node tree and the constructed data of a single-document YAML text."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError("file is empty", path=path)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        raise ConfigError(f"invalid YAML: {exc.problem or exc}", path=path, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=path) from None
    finally:
        loader.dispose()
    return node, data


def _config_error(exc: ValidationError, root: yaml.Node, path: Path) -> ConfigError:
    errors = exc.errors(include_url=False)
    located = [(locate(root, e["loc"]), e["msg"]) for e in errors]
    (line, where), msg = located[0]
    message = f"{where}: {msg}" if where else msg
    extra = [f"{w}: {m} (line {n})" if w else f"{m} (line {n})" for (n, w), m in located[1:]]
    if extra:
        shown = extra[:MAX_EXTRA_ERRORS]
        more = len(extra) - len(shown)
        message += "; also: " + "; ".join(shown) + (f"; and {more} more" if more else "")
    log.debug("validation of %s failed with %d error(s)", path, len(errors))
    return ConfigError(message, path=path, line=line)


def locate(root: yaml.Node, loc: Sequence[int | str]) -> tuple[int, str]:
    """The 1-based line a pydantic ``loc`` path points at, and the path as the file spells it.

    Mapping keys are matched by their text and sequence items by index. ``loc`` parts that do
    not name a child are skipped (the tag pydantic adds for a union member), except a last part
    naming a key missing from the file, which stays in the path. The line is that of the
    deepest node found: the key itself when present, otherwise the start of the mapping that
    lacks it. The path reads like ``sensors[1].fov.width_deg``.
    """
    node = root
    line = root.start_mark.line
    shown: list[int | str] = []
    for i, part in enumerate(loc):
        found = _child(node, part)
        if found is None:
            if i == len(loc) - 1 and isinstance(node, yaml.MappingNode):
                shown.append(part)
            continue
        key, node = found
        line = (key or node).start_mark.line
        shown.append(part)
    return line + 1, format_loc(shown)


def format_loc(loc: Sequence[int | str]) -> str:
    """A ``loc`` path as a dotted path with list indices: ``sensors[1].fov.width_deg``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _child(node: yaml.Node, part: int | str) -> tuple[yaml.Node | None, yaml.Node] | None:
    """``(key node or None, value node)`` of ``node``'s child named by one ``loc`` part."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return key, value
        return None
    items = node.value if isinstance(node, yaml.SequenceNode) else []
    if isinstance(part, int) and 0 <= part < len(items):
        item: yaml.Node = items[part]
        return None, item
    return None
