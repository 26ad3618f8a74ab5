"""Parsers found by their format name, imported only when asked for.

:func:`make_parser` builds the parser of a format (``borderwatch parse --format NAME``);
:class:`AutoParser` (``auto``) splits a line-based stream by its lines' first character, so a
recording of a mixed NMEA + AIS network (as boats carry) and ASCII CO2 probe lines parse without
naming the format. Binary SenseAir (Modbus RTU) streams are not detected: use ``senseair``.
"""

from __future__ import annotations

import importlib

from borderwatch.errors import InputError
from borderwatch.sensors.base import Item, LineParser, StreamParser

#: Format name -> ``module:Class`` of its parser.
PARSER_PATHS: dict[str, str] = {
    "nmea": "borderwatch.sensors.nmea:NmeaParser",
    "ais": "borderwatch.sensors.ais:AisParser",
    "gmp343": "borderwatch.sensors.co2:Gmp343Parser",
    "senseair": "borderwatch.sensors.co2:SenseAirParser",
}

#: Every name :func:`make_parser` knows, ``auto`` first (the default of ``borderwatch parse``).
FORMAT_NAMES: tuple[str, ...] = ("auto", *PARSER_PATHS)


def parser_class(name: str) -> type[StreamParser]:
    """The parser class of format ``name``; an unknown name is an :class:`InputError`."""
    if name == "auto":
        return AutoParser
    path = PARSER_PATHS.get(name)
    if path is None:
        known = ", ".join(FORMAT_NAMES)
        raise InputError(f"unknown input format {name!r} (known: {known})")
    module_name, _, class_name = path.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, StreamParser)):
        raise TypeError(f"{path} is not a StreamParser")
    return cls


def make_parser(name: str) -> StreamParser:
    """A new parser for format ``name`` (``auto`` or a key of :data:`PARSER_PATHS`)."""
    return parser_class(name)()


def _make_line_parser(name: str) -> LineParser:
    parser = make_parser(name)
    if not isinstance(parser, LineParser):
        raise TypeError(f"the {name} parser is not line-based")
    return parser


def _route(text: str) -> str:
    """Which format a line belongs to: AIS (``!``-sentences, ``$``-talkers of VDM/VDO, and
    sentences behind an NMEA 4.x tag block ``\\...\\``), other NMEA (``$``), else CO2."""
    sentence = text
    if sentence.startswith("\\"):
        end = sentence.find("\\", 1)
        sentence = sentence[end + 1 :] if end > 0 else sentence
    if sentence.startswith("!") or sentence[3:6] in ("VDM", "VDO"):
        return "ais"
    if sentence.startswith("$"):
        return "nmea"
    return "gmp343"


class AutoParser(LineParser):
    """Line-based formats told apart line by line (format ``auto``).

    AIS sentences (``!AIVDM``, ``$AIVDM``, behind a tag block) go to the AIS parser, other ``$``
    lines to the NMEA parser, other lines to the GMP343 CO2 parser; each is called with the
    stream's own line numbers, and the delegates' :meth:`~LineParser.finish` runs at the end of
    the stream (e.g. for unfinished AIS fragments).
    A delegate is created on its first line, so its module is imported only when needed.
    """

    name = "auto"

    def __init__(self) -> None:
        super().__init__()
        self._delegates: dict[str, LineParser] = {}

    def _delegate(self, name: str) -> LineParser:
        parser = self._delegates.get(name)
        if parser is None:
            parser = self._delegates[name] = _make_line_parser(name)
        return parser

    def parse_line(self, text: str, line: int) -> list[Item]:
        return self._delegate(_route(text)).parse_line(text, line)

    def finish(self) -> list[Item]:
        out: list[Item] = []
        for parser in self._delegates.values():
            out.extend(parser.finish())
        return out
