"""CO2 detectors: a probe put into a truck's or container's cargo space; people breathing raise CO2.

Two device families are supported:

* :class:`Gmp343Parser` (``gmp343``): the ASCII lines of a Vaisala GMP343-style probe in its
  streaming (``R``) mode. The output form is user-configurable (``FORM``), so the parser accepts
  the common forms: a number alone (``412.3``), a ``CO2=`` prefix, the unit ``ppm``, and optional
  temperature (``22.4 'C``, ``T= 22.4 'C``) and pressure (``1013 hPa``, ``P= 1013 hPa``) fields.
  Anything else on the line is refused as ``malformed``.
* :class:`SenseAirParser` (``senseair``): Modbus RTU frames of a SenseAir K30/S8-style sensor as
  recorded on its serial line (requests and responses), with CRC-16/MODBUS checks and
  resynchronisation after line noise.

Accepted messages are ``{"kind": "co2", "ppm": ..., "sensor_format": ...}`` under the key of the
format's name. Readings below 0 or above :data:`MAX_PPM` (pure CO2) are ``out_of_range``: the
probes' calibrated ranges (GMP343 up to 0-20,000 ppm, K30/S8 0-2,000 or 0-10,000 ppm) vary with
the model and configuration, and readings above a calibrated range are still evidence of people
in a cargo space, so the parser does not cut at any one model's range.
"""

from __future__ import annotations

import math
import re

from borderwatch.sensors.base import Accepted, Item, LineParser, Rejected, StreamParser

#: Largest CO2 reading accepted, ppm (100 % CO2); negative readings are refused as well.
MAX_PPM = 1_000_000.0
#: Probe temperature range accepted, °C (the GMP343 operates from -40 to +60 °C).
MIN_TEMPERATURE_C = -60.0
MAX_TEMPERATURE_C = 100.0
#: Pressure range accepted, hPa (the GMP343's compensation range is 700-1300 hPa).
MIN_PRESSURE_HPA = 500.0
MAX_PRESSURE_HPA = 1500.0

#: Optional fields of a GMP343 line: (pattern group, output key, lowest, highest, unit).
_OPTIONAL_FIELDS = (
    ("temp", "temperature_c", MIN_TEMPERATURE_C, MAX_TEMPERATURE_C, "'C"),
    ("pressure", "pressure_hpa", MIN_PRESSURE_HPA, MAX_PRESSURE_HPA, "hPa"),
)

# Atomic, so a run of digits is never split into two numbers (no backtracking blow-up).
_NUMBER = r"(?>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
_GMP343_LINE = re.compile(
    rf"""
    (?:CO2\s*=?\s*)?(?P<ppm>{_NUMBER})\s*(?:ppm)?
    (?:\s*(?:T\s*=?\s*)?(?P<temp>{_NUMBER})\s*(?:'C|°C|C|deg\s*C))?
    (?:\s*(?:P\s*=?\s*)?(?P<pressure>{_NUMBER})\s*hPa)?
    """,
    re.VERBOSE | re.IGNORECASE,
)
_GMP343_ERROR = re.compile(r"^E(?:\b|\d|:|\s)|ERR", re.IGNORECASE)


class Gmp343Parser(LineParser):
    """Lines of a Vaisala GMP343-style CO2 probe in streaming mode (format ``gmp343``).

    Accepted: ``{"kind": "co2", "ppm": float, "sensor_format": "gmp343"}`` plus
    ``"temperature_c"`` and ``"pressure_hpa"`` when the line carries them, key ``"gmp343"``.
    A probe's error or status line (starting with ``E`` or containing ``ERR``, e.g.
    ``E 1: CO2 MEASUREMENT ERROR``) and asterisks in place of a value are ``malformed`` with the
    text in the detail; a line with anything but the recognised fields is ``malformed``.
    """

    name = "gmp343"

    def parse_line(self, text: str, line: int) -> list[Item]:
        m = _GMP343_LINE.fullmatch(text)
        if m is None:
            if _GMP343_ERROR.search(text):
                return [Rejected("malformed", f"probe reports: {text[:80]}", line)]
            if "*" in text:
                return [Rejected("malformed", f"probe reports no valid value: {text[:80]}", line)]
            return [Rejected("malformed", f"not a CO2 reading: {text[:80]!r}", line)]
        ppm = float(m.group("ppm"))
        if not (math.isfinite(ppm) and 0.0 <= ppm <= MAX_PPM):
            return [Rejected("out_of_range", f"CO2 {ppm} ppm outside 0..{MAX_PPM:.0f}", line)]
        data: dict[str, object] = {"kind": "co2", "ppm": ppm, "sensor_format": "gmp343"}
        for group, key, low, high, unit in _OPTIONAL_FIELDS:
            text = m.group(group)
            if text is None:
                continue
            value = float(text)
            if not (math.isfinite(value) and low <= value <= high):
                return [
                    Rejected(
                        "out_of_range", f"{key} {value} {unit} outside {low:g}..{high:g}", line
                    )
                ]
            data[key] = value
        return [Accepted("gmp343", data, line)]


# --- Modbus RTU --------------------------------------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_modbus(data: bytes | bytearray | memoryview) -> int:
    """The standard Modbus CRC (CRC-16/MODBUS: reflected polynomial 0xA001, initial 0xFFFF).

    On the wire the CRC follows the frame low byte first; a frame including its CRC bytes has a
    CRC of 0. Known answer: ``crc16_modbus(b"123456789") == 0x4B37``.
    """
    crc = 0xFFFF
    table = _CRC_TABLE
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc


def modbus_frame(body: bytes) -> bytes:
    """``body`` (address, function, data) with its CRC appended, low byte first."""
    crc = crc16_modbus(body)
    return body + bytes((crc & 0xFF, crc >> 8))


#: Modbus function codes of the frames recognised: read holding (3) and input (4) registers,
#: write single register (6); ``| 0x80`` marks an exception response.
_READ_FUNCTIONS = (0x03, 0x04)
_WRITE_SINGLE = 0x06
_FUNCTIONS = frozenset((0x03, 0x04, 0x06, 0x83, 0x84, 0x86))
#: SenseAir's "any sensor" address, besides the ordinary Modbus slave addresses 1..247.
ANY_SENSOR_ADDRESS = 0xFE
_ADDRESSES = frozenset([*range(1, 248), ANY_SENSOR_ADDRESS])
#: Longest Modbus RTU frame: address, function, byte count, 250 data bytes, CRC.
MAX_FRAME = 256

#: Input registers of a K30/S8 (0-based addresses): meter status and space CO2.
REG_METER_STATUS = 0
REG_CO2 = 3
#: Meter status bits (K30/S8); bit 5 is "out of range", the others are sensor errors.
_STATUS_BITS = {
    0: "fatal error",
    1: "offset regulation error",
    2: "algorithm error",
    3: "output error",
    4: "self-diagnostics error",
    5: "out of range",
    6: "memory error",
}
_STATUS_OUT_OF_RANGE = 1 << 5

_EXCEPTION_CODES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "slave device failure",
    5: "acknowledge",
    6: "slave device busy",
}


class SenseAirParser(StreamParser):
    """Modbus RTU frames of a SenseAir K30/S8-style sensor on a serial line (format ``senseair``).

    Accepted: ``{"kind": "co2", "ppm": int, "sensor_format": "senseair", "slave": address}``,
    key ``"senseair"``, one per read-input-registers response that holds the CO2 register
    (input register 3). The register a response starts at comes from the last request seen; a
    response without a request before it is read as register 3 alone (2 data bytes) or registers
    0-3 (8 data bytes). When register 0 (meter status) is read and not zero, the reading is
    refused: ``out_of_range`` for the sensor's out-of-range bit, ``malformed`` for its error bits.

    Requests (and write-single-register frames) are recognised and skipped: they are neither
    accepted nor rejected, so the summary counts responses only. Exception responses
    (function | 0x80) are ``malformed`` with the exception code; responses of other registers
    (holding registers, reads without the CO2 register) are ``unsupported``.

    Framing: at each position the parser looks for a plausible address (1..247 or 0xFE) and
    function code and checks the candidate frame lengths, shortest first, against the CRC. Bytes
    that start no valid frame are skipped one at a time until the next valid frame; each run of
    skipped bytes is one rejection: ``checksum`` when its first plausible frame start had a
    complete frame with a wrong CRC, ``incomplete_fragment`` when the stream ended inside that
    frame, ``malformed`` when the run had no plausible frame start (line noise). Results do not
    depend on how the stream is cut into chunks. ``line`` numbers count frames and rejected runs.
    """

    name = "senseair"

    def __init__(self) -> None:
        self._buf = bytearray()
        self._frame = 0
        # The current run of skipped bytes: its length and the reason decided so far.
        self._skipped = 0
        self._skip_reason: str | None = None
        self._skip_detail = ""
        # (address, function, start register, count) of the last read request, to interpret
        # its response.
        self._last_request: tuple[int, int, int, int] | None = None

    def feed(self, data: bytes) -> list[Item]:
        self._buf += data
        return self._scan(final=False)

    def close(self) -> list[Item]:
        out = self._scan(final=True)
        self._buf.clear()
        return out

    # -- framing --------------------------------------------------------------------------------

    def _scan(self, *, final: bool) -> list[Item]:
        out: list[Item] = []
        buf = self._buf
        n = len(buf)
        i = 0
        while i < n:
            length, verdict = self._match(buf, i, n, final)
            if verdict == "wait":
                break
            if verdict == "frame":
                self._flush_skipped(out)
                self._frame += 1
                self._handle_frame(bytes(buf[i : i + length]), out)
                i += length
                continue
            # Not a frame start: skip this byte, remembering why the run started.
            if self._skip_reason is None:
                if verdict == "bad_crc":
                    self._skip_reason = "checksum"
                    self._skip_detail = f"CRC mismatch in a {length}-byte frame"
                elif verdict == "truncated":
                    self._skip_reason = "incomplete_fragment"
                    self._skip_detail = f"stream ends inside a frame ({n - i} bytes)"
            self._skipped += 1
            i += 1
        del buf[:i]
        if final:  # a final scan never waits, so the buffer is empty now
            self._flush_skipped(out)
        return out

    def _match(self, buf: bytearray, i: int, n: int, final: bool) -> tuple[int, str]:
        """Classify position ``i``: ``frame`` (with its length), ``wait`` for more bytes,
        ``bad_crc``, ``truncated`` (final only) or ``none``."""
        if n - i < 2:  # one last byte is no frame start: a start needs its function code
            return (0, "none") if final else (0, "wait")
        if buf[i] not in _ADDRESSES or buf[i + 1] not in _FUNCTIONS:
            return 0, "none"
        func = buf[i + 1]
        if func & 0x80:
            lengths: tuple[int, ...] = (5,)
        elif func == _WRITE_SINGLE:
            lengths = (8,)
        else:
            if n - i < 3:
                return (0, "truncated") if final else (0, "wait")
            count = buf[i + 2]
            response = 5 + count if count and count % 2 == 0 else 0
            lengths = tuple(sorted(x for x in (8, response) if x))
        verdict = "none"
        bad_len = 0
        for length in lengths:
            if n - i < length:
                if final:
                    return length, "truncated"
                return 0, "wait"
            if crc16_modbus(memoryview(buf)[i : i + length]) == 0:
                return length, "frame"
            verdict, bad_len = "bad_crc", length
        return bad_len, verdict

    def _flush_skipped(self, out: list[Item]) -> None:
        if self._skipped == 0:
            return
        self._frame += 1
        reason = self._skip_reason or "malformed"
        detail = self._skip_detail or "bytes that start no Modbus frame"
        out.append(Rejected(reason, f"{detail}; {self._skipped} bytes skipped", self._frame))
        self._skipped = 0
        self._skip_reason = None
        self._skip_detail = ""

    # -- frames ---------------------------------------------------------------------------------

    def _handle_frame(self, frame: bytes, out: list[Item]) -> None:
        addr, func = frame[0], frame[1]
        line = self._frame
        if func & 0x80:
            code = frame[2]
            meaning = _EXCEPTION_CODES.get(code, "unknown")
            out.append(
                Rejected(
                    "malformed",
                    f"exception response to function {func & 0x7F}: code {code} ({meaning})",
                    line,
                )
            )
            return
        if func == _WRITE_SINGLE:
            return
        if len(frame) == 8:
            # A read request (responses are never 8 bytes: their byte count is even);
            # remember what it asks for, to interpret the response.
            start = frame[2] << 8 | frame[3]
            count = frame[4] << 8 | frame[5]
            self._last_request = (addr, func, start, count)
            return
        self._handle_response(addr, func, frame[3:-2], out, line)

    def _handle_response(
        self, addr: int, func: int, payload: bytes, out: list[Item], line: int
    ) -> None:
        nregs = len(payload) // 2
        req = self._last_request
        self._last_request = None
        if req is not None and req[1] == func and req[3] == nregs and req[0] in (addr, 0xFE):
            start = req[2]
        elif nregs == 1:
            start = REG_CO2
        elif nregs == 4:
            start = REG_METER_STATUS
        else:
            out.append(Rejected("unsupported", f"{nregs} registers without their request", line))
            return
        if func != 0x04:
            out.append(Rejected("unsupported", f"holding registers {start}..", line))
            return
        if not start <= REG_CO2 < start + nregs:
            out.append(
                Rejected("unsupported", f"input registers {start}..{start + nregs - 1}", line)
            )
            return
        regs = [payload[k] << 8 | payload[k + 1] for k in range(0, len(payload), 2)]
        if start <= REG_METER_STATUS < start + nregs:
            status = regs[REG_METER_STATUS - start]
            if status:
                names = ", ".join(v for b, v in _STATUS_BITS.items() if status >> b & 1)
                reason = "out_of_range" if status == _STATUS_OUT_OF_RANGE else "malformed"
                detail = f"sensor status 0x{status:04X} ({names or 'reserved bits'})"
                out.append(Rejected(reason, detail, line))
                return
        ppm = regs[REG_CO2 - start]
        if ppm >= 0x8000:
            out.append(Rejected("out_of_range", f"CO2 register 0x{ppm:04X} (negative)", line))
            return
        out.append(
            Accepted(
                "senseair",
                {"kind": "co2", "ppm": ppm, "sensor_format": "senseair", "slave": addr},
                line,
            )
        )
