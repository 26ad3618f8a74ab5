"""CO2 detector parsers: GMP343 lines and SenseAir Modbus RTU frames, on real bytes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from borderwatch.errors import InputError
from borderwatch.sensors.base import Accepted, Item, Rejected, StreamParser
from borderwatch.sensors.co2 import Gmp343Parser, SenseAirParser, crc16_modbus, modbus_frame
from borderwatch.sensors.registry import AutoParser, make_parser

DATA = Path(__file__).parent / "data" / "co2"

# Read input register 3 (CO2) of "any sensor" (0xFE); the CRC bytes D5 C5 are the ones printed
# in SenseAir's Modbus documentation for this request.
READ_CO2 = bytes.fromhex("FE 04 00 03 00 01 D5 C5")
# Read input registers 0..3 (meter status .. CO2); CRC bytes E5 C6 (CRC 0xC6E5).
READ_STATUS_TO_CO2 = bytes.fromhex("FE 04 00 00 00 04 E5 C6")


def run(parser: StreamParser, data: bytes, chunks: list[int] | None = None) -> list[Item]:
    items: list[Item] = []
    if chunks is None:
        items.extend(parser.feed(data))
    else:
        pos = 0
        for size in chunks:
            items.extend(parser.feed(data[pos : pos + size]))
            pos += size
        items.extend(parser.feed(data[pos:]))
    items.extend(parser.close())
    return items


def accepted(items: list[Item]) -> list[Accepted]:
    return [i for i in items if isinstance(i, Accepted)]


def rejected(items: list[Item]) -> list[Rejected]:
    return [i for i in items if isinstance(i, Rejected)]


def response(ppm: int, addr: int = 0xFE) -> bytes:
    return modbus_frame(bytes([addr, 0x04, 0x02, ppm >> 8, ppm & 0xFF]))


# --- CRC ------------------------------------------------------------------------------------


def test_crc16_modbus_known_answers() -> None:
    # The CRC catalogue's check value of CRC-16/MODBUS.
    assert crc16_modbus(b"123456789") == 0x4B37
    assert crc16_modbus(b"") == 0xFFFF
    # SenseAir's documented request: the CRC is sent low byte first (D5 C5 -> 0xC5D5).
    assert crc16_modbus(READ_CO2[:6]) == 0xC5D5
    assert modbus_frame(READ_CO2[:6]) == READ_CO2
    # A frame followed by its CRC checks to zero.
    assert crc16_modbus(READ_CO2) == 0
    # The classic example from the Modbus serial line guide: 01 03 00 00 00 01 -> 84 0A.
    assert modbus_frame(bytes.fromhex("010300000001")) == bytes.fromhex("010300000001840A")


def test_read_status_request_crc() -> None:
    assert modbus_frame(READ_STATUS_TO_CO2[:6]) == READ_STATUS_TO_CO2
    assert _crc_bitwise(READ_STATUS_TO_CO2[:6]) == 0xC6E5


def _crc_bitwise(data: bytes) -> int:
    """CRC-16/MODBUS bit by bit, as the Modbus serial line guide describes it."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            lsb = crc & 1
            crc >>= 1
            if lsb:
                crc ^= 0xA001
    return crc


@given(st.binary(max_size=300))
def test_crc_table_matches_bitwise_definition(data: bytes) -> None:
    assert crc16_modbus(data) == _crc_bitwise(data)


# --- GMP343 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "ppm", "temp"),
    [
        (b"412.3", 412.3, None),
        (b"  412.3  ", 412.3, None),
        (b"CO2= 412.3 ppm", 412.3, None),
        (b"CO2=412.3ppm", 412.3, None),
        (b"CO2  2501.9 ppm", 2501.9, None),
        (b"412.3 ppm", 412.3, None),
        (b"412.3 ppm  22.4 'C", 412.3, 22.4),
        (b"CO2=   2500.0 ppm T= -5.5 'C", 2500.0, -5.5),
        (b"0", 0.0, None),
        (b"19999.9 PPM", 19999.9, None),
    ],
)
def test_gmp343_accepts_common_forms(line: bytes, ppm: float, temp: float | None) -> None:
    items = run(Gmp343Parser(), line + b"\r\n")
    assert len(items) == 1
    item = items[0]
    assert isinstance(item, Accepted)
    assert item.key == "gmp343"
    assert item.line == 1
    assert item.data["kind"] == "co2"
    assert item.data["sensor_format"] == "gmp343"
    assert item.data["ppm"] == ppm
    assert isinstance(item.data["ppm"], float)
    assert item.data.get("temperature_c") == temp


def test_gmp343_pressure_field() -> None:
    (item,) = run(Gmp343Parser(), b"CO2= 450.0 ppm T= 20.0 'C P= 1013.2 hPa\n")
    assert isinstance(item, Accepted)
    assert item.data == {
        "kind": "co2",
        "ppm": 450.0,
        "sensor_format": "gmp343",
        "temperature_c": 20.0,
        "pressure_hpa": 1013.2,
    }


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"abc", "malformed"),
        (b"CO2= ppm", "malformed"),
        (b"412.3 ppb", "malformed"),
        (b"412.3 22.4", "malformed"),
        (b"412.3 ppm 22.4 'C trailing", "malformed"),
        (b"4#2.3", "malformed"),
        (b"nan", "malformed"),
        (b"inf ppm", "malformed"),
        (b"E 1: CO2 MEASUREMENT ERROR", "malformed"),
        (b"E2", "malformed"),
        (b"ERROR: heating", "malformed"),
        (b"*****.* ppm", "malformed"),
        (b"-3.0", "out_of_range"),
        (b"CO2= -0.1 ppm", "out_of_range"),
        (b"1000000.1", "out_of_range"),
        (b"1e9 ppm", "out_of_range"),
        (b"412.3 ppm 150.0 'C", "out_of_range"),
        (b"412.3 ppm 20.0 'C 200 hPa", "out_of_range"),
        (b"412\xff.3", "malformed"),
    ],
)
def test_gmp343_rejects(line: bytes, reason: str) -> None:
    items = run(Gmp343Parser(), line + b"\n412.0\n")
    assert len(items) == 2
    assert isinstance(items[0], Rejected)
    assert items[0].reason == reason
    assert items[0].line == 1
    # The next line is unaffected.
    assert isinstance(items[1], Accepted)
    assert items[1].data["ppm"] == 412.0
    assert items[1].line == 2


def test_gmp343_error_line_detail_has_the_text() -> None:
    (item,) = run(Gmp343Parser(), b"E 1: CO2 MEASUREMENT ERROR\n")
    assert isinstance(item, Rejected)
    assert "E 1: CO2 MEASUREMENT ERROR" in item.detail


def test_gmp343_last_line_without_newline() -> None:
    items = run(Gmp343Parser(), b"420.0\n421.5")
    assert [i.data["ppm"] for i in accepted(items)] == [420.0, 421.5]


def test_gmp343_truck_inspection_recording() -> None:
    items = run(Gmp343Parser(), (DATA / "gmp343_truck_inspection.txt").read_bytes())
    acc = accepted(items)
    rej = rejected(items)
    assert len(acc) == 200
    assert [(r.reason, r.line) for r in rej] == [("malformed", 22), ("malformed", 62)]
    ppm = [a.data["ppm"] for a in acc]
    # Baseline outside, then the rise in the cargo space, then back down.
    assert all(400.0 < p < 440.0 for p in ppm[:60])
    assert max(ppm) > 2400.0
    assert all(p > 2300.0 for p in ppm[120:150])
    assert ppm[-1] < 700.0
    assert all(19.0 < a.data["temperature_c"] < 24.0 for a in acc)


# --- SenseAir -------------------------------------------------------------------------------


def test_senseair_documented_response() -> None:
    # CO2 = 0x01A4 = 420 ppm.
    frame = response(420)
    assert frame[:5] == bytes.fromhex("FE 04 02 01 A4")
    items = run(SenseAirParser(), READ_CO2 + frame)
    assert items == [
        Accepted(
            "senseair",
            {"kind": "co2", "ppm": 420, "sensor_format": "senseair", "slave": 254},
            2,
        )
    ]


def test_senseair_hand_checked_frame() -> None:
    # FE 04 02 09 C4 -> 0x09C4 = 2500 ppm; CRC from the bitwise definition, low byte first.
    body = bytes.fromhex("FE 04 02 09 C4")
    crc = _crc_bitwise(body)
    frame = body + bytes((crc & 0xFF, crc >> 8))
    (item,) = run(SenseAirParser(), frame)
    assert isinstance(item, Accepted)
    assert item.data["ppm"] == 2500
    assert isinstance(item.data["ppm"], int)


def test_senseair_other_slave_address() -> None:
    request = modbus_frame(bytes.fromhex("68 04 00 03 00 01"))
    (item,) = run(SenseAirParser(), request + response(801, addr=0x68))
    assert isinstance(item, Accepted)
    assert item.data["slave"] == 0x68
    assert item.data["ppm"] == 801


def test_senseair_status_and_co2_registers() -> None:
    good = modbus_frame(bytes([0xFE, 4, 8, 0, 0, 0, 0, 0, 0, 0x03, 0xE8]))
    fatal = modbus_frame(bytes([0xFE, 4, 8, 0, 1, 0, 0, 0, 0, 0x03, 0xE8]))
    over = modbus_frame(bytes([0xFE, 4, 8, 0, 0x20, 0, 0, 0, 0, 0x4E, 0x20]))
    stream = READ_STATUS_TO_CO2 + good + READ_STATUS_TO_CO2 + fatal + READ_STATUS_TO_CO2 + over
    items = run(SenseAirParser(), stream)
    assert len(items) == 3
    assert isinstance(items[0], Accepted)
    assert items[0].data["ppm"] == 1000
    assert isinstance(items[1], Rejected)
    assert items[1].reason == "malformed"
    assert "fatal error" in items[1].detail
    assert isinstance(items[2], Rejected)
    assert items[2].reason == "out_of_range"


def test_senseair_response_without_request() -> None:
    # A capture of the sensor's transmit line only: 2 data bytes are register 3.
    items = run(SenseAirParser(), response(600) + response(610))
    assert [a.data["ppm"] for a in accepted(items)] == [600, 610]
    assert rejected(items) == []


def test_senseair_registers_without_co2_are_unsupported() -> None:
    request = modbus_frame(bytes.fromhex("FE 04 00 00 00 01"))
    reply = modbus_frame(bytes.fromhex("FE 04 02 00 00"))
    (item,) = run(SenseAirParser(), request + reply)
    assert isinstance(item, Rejected)
    assert item.reason == "unsupported"


def test_senseair_requests_are_not_counted() -> None:
    assert run(SenseAirParser(), READ_CO2 * 5 + READ_STATUS_TO_CO2) == []


def test_senseair_bad_crc() -> None:
    bad = bytearray(response(420))
    bad[-1] ^= 0x01
    items = run(SenseAirParser(), READ_CO2 + bytes(bad) + READ_CO2 + response(430))
    assert [type(i).__name__ for i in items] == ["Rejected", "Accepted"]
    assert isinstance(items[0], Rejected)
    assert items[0].reason == "checksum"
    assert items[1].data["ppm"] == 430  # type: ignore[union-attr]


def test_senseair_garbage_between_frames() -> None:
    stream = (
        b"\x00\xff\x00"
        + READ_CO2
        + response(420)
        + b"\xff\xff\x00\x13\x37"
        + READ_CO2
        + response(430)
        + b"\x00"
        + READ_CO2
        + response(440)
    )
    items = run(SenseAirParser(), stream)
    assert [a.data["ppm"] for a in accepted(items)] == [420, 430, 440]
    assert [r.reason for r in rejected(items)] == ["malformed"] * 3


def test_senseair_exception_response() -> None:
    exc = modbus_frame(bytes([0xFE, 0x84, 0x02]))
    items = run(SenseAirParser(), READ_CO2 + exc + READ_CO2 + response(500))
    assert isinstance(items[0], Rejected)
    assert items[0].reason == "malformed"
    assert "code 2" in items[0].detail
    assert isinstance(items[1], Accepted)
    assert items[1].data["ppm"] == 500


def test_senseair_truncated_frame_at_end() -> None:
    parser = SenseAirParser()
    items = parser.feed(READ_CO2 + response(420) + READ_CO2 + response(430)[:5])
    assert [a.data["ppm"] for a in accepted(items)] == [420]
    assert rejected(items) == []  # still waiting for the rest of the frame
    (last,) = parser.close()
    assert isinstance(last, Rejected)
    assert last.reason == "incomplete_fragment"


def test_senseair_negative_register_is_out_of_range() -> None:
    (item,) = run(SenseAirParser(), response(0xFFF0))
    assert isinstance(item, Rejected)
    assert item.reason == "out_of_range"


def test_senseair_capture_recording() -> None:
    items = run(SenseAirParser(), (DATA / "senseair_capture.bin").read_bytes())
    acc = accepted(items)
    assert len(acc) == 39
    assert all(a.data["slave"] == 0xFE for a in acc)
    ppm = [a.data["ppm"] for a in acc]
    assert all(400 < p < 460 for p in ppm[:10])
    assert max(ppm) > 2200
    reasons = sorted(r.reason for r in rejected(items))
    assert reasons == ["checksum", "incomplete_fragment"] + ["malformed"] * 4


# --- properties -----------------------------------------------------------------------------


def _stream(values: list[int], status_every: int) -> bytes:
    out = bytearray()
    for k, ppm in enumerate(values):
        if status_every and k % status_every == 0:
            out += READ_STATUS_TO_CO2
            out += modbus_frame(bytes([0xFE, 4, 8, 0, 0, 0, 0, 0, 0, ppm >> 8, ppm & 0xFF]))
        else:
            out += READ_CO2 + response(ppm)
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 80), max_size=20))
def test_random_bytes_never_raise(data: bytes, chunks: list[int]) -> None:
    for parser in (SenseAirParser(), Gmp343Parser(), AutoParser()):
        items = run(parser, data, chunks)
        assert all(isinstance(i, Accepted | Rejected) for i in items)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 0x7FFF), min_size=1, max_size=12),
    st.integers(0, 4),
    st.lists(st.binary(max_size=6), max_size=4),
    st.lists(st.integers(0, 40), max_size=30),
)
def test_senseair_chunking_gives_identical_results(
    values: list[int], status_every: int, noise: list[bytes], chunks: list[int]
) -> None:
    stream = bytearray(_stream(values, status_every))
    for k, junk in enumerate(noise):
        pos = (k * 37) % (len(stream) + 1)
        stream[pos:pos] = junk
    data = bytes(stream)
    assert run(SenseAirParser(), data, chunks) == run(SenseAirParser(), data)
    one_by_one = [1] * len(data)
    assert run(SenseAirParser(), data, one_by_one) == run(SenseAirParser(), data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 40), max_size=30))
def test_chunking_gives_identical_results_on_any_bytes(data: bytes, chunks: list[int]) -> None:
    assert run(SenseAirParser(), data, chunks) == run(SenseAirParser(), data)
    assert run(Gmp343Parser(), data, chunks) == run(Gmp343Parser(), data)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 0x7FFF), min_size=2, max_size=8),
    st.integers(0, 3),
    st.data(),
)
def test_one_corrupted_byte_never_yields_a_wrong_value(
    values: list[int], status_every: int, draw: st.DataObject
) -> None:
    clean = _stream(values, status_every)
    noise = b"\x00\xff\x00"
    stream = bytearray(noise + clean + noise)
    pos = draw.draw(st.integers(0, len(stream) - 1))
    new = draw.draw(st.integers(0, 255).filter(lambda b: b != stream[pos]))
    stream[pos] = new
    got = [a.data["ppm"] for a in accepted(run(SenseAirParser(), bytes(stream)))]
    if pos < len(noise) or pos >= len(noise) + len(clean):
        # Outside the frames: every value is still accepted, unchanged.
        assert got == values
    else:
        # Inside: that frame's value is lost (or, for a corrupted request, kept), never changed.
        assert len(got) in (len(values) - 1, len(values))
        it = iter(values)
        assert all(any(g == v for v in it) for g in got)  # an in-order subsequence


def test_gmp343_chunking_of_the_recording() -> None:
    data = (DATA / "gmp343_truck_inspection.txt").read_bytes()
    assert run(Gmp343Parser(), data, [7] * (len(data) // 7)) == run(Gmp343Parser(), data)


# --- registry -------------------------------------------------------------------------------


def test_make_parser_by_name() -> None:
    assert isinstance(make_parser("gmp343"), Gmp343Parser)
    assert isinstance(make_parser("senseair"), SenseAirParser)
    assert isinstance(make_parser("auto"), AutoParser)


def test_make_parser_unknown_name() -> None:
    with pytest.raises(InputError, match="unknown input format 'nmea0183'"):
        make_parser("nmea0183")


def test_auto_sends_plain_lines_to_gmp343() -> None:
    items = run(AutoParser(), b"CO2= 420.0 ppm\r\ngarbage\r\n2500.5\r\n")
    assert [(type(i).__name__, i.line) for i in items] == [
        ("Accepted", 1),
        ("Rejected", 2),
        ("Accepted", 3),
    ]
    assert [a.data["ppm"] for a in accepted(items)] == [420.0, 2500.5]


def test_auto_mixed_nmea_ais_and_co2() -> None:
    stream = (
        b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"
        b"!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5C\r\n"
        b"CO2= 420.0 ppm\r\n"
    )
    items = run(AutoParser(), stream)
    acc = accepted(items)
    assert [a.line for a in acc] == [1, 2, 3]
    assert [a.data["kind"] for a in acc] == ["fix", "ais", "co2"]
    assert acc[0].key == "GGA"
    assert acc[1].key == "1"


@settings(max_examples=300, deadline=None)
@given(
    st.floats(0.0, 1_000_000.0, allow_nan=False),
    st.one_of(st.none(), st.floats(-40.0, 60.0, allow_nan=False)),
    st.sampled_from(["{ppm}", "CO2= {ppm} ppm", "CO2={ppm}ppm", "{ppm} ppm", "  {ppm}  PPM "]),
)
def test_gmp343_formatted_readings_round_trip(ppm: float, temp: float | None, form: str) -> None:
    text = form.format(ppm=f"{ppm:.1f}")
    if temp is not None:
        text += f" T= {temp:.1f} 'C"
    (item,) = run(Gmp343Parser(), text.encode("ascii") + b"\r\n")
    assert isinstance(item, Accepted)
    assert item.data["ppm"] == float(f"{ppm:.1f}")
    assert item.data.get("temperature_c") == (None if temp is None else float(f"{temp:.1f}"))


def test_gmp343_long_garbage_lines_stay_fast() -> None:
    # Lines of digits that a backtracking pattern would split every way: 200 of them at the
    # 512-byte line limit must not take long (about 30 ms each with a naive pattern).
    lines = [b"1" * 500 + b"x", b"1" * 250 + b" " + b"2" * 250 + b"x", b"CO2=" + b"1." * 240]
    data = b"\n".join(lines * 67) + b"\n"
    t0 = time.perf_counter()
    items = run(Gmp343Parser(), data)
    assert time.perf_counter() - t0 < 1.0
    assert len(items) == 201
    assert all(isinstance(i, Rejected) and i.reason == "malformed" for i in items)


_LINE_POOL = [
    b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47",
    b"!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5C",
    b"CO2= 420.0 ppm",
    b"$GP",
    b"!AIVDM,2,1,3,B,55P5TL01VIaAL@7WKO@mBplU@<PDhh000000001S;AJ::4A80?4i@E53,0*3E",
    b"2500.5 ppm 21.0 'C",
]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.one_of(st.sampled_from(_LINE_POOL), st.binary(max_size=40)), max_size=25),
    st.lists(st.integers(0, 60), max_size=20),
)
def test_auto_chunking_gives_identical_results(lines: list[bytes], chunks: list[int]) -> None:
    data = b"\r\n".join(lines)
    whole = run(AutoParser(), data)
    assert run(AutoParser(), data, chunks) == whole
    # The CO2 lines are read whatever surrounds them.
    co2_lines = sum(1 for x in lines if x in (_LINE_POOL[2], _LINE_POOL[5]))
    assert sum(a.key == "gmp343" for a in accepted(whole)) >= co2_lines
