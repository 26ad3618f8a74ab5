"""NMEA 0183 parser: hand-checked sentences, rejections, chunking and hostile input."""

from __future__ import annotations

import json
from functools import reduce
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from borderwatch.sensors.base import MAX_LINE_BYTES, Accepted, Item, Rejected, feed_all
from borderwatch.sensors.nmea import NmeaParser
from tests.parser_properties import EDITS, corrupted, feed_in_chunks, framed_lines

DATA = Path(__file__).parent / "data" / "nmea"


def nmea(body: str) -> str:
    """``$body*hh`` with the XOR checksum of ``body`` computed here."""
    return f"${body}*{reduce(lambda acc, ch: acc ^ ord(ch), body, 0):02X}"


def parse(*lines: str) -> list[Item]:
    return feed_all(NmeaParser(), "".join(f"{ln}\r\n" for ln in lines).encode("ascii"))


def one(line: str) -> Item:
    items = parse(line)
    assert len(items) == 1, items
    return items[0]


def accepted(line: str) -> Accepted:
    item = one(line)
    assert isinstance(item, Accepted), item
    return item


def rejected(line: str) -> Rejected:
    item = one(line)
    assert isinstance(item, Rejected), item
    return item


# --- known sentences ------------------------------------------------------------------------


def test_checksum_helper_matches_published_sentence() -> None:
    # pynmea2 README example sentence, with its published checksum.
    assert nmea("GPGGA,184353.07,1929.045,S,02410.506,E,1,04,2.6,100.00,M,-33.9,M,,0000") == (
        "$GPGGA,184353.07,1929.045,S,02410.506,E,1,04,2.6,100.00,M,-33.9,M,,0000*6D"
    )


def test_gga_from_pynmea2_readme() -> None:
    item = accepted("$GPGGA,184353.07,1929.045,S,02410.506,E,1,04,2.6,100.00,M,-33.9,M,,0000*6D")
    assert item.key == "GGA"
    assert item.line == 1
    assert item.data == {
        "kind": "fix",
        "sentence": "GGA",
        "talker": "GP",
        "time": "18:43:53.070",
        "valid": True,
        "lat": -19.4840833,  # 19° 29.045' S
        "lon": 24.1751,  # 24° 10.506' E
        "fix_quality": 1,
        "satellites": 4,
        "hdop": 2.6,
        "alt_m": 100.0,
        "geoid_sep_m": -33.9,
    }


def test_rmc_classic_example_gives_full_utc_time() -> None:
    # The widely published RMC example (13 Sep 1998, 08:18:36 UTC, near Melbourne).
    item = accepted("$GPRMC,081836,A,3751.65,S,14507.36,E,000.0,360.0,130998,011.3,E*62")
    assert item.key == "RMC"
    d = item.data
    assert d["time"] == "1998-09-13T08:18:36.000Z"
    assert d["lat"] == pytest.approx(-(37 + 51.65 / 60), abs=1e-7)
    assert d["lon"] == pytest.approx(145 + 7.36 / 60, abs=1e-7)
    assert (d["status"], d["speed_mps"], d["course_deg"], d["valid"]) == ("A", 0.0, 360.0, True)


def test_rmc_speed_knots_to_mps_and_millisecond_time() -> None:
    d = accepted(nmea("GNRMC,101530.25,A,4207.1234,N,01923.5678,E,10.0,275.5,231126,,,D")).data
    assert d["talker"] == "GN"
    assert d["time"] == "2026-11-23T10:15:30.250Z"
    assert d["lat"] == pytest.approx(42.1187233, abs=1e-7)
    assert d["lon"] == pytest.approx(19.3927967, abs=1e-7)
    assert d["speed_mps"] == pytest.approx(5.144, abs=1e-3)  # 10 kn = 18.52 km/h
    assert d["course_deg"] == 275.5
    assert d["mode"] == "D"


def test_fix_without_position_is_accepted_with_null_position() -> None:
    gga = accepted(nmea("GPGGA,101530.00,,,,,0,00,99.99,,,,,,")).data
    assert (gga["lat"], gga["lon"], gga["valid"], gga["fix_quality"]) == (None, None, False, 0)
    assert gga["time"] == "10:15:30.000"
    rmc = accepted(nmea("GPRMC,101530.00,V,,,,,,,231126,,,N")).data
    assert (rmc["lat"], rmc["lon"], rmc["valid"], rmc["status"]) == (None, None, False, "V")
    assert rmc["time"] == "2026-11-23T10:15:30.000Z"


def test_invalid_fix_with_stale_position_hides_the_position() -> None:
    # Some receivers repeat the last position with status V / quality 0.
    rmc = accepted(nmea("GPRMC,101530.00,V,4207.1234,N,01923.5678,E,0.0,0.0,231126,,,N")).data
    assert (rmc["valid"], rmc["lat"], rmc["lon"]) == (False, None, None)
    gga = accepted(nmea("GPGGA,101530.00,4207.1234,N,01923.5678,E,0,03,9.9,12.0,M,,M,,")).data
    assert (gga["valid"], gga["lat"], gga["lon"]) == (False, None, None)


def test_vtg_gsa_gst_hdt_ths() -> None:
    vtg = accepted(nmea("GPVTG,054.7,T,034.4,M,005.5,N,010.2,K,A"))
    assert vtg.key == "VTG"
    assert vtg.data["course_deg"] == 54.7
    assert vtg.data["speed_mps"] == pytest.approx(5.5 * 1852 / 3600, abs=1e-3)
    kmh_only = accepted(nmea("GPVTG,054.7,T,,M,,N,036.0,K,A")).data
    assert kmh_only["speed_mps"] == 10.0
    gsa = accepted(nmea("GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1")).data
    assert (gsa["kind"], gsa["mode"], gsa["fix_type"]) == ("dop", "A", 3)
    assert (gsa["pdop"], gsa["hdop"], gsa["vdop"]) == (2.5, 1.3, 2.1)
    gst = accepted(nmea("GPGST,101530.00,1.2,2.0,1.5,45.0,1.8,1.6,3.2")).data
    assert gst == {
        "kind": "accuracy",
        "sentence": "GST",
        "talker": "GP",
        "time": "10:15:30.000",
        "rms": 1.2,
        "sigma_lat_m": 1.8,
        "sigma_lon_m": 1.6,
        "sigma_alt_m": 3.2,
    }
    hdt = accepted(nmea("HEHDT,274.07,T")).data
    assert (hdt["kind"], hdt["heading_deg"], hdt["talker"]) == ("heading", 274.07, "HE")
    ths = accepted(nmea("INTHS,123.4,A"))
    assert ths.key == "THS"
    assert (ths.data["heading_deg"], ths.data["mode"]) == (123.4, "A")


@pytest.mark.parametrize(
    ("units", "range_m", "speed_mps", "cpa_m"),
    [
        ("N", 2778.0, 6.173, 926.0),  # 1.5 NM, 12 kn, 0.5 NM
        ("K", 1500.0, 3.333, 500.0),  # 1.5 km, 12 km/h, 0.5 km
        ("S", 2414.0, 5.364, 804.7),  # 1.5 mi, 12 mph, 0.5 mi
    ],
)
def test_ttm_converts_units(units: str, range_m: float, speed_mps: float, cpa_m: float) -> None:
    body = f"RATTM,07,1.50,045.0,R,12.0,090.0,T,0.50,-3.2,{units},BOAT1,T,,101530.50,A"
    item = accepted(nmea(body))
    assert item.key == "TTM"
    d = item.data
    assert d["kind"] == "radar_target"
    assert d["target"] == 7
    assert d["range_m"] == range_m
    assert d["speed_mps"] == speed_mps
    assert d["cpa_m"] == cpa_m
    assert d["bearing_deg"] == 45.0
    assert d["bearing_reference"] == "relative"
    assert d["course_reference"] == "true"
    assert (d["course_deg"], d["tcpa_min"]) == (90.0, -3.2)
    assert (d["name"], d["status"], d["time"], d["acquisition"]) == (
        "BOAT1",
        "tracking",
        "10:15:30.500",
        "auto",
    )


def test_ttm_lost_target_and_tll() -> None:
    lost = accepted(nmea("RATTM,12,0.80,310.5,T,0.0,0.0,T,,,N,,L,,,")).data
    assert (lost["status"], lost["range_m"], lost["name"], lost["time"]) == (
        "lost",
        1481.6,
        None,
        None,
    )
    tll = accepted(nmea("RATLL,03,4207.1234,N,01923.5678,E,SKIFF,101530.50,Q,"))
    assert tll.key == "TLL"
    assert tll.data == {
        "kind": "radar_target",
        "sentence": "TLL",
        "talker": "RA",
        "target": 3,
        "lat": 42.1187233,
        "lon": 19.3927967,
        "name": "SKIFF",
        "time": "10:15:30.500",
        "status": "query",
        "reference_target": False,
    }


def test_items_are_json() -> None:
    for item in parse(
        nmea("GPGGA,101530.00,4207.1234,N,01923.5678,E,1,08,0.9,10.0,M,40.0,M,,"),
        nmea("RATTM,07,1.50,045.0,T,12.0,090.0,T,0.50,-3.2,N,BOAT1,T,,101530.50,A"),
    ):
        assert isinstance(item, Accepted)
        assert json.loads(json.dumps(item.data, allow_nan=False)) == item.data


# --- rejections -------------------------------------------------------------------------------

GOOD = nmea("GPGGA,101530.00,4207.1234,N,01923.5678,E,1,08,0.9,10.0,M,40.0,M,,")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (GOOD[:-2] + ("00" if not GOOD.endswith("00") else "01"), "checksum"),
        (GOOD[: GOOD.index("*")], "checksum"),
        (GOOD[:-1], "checksum"),
        (GOOD[:40], "checksum"),
        (nmea("GPGGA,101530.00,4207.12"), "malformed"),
        (nmea("GPGGA,101530.00,9500.000,N,01923.5678,E,1,08,0.9,10.0,M,40.0,M,,"), "out_of_range"),
        (nmea("GPGGA,101530.00,4207.1234,N,18100.000,E,1,08,0.9,10.0,M,40.0,M,,"), "out_of_range"),
        (nmea("GPGGA,101530.00,4260.0000,N,01923.5678,E,1,08,0.9,10.0,M,40.0,M,,"), "out_of_range"),
        (nmea("GPRMC,101530.00,A,4207.1234,N,01923.5678,E,-1.0,0.0,231126,,,A"), "out_of_range"),
        (nmea("GPRMC,101530.00,A,4207.1234,N,01923.5678,E,1.0,0.0,311126,,,A"), "malformed"),
        (nmea("GPGGA,251530.00,4207.1234,N,01923.5678,E,1,08,0.9,10.0,M,40.0,M,,"), "malformed"),
        (nmea("GPGGA,101530.00,42O7.1234,N,01923.5678,E,1,08,0.9,10.0,M,40.0,M,,"), "malformed"),
        (nmea("GPGGA,101530.00,4207.1234,X,01923.5678,E,1,08,0.9,10.0,M,40.0,M,,"), "malformed"),
        (nmea("GPGGA,101530.00,4207.1234,N,01923.5678,E,1,08,1_0,10.0,M,40.0,M,,"), "malformed"),
        (nmea("HEHDT,400.0,T"), "out_of_range"),
        (nmea("RATTM,07,1.50,045.0,T,12.0,090.0,T,0.50,-3.2,X,BOAT1,T,,101530.50,A"), "malformed"),
        (nmea("RATTM,,1.50,045.0,T,12.0,090.0,T,0.50,-3.2,N,BOAT1,T,,101530.50,A"), "malformed"),
        (nmea("GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00"), "unsupported"),
        (nmea("PGRME,15.0,M,45.0,M,25.0,M"), "unsupported"),
        ("GPHDT,274.07,T*" + nmea("GPHDT,274.07,T")[-2:], "malformed"),
        ("\x01\x02garbage\x7f", "malformed"),
        ("$$$***", "checksum"),
        (GOOD[:-1] + "x", "checksum"),
        ("$GP*HDT,274.07,T*00", "malformed"),
    ],
)
def test_bad_sentences_get_their_reason(line: str, reason: str) -> None:
    item = rejected(line)
    assert item.reason == reason, item
    assert item.line == 1


def test_bad_lines_do_not_lose_good_neighbours() -> None:
    hdt = nmea("HEHDT,274.07,T")
    data = (
        GOOD.encode()
        + b"\r\n"
        + b"\xff\xfe binary noise \x00\r\n"
        + b"$" + b"A" * (MAX_LINE_BYTES + 100) + b"\r\n"
        + GOOD[:-1].encode()  # checksum cut short
        + b"\r\n"
        + nmea("GPGGA,101531.00,9500.000,N,01923.5678,E,1,08,0.9,10.0,M,40.0,M,,").encode()
        + b"\n"
        + hdt.encode()
        + b"\r\n"
    )  # fmt: skip
    items = feed_all(NmeaParser(), data)
    assert [(type(i).__name__, getattr(i, "reason", None), i.line) for i in items] == [
        ("Accepted", None, 1),
        ("Rejected", "malformed", 2),
        ("Rejected", "malformed", 3),
        ("Rejected", "checksum", 4),
        ("Rejected", "out_of_range", 5),
        ("Accepted", None, 6),
    ]


def test_sentence_without_final_newline_is_parsed_at_close() -> None:
    parser = NmeaParser()
    assert parser.feed(GOOD.encode()) == []
    items = parser.close()
    assert len(items) == 1
    assert isinstance(items[0], Accepted)


# --- sample recording -------------------------------------------------------------------------


def test_sample_boat_recording() -> None:
    data = (DATA / "boat_gps_1hz.nmea").read_bytes()
    items = feed_all(NmeaParser(), data)
    rejected_items = [i for i in items if isinstance(i, Rejected)]
    assert rejected_items == []
    keys = [i.key for i in items if isinstance(i, Accepted)]
    assert len(items) == framed_lines(data)
    for key in ("GGA", "RMC", "VTG", "HDT", "GST"):
        assert keys.count(key) == 60, key
    fixes = [i.data for i in items if isinstance(i, Accepted) and i.key == "RMC"]
    # The boat heads east at about 5 m/s for a minute: each fix is east of the one before.
    lons = [f["lon"] for f in fixes]
    assert all(b > a for a, b in pairwise(lons))
    assert all(4.5 < f["speed_mps"] < 5.5 for f in fixes)
    assert fixes[0]["time"] == "2026-11-23T09:00:00.000Z"


def test_sample_radar_recording() -> None:
    data = (DATA / "radar_targets.nmea").read_bytes()
    items = feed_all(NmeaParser(), data)
    assert all(isinstance(i, Accepted) for i in items), [
        i for i in items if isinstance(i, Rejected)
    ]
    assert {i.key for i in items if isinstance(i, Accepted)} == {"TTM", "TLL"}
    assert len(items) == framed_lines(data)


# --- properties -------------------------------------------------------------------------------

_STREAM = b"".join(
    line.encode() + b"\r\n"
    for line in [
        GOOD,
        nmea("GPRMC,101530.00,A,4207.1234,N,01923.5678,E,10.0,275.5,231126,,,A"),
        GOOD[:-1],
        nmea("HEHDT,274.07,T"),
        "garbage",
        nmea("RATTM,07,1.50,045.0,T,12.0,090.0,T,0.50,-3.2,N,BOAT1,T,,101530.50,A"),
        "",
        nmea("GPGSV,3,1,11,03,03,111,00"),
        "$" + "B" * 600,
        nmea("GPGGA,101530.00,9500.000,N,01923.5678,E,1,08,0.9,10.0,M,40.0,M,,"),
    ]
)


def _feed_in_chunks(data: bytes, cuts: list[int]) -> list[Item]:
    return feed_in_chunks(NmeaParser(), data, cuts)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(_STREAM)), max_size=40))
def test_chunking_does_not_change_items(cuts: list[int]) -> None:
    assert _feed_in_chunks(_STREAM, cuts) == feed_all(NmeaParser(), _STREAM)


def _check_accounting(data: bytes) -> None:
    items = feed_all(NmeaParser(), data)
    assert len(items) == framed_lines(data)
    for item in items:
        if isinstance(item, Accepted):
            json.dumps(item.data, allow_nan=False)
        else:
            assert item.reason in {"checksum", "malformed", "out_of_range", "unsupported"}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data: bytes) -> None:
    _check_accounting(data)


@settings(max_examples=300, deadline=None)
@given(EDITS)
def test_corrupted_sentences_never_raise(edits: list[tuple[int, int]]) -> None:
    _check_accounting(corrupted(_STREAM, edits))


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="0123456789.,-NSEWATVKMR", max_size=80),
    st.sampled_from(
        ["GPGGA", "GPRMC", "GPVTG", "GPGSA", "GPGST", "HEHDT", "INTHS", "RATTM", "RATLL"]
    ),
)
def test_valid_checksum_random_fields_never_raise(fields: str, head: str) -> None:
    # The checksum is right, so every field converter sees hostile text.
    item = one(nmea(f"{head},{fields}"))
    if isinstance(item, Rejected):
        assert item.reason in {"malformed", "out_of_range"}, item
    else:
        json.dumps(item.data, allow_nan=False)
