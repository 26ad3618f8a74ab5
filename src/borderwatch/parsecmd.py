"""``borderwatch parse``: a device recording through a stream parser, as JSON lines.

Output contract: one compact JSON object per accepted message on stdout (the message's
``data``, keys sorted), then, as the last line on stderr, one JSON summary
``{"accepted": {KEY: COUNT}, "rejected": {REASON: COUNT}}`` with sorted keys. Rejections are
logged at debug level with their line and detail. A file that holds only garbage is not an
error: everything in it is counted under ``rejected``. When the reader of stdout goes away
(``borderwatch parse FILE | head``), parsing goes on and the summary still counts the whole file.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from pathlib import Path
from typing import TextIO

from borderwatch.errors import InputError
from borderwatch.sensors.base import Accepted, Item
from borderwatch.sensors.registry import make_parser

log = logging.getLogger("borderwatch.parse")

#: Bytes read from the file per call to the parser.
CHUNK_BYTES = 64 * 1024


def parse_file(
    path: str | Path,
    fmt: str = "auto",
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> dict[str, dict[str, int]]:
    """Parse ``path`` with the ``fmt`` parser, write the JSON lines and the summary; return it.

    Raises:
        InputError: the format is unknown, or the file is missing or unreadable.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    parser = make_parser(fmt)
    accepted: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    reader_gone: list[bool] = []

    def emit(items: list[Item]) -> None:
        lines = []
        for item in items:
            if isinstance(item, Accepted):
                accepted[item.key] += 1
                lines.append(json.dumps(item.data, sort_keys=True, separators=(",", ":")))
            else:
                rejected[item.reason] += 1
                log.debug("%s:%s: %s: %s", path, item.line, item.reason, item.detail)
        if lines and not reader_gone:
            try:
                out.write("\n".join(lines) + "\n")
            except BrokenPipeError:
                # The reader left (``| head``): parse on, so the summary still counts everything.
                reader_gone.append(True)

    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                emit(parser.feed(chunk))
    except OSError as exc:
        raise InputError(f"cannot read the recording: {exc.strerror or exc}", path=path) from exc
    emit(parser.close())
    if not reader_gone:
        try:
            out.flush()
        except BrokenPipeError:
            reader_gone.append(True)
    if reader_gone and out is sys.stdout:
        # Python flushes stdout again at exit; point it at /dev/null so that does not fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    summary = {
        "accepted": dict(sorted(accepted.items())),
        "rejected": dict(sorted(rejected.items())),
    }
    err.write(json.dumps(summary, sort_keys=True) + "\n")
    err.flush()
    return summary
