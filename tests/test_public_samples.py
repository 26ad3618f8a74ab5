"""Recorded NMEA 0183 and AIS logs from open-source projects parse as their references say.

The recordings and their licences are listed in ``tests/data/{nmea,ais}/public/SOURCES.md``.
Expected counts are worked out here from the sentences themselves (their type, their fragment
fields, whether they carry a payload), not from the parsers; decoded values are checked against
gpsd's expected output for the same log (``*.log.chk``, quoted below with its units) or the
decoded dumps in gpsd's ``sample.aivdm``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from borderwatch.sensors.base import Accepted, Item, Rejected, feed_all
from borderwatch.sensors.registry import make_parser

DATA = Path(__file__).parent / "data"
SAAB = DATA / "nmea" / "public" / "gpsd-saab-r4.log"
HEMI = DATA / "nmea" / "public" / "gpsd-hemi-head.log"
AIS_NMEA = DATA / "ais" / "public" / "gpsd-ais-nmea-head.log"
SAMPLE_AIVDM = DATA / "ais" / "public" / "gpsd-sample-aivdm-head.aivdm"
PYAIS_SAMPLE = DATA / "ais" / "public" / "pyais-nmea-data-sample-head.txt"

#: NMEA sentence types the NMEA parser converts; every other well-formed one is unsupported.
NMEA_SUPPORTED = {"GGA", "RMC", "VTG", "GSA", "GST", "HDT", "THS", "TTM", "TLL"}

#: gpsd's .chk files give AIS coordinates in 1/10,000 minute.
TEN_THOUSANDTH_MINUTE = 1 / 600_000


def ais_type(payload: str) -> int:
    """The message type: the first six-bit character of the payload (ITU-R M.1371 armour)."""
    value = ord(payload[0]) - 48
    return value - 8 if value > 40 else value


def expected_counts(path: Path) -> tuple[Counter[str], Counter[str]]:
    """Accepted and rejected counts of a log, read from each line's sentence type and fields.

    Comment lines (``#``) are not sentences; an AIS message counts once, on its last fragment,
    if all its fragments are there in order; a fragment without its successors, or a sentence
    without a payload, is not a message.
    """
    accepted: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    # (sequence id, channel) -> (fragments seen, message type from the first fragment)
    waiting: dict[tuple[str, str], tuple[int, str]] = {}
    for raw in path.read_bytes().splitlines():
        line = raw.decode("utf-8").strip()
        if not line:
            continue
        if line.startswith("#"):
            rejected["comment"] += 1
            continue
        fields = line.split("*")[0].split(",")
        if line.startswith("!"):
            count, number, seq, channel, payload = fields[1:6]
            key = (seq, channel)
            seen = waiting.get(key, (0, ""))[0]
            if not payload:
                rejected["no payload"] += 1
            elif count == "1":
                accepted[str(ais_type(payload))] += 1
            elif number == "1":
                rejected["unfinished"] += seen
                waiting[key] = (1, str(ais_type(payload)))
            elif seen == int(number) - 1:
                waiting[key] = (seen + 1, waiting[key][1])
                if seen + 1 == int(count):
                    accepted[waiting.pop(key)[1]] += 1
        elif fields[0][3:] in NMEA_SUPPORTED:
            accepted[fields[0][3:]] += 1
        else:
            rejected["unsupported"] += 1
    rejected["unfinished"] += sum(seen for seen, _ in waiting.values())
    return +accepted, +rejected


def summary(items: list[Item]) -> tuple[Counter[str], Counter[str]]:
    accepted = Counter(i.key for i in items if isinstance(i, Accepted))
    rejected = Counter(i.reason for i in items if isinstance(i, Rejected))
    return accepted, rejected


def parse_file(path: Path, fmt: str) -> list[Item]:
    return feed_all(make_parser(fmt), path.read_bytes())


def accepted_data(items: list[Item]) -> list[dict[str, Any]]:
    return [i.data for i in items if isinstance(i, Accepted)]


def find(items: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    """The first item whose fields equal ``match``."""
    return next(d for d in items if all(d.get(k) == v for k, v in match.items()))


# --- counts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "fmt", "comment_reason"),
    [
        (SAAB, "auto", "malformed"),  # auto sends a line that is neither NMEA nor AIS to GMP343
        (HEMI, "auto", "malformed"),
        (AIS_NMEA, "auto", "malformed"),
        (PYAIS_SAMPLE, "ais", None),
    ],
)
def test_counts_follow_from_the_sentences(path: Path, fmt: str, comment_reason: str | None) -> None:
    want_accepted, want_rejected = expected_counts(path)
    accepted, rejected = summary(parse_file(path, fmt))
    assert accepted == want_accepted
    # Our names for the refusals: comments are not sentences, a sentence without payload is
    # malformed, the first half of a message whose second half never came is incomplete.
    want = Counter(
        {
            "malformed": want_rejected["no payload"]
            + (want_rejected["comment"] if comment_reason == "malformed" else 0),
            "incomplete_fragment": want_rejected["unfinished"],
            "unsupported": want_rejected["unsupported"],
        }
    )
    assert rejected == +want


def test_cli_parse_of_the_saab_r4_log() -> None:
    """``borderwatch parse`` in a subprocess: JSON lines on stdout, the summary on stderr."""
    exe = Path(sys.executable).with_name("borderwatch")
    done = subprocess.run(
        [str(exe), "parse", str(SAAB)], capture_output=True, text=True, timeout=60, check=True
    )
    want_accepted, want_rejected = expected_counts(SAAB)
    summary_line = json.loads(done.stderr.strip().splitlines()[-1])
    assert summary_line["accepted"] == dict(want_accepted)
    assert summary_line["rejected"] == {
        "malformed": want_rejected["comment"],
        "unsupported": want_rejected["unsupported"],
    }
    items = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(items) == sum(want_accepted.values())
    # gpsd's saab-r4.log.chk for the first second (13:07:11): an AIS report heard from another
    # ship, the transponder's own report, the GPS fix and the heading sensor.
    other = items[0]
    assert other["kind"] == "ais"
    assert other["own"] is False
    assert other["mmsi"] == 244707571
    assert other["nav_status"] == 15
    assert other["lat"] == pytest.approx(30138685 * TEN_THOUSANDTH_MINUTE, abs=1e-6)
    assert other["lon"] == pytest.approx(-4886109 * TEN_THOUSANDTH_MINUTE, abs=1e-6)
    assert other["sog_knots"] == 14.0  # .chk "speed":140 (0.1 kn)
    assert other["cog_deg"] == 43.2  # .chk "course":432 (0.1 deg)
    assert (other["heading_deg"], other["second"]) == (43, 11)
    own = items[1]
    assert own["own"] is True
    assert own["talker"] == "AI"
    assert own["mmsi"] == 244121341
    assert own["lat"] == pytest.approx(30127913 * TEN_THOUSANDTH_MINUTE, abs=1e-6)
    assert own["lon"] == pytest.approx(-4868800 * TEN_THOUSANDTH_MINUTE, abs=1e-6)
    assert (own["sog_knots"], own["cog_deg"], own["heading_deg"]) == (0.5, 3.0, 4)
    rmc = find(items, sentence="RMC")
    # .chk TPV: "lat":50.213180000,"lon":-8.114660000,"track":3.0000,"speed":0.257 (m/s)
    assert (rmc["lat"], rmc["lon"]) == (50.21318, -8.11466)
    assert (rmc["course_deg"], rmc["speed_mps"]) == (3.0, 0.257)
    assert rmc["time"] == "2011-06-01T13:07:11.000Z"  # the sentence's 010611 and 130711.00
    hdt = find(items, sentence="HDT")
    assert hdt["talker"] == "HE"
    assert hdt["heading_deg"] == 4.0


# --- decoded values ---------------------------------------------------------------------------


def test_mixed_log_matches_gpsd_reference() -> None:
    """First messages of ais-nmea.log against ais-nmea.log.chk."""
    items = accepted_data(parse_file(AIS_NMEA, "auto"))
    static = find(items, msg_type=5, mmsi=371255000)
    assert static["fragments"] == 2
    assert (static["imo"], static["callsign"], static["name"]) == (
        9266633,
        "HP6683",
        "SEA ENTERPRISE",
    )
    assert (static["ship_type"], static["destination"]) == (90, "LEMMER")
    dims = ("to_bow", "to_stern", "to_port", "to_starboard")
    assert tuple(static[k] for k in dims) == (13, 15, 1, 6)
    assert (static["length_m"], static["beam_m"]) == (28, 7)
    assert static["draught"] == 1.4  # .chk "draught":14 (0.1 m)
    assert (static["month"], static["day"], static["hour"], static["minute"]) == (3, 29, 11, 0)
    assert static["epfd"] == 1  # GPS

    # (mmsi, type, nav status, lon, lat in 1/10,000 min, second, accuracy, raim) from the .chk
    reports = [
        (244660274, 1, 0, 3406970, 31713237, 47, False, True),
        (211129800, 3, 5, 3407801, 31714951, 48, True, True),
        (244710041, 1, 8, 3425482, 31704393, 49, False, False),
        (269057061, 1, 0, 3426962, 31703408, 50, False, False),
        (244660492, 1, 0, 3424848, 31703105, 51, True, True),
    ]
    for mmsi, msg_type, status, lon, lat, second, accuracy, raim in reports:
        d = find(items, mmsi=mmsi, msg_type=msg_type)
        assert d["nav_status"] == status
        assert d["lon"] == pytest.approx(lon * TEN_THOUSANDTH_MINUTE, abs=1e-6)
        assert d["lat"] == pytest.approx(lat * TEN_THOUSANDTH_MINUTE, abs=1e-6)
        assert (d["second"], d["accuracy"], d["raim"]) == (second, accuracy, raim)
        assert d["heading_deg"] is None  # .chk "heading":511, not available
        assert d["turn"] == -128  # .chk "turn":-128, no turn information
    moored = find(items, mmsi=211129800, msg_type=3)
    assert moored["cog_deg"] is None  # .chk "course":3600, not available
    assert moored["nav_status_name"] == "Moored"  # .chk "status_text":"Moored"
    inland = find(items, mmsi=211129800, msg_type=8)
    assert (inland["dac"], inland["fid"]) == (200, 10)

    # .chk TPV/SKY of the first second, 2020-04-07T21:39:50Z
    rmc = find(items, sentence="RMC")
    assert rmc["time"] == "2020-04-07T21:39:50.000Z"
    assert rmc["lat"] == pytest.approx(52.842278167, abs=1e-7)
    assert rmc["lon"] == pytest.approx(5.705820000, abs=1e-7)
    assert rmc["speed_mps"] == pytest.approx(0.010, abs=1e-3)
    gga = find(items, sentence="GGA")
    assert (gga["alt_m"], gga["geoid_sep_m"], gga["satellites"], gga["hdop"]) == (
        -6.0,
        45.8,
        9,
        1.03,
    )
    gsa = find(items, sentence="GSA")
    assert (gsa["pdop"], gsa["hdop"], gsa["vdop"]) == (2.02, 1.03, 1.74)


def test_sample_aivdm_matches_its_decoded_dumps() -> None:
    """gpsd's sample.aivdm: each sentence is followed by its decode (noaadata, Maritec...)."""
    items = parse_file(SAMPLE_AIVDM, "ais")
    lines = SAMPLE_AIVDM.read_text(encoding="ascii").splitlines()
    # Every rejection is a comment line; every sentence is in a message.
    for item in items:
        if isinstance(item, Rejected):
            assert item.line is not None
            assert lines[item.line - 1].startswith("#"), item
    sentences = sum(1 for ln in lines if ln.startswith("!"))
    data = accepted_data(items)
    assert sum(d["fragments"] for d in data) == sentences

    # (type, MMSI, status, SOG kn, lon, lat, COG, heading, second) as the file's dumps give them
    reports = [
        (1, 371798000, 0, 12.3, -123.395383333, 48.38163333333, 224.0, 215, 33),
        (1, 440348000, 0, 0.0, -70.7582, 43.08015, 93.4, None, 13),  # TrueHeading 511
        (2, 356302000, 0, 13.9, -71.62614333333, 40.39235833333, 87.7, 91, 41),
        (3, 563808000, 5, 0.0, -76.32753333333, 36.91, 252.0, 352, 35),
    ]
    for msg_type, mmsi, status, sog, lon, lat, cog, heading, second in reports:
        d = find(data, mmsi=mmsi)
        assert (d["msg_type"], d["nav_status"], d["sog_knots"]) == (msg_type, status, sog)
        assert d["lon"] == pytest.approx(lon, abs=1e-6)
        assert d["lat"] == pytest.approx(lat, abs=1e-6)
        assert (d["cog_deg"], d["heading_deg"], d["second"]) == (cog, heading, second)

    base = find(data, mmsi=3669702)
    assert base["msg_type"] == 4
    assert (base["year"], base["month"], base["day"]) == (2007, 5, 14)
    assert (base["hour"], base["minute"], base["second"]) == (19, 57, 39)
    assert base["lon"] == pytest.approx(-76.35236166666, abs=1e-6)
    assert base["lat"] == pytest.approx(36.88376666666, abs=1e-6)
    assert base["epfd"] == 7

    static = find(data, mmsi=351759000)
    assert (static["msg_type"], static["fragments"]) == (5, 2)
    assert (static["imo"], static["callsign"], static["name"]) == (9134270, "3FOF8", "EVER DIADEM")
    assert (static["ship_type"], static["destination"], static["draught"]) == (70, "NEW YORK", 12.2)
    dims = ("to_bow", "to_stern", "to_port", "to_starboard")
    assert tuple(static[k] for k in dims) == (225, 70, 1, 31)
    # The dump's ETAhour 16 is not what the payload says: bits 283-287 of this message are
    # 01110 (14), as SOURCES.md explains; month, day and minute agree.
    assert (static["month"], static["day"], static["minute"]) == (5, 15, 0)

    # Binary and acknowledgement messages: (MMSI, destination, DAC, FID) and acknowledged MMSIs.
    for mmsi, dest, dac, fid in [
        (150834090, 313240222, 669, 11),
        (992509976, 2500912, 235, 10),
        (265538450, 2655651, 1, 40),
    ]:
        d = find(data, mmsi=mmsi, msg_type=6)
        assert (d["dest_mmsi"], d["dac"], d["fid"]) == (dest, dac, fid)
    acks = {d["mmsi"]: d for d in data if d["msg_type"] == 7}
    assert acks[2655651]["mmsi1"] == 265538450
    assert (acks[655901842]["mmsi1"], acks[655901842]["mmsi2"]) == (158483613, 321823389)
    assert (acks[537411077]["mmsi1"], acks[537411077]["mmsi2"]) == (43101326, 717096664)
    # Their third MMSI is cut short by the payload (128 and 124 of the 136 bits it needs): the
    # dumps pad it with zero bits (836359488, 76161024); the parser names no station.
    assert acks[655901842]["mmsi3"] is None
    assert acks[537411077]["mmsi3"] is None


def test_hemisphere_receiver_without_a_fix() -> None:
    """A receiver without a fix sends empty fields: accepted as not valid, nothing invented."""
    data = accepted_data(parse_file(HEMI, "nmea"))
    for d in data:
        if d["sentence"] == "GGA":
            assert (d["valid"], d["fix_quality"], d["lat"], d["lon"]) == (False, 0, None, None)
        elif d["sentence"] == "HDT":
            assert d["heading_deg"] is None
        else:
            assert (d["sentence"], d["mode"], d["speed_mps"]) == ("VTG", "N", None)


def test_pyais_sample_positions_are_plausible() -> None:
    """The pyais recording's reports: every MMSI nine digits, every position on Earth or absent."""
    data = accepted_data(parse_file(PYAIS_SAMPLE, "ais"))
    assert data
    for d in data:
        assert 100_000_000 <= d["mmsi"] <= 999_999_999
        assert d["lat"] is None or -90 <= d["lat"] <= 90
        assert d["lon"] is None or -180 <= d["lon"] <= 180
