"""AIS parser: published messages, fragment reassembly, rejections, chunking, hostile input."""

from __future__ import annotations

import json
from functools import reduce
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from borderwatch.sensors.ais import MAX_PENDING, AisParser
from borderwatch.sensors.base import MAX_LINE_BYTES, Accepted, Item, Rejected, feed_all
from tests.parser_properties import EDITS, corrupted, feed_in_chunks, framed_lines

DATA = Path(__file__).parent / "data" / "ais"

# pyais README: a type 1 position report and a type 5 in two fragments.
TYPE1 = "!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5C"
TYPE5_1 = "!AIVDM,2,1,1,A,55?MbV02;H;s<HtKR20EHE:0@T4@Dn2222222216L961O5Gf0NSQEp6ClRp8,0*1C"
TYPE5_2 = "!AIVDM,2,2,1,A,88888888880,2*25"
# pyais documentation: own-ship class B report with every field "not available".
VDO18 = "!AIVDO,1,1,,,B>qc:003wk?8mP=18D3Q3wgTiT;T,0*13"
# gpsd's AIVDM/AIVDO protocol decoding notes: a class B position report in New York harbour.
TYPE18 = "!AIVDM,1,1,,A,B52K>;h00Fc>jpUlNV@ikwpUoP06,0*4C"


def sentence(body: str, start: str = "!") -> str:
    """``!body*hh`` with the XOR checksum computed here."""
    return f"{start}{body}*{reduce(lambda acc, ch: acc ^ ord(ch), body, 0):02X}"


def parse(*lines: str) -> list[Item]:
    return feed_all(AisParser(), "".join(f"{ln}\r\n" for ln in lines).encode("ascii"))


def summary(items: list[Item]) -> list[tuple[str, str, int | None]]:
    return [
        (
            "ok" if isinstance(i, Accepted) else "rej",
            i.key if isinstance(i, Accepted) else i.reason,
            i.line,
        )
        for i in items
    ]


def only_accepted(*lines: str) -> Accepted:
    items = parse(*lines)
    assert len(items) == 1, items
    assert isinstance(items[0], Accepted), items[0]
    return items[0]


def lines_out(items: list[Item]) -> int:
    return sum(i.data["fragments"] if isinstance(i, Accepted) else 1 for i in items)


# --- known messages ---------------------------------------------------------------------------


def test_checksum_helper_matches_published_sentence() -> None:
    assert sentence(TYPE1[1:-3]) == TYPE1


def test_type1_position_report() -> None:
    item = only_accepted(TYPE1)
    assert item.key == "1"
    d = item.data
    assert (d["kind"], d["msg_type"], d["mmsi"], d["own"]) == ("ais", 1, 366053209, False)
    assert d["lat"] == pytest.approx(37.802118, abs=1e-6)
    assert d["lon"] == pytest.approx(-122.341618, abs=1e-6)
    assert (d["sog_knots"], d["speed_mps"], d["cog_deg"], d["heading_deg"]) == (0.0, 0.0, 219.3, 1)
    assert (d["nav_status"], d["nav_status_name"]) == (3, "RestrictedManoeuverability")
    assert (d["channel"], d["talker"], d["fragments"], d["second"]) == ("B", "AI", 1, 59)


def test_type5_two_fragments_reassembled() -> None:
    items = parse(TYPE5_1, TYPE5_2)
    assert len(items) == 1
    item = items[0]
    assert isinstance(item, Accepted)
    assert (item.key, item.line) == ("5", 2)
    d = item.data
    assert (d["mmsi"], d["name"], d["callsign"], d["imo"]) == (
        351759000,
        "EVER DIADEM",
        "3FOF8",
        9134270,
    )
    assert (d["ship_type"], d["ship_type_name"], d["destination"]) == (70, "Cargo", "NEW YORK")
    assert (d["to_bow"], d["to_stern"], d["to_port"], d["to_starboard"]) == (225, 70, 1, 31)
    assert (d["length_m"], d["beam_m"], d["draught"], d["fragments"]) == (295, 32, 12.2, 2)


def test_fragments_interleaved_with_other_traffic() -> None:
    other_channel = TYPE5_1.replace(",1,A,", ",2,B,")
    other_channel = sentence(other_channel[1:-3])
    other_2 = sentence(TYPE5_2.replace(",1,A,", ",2,B,")[1:-3])
    items = parse(TYPE5_1, TYPE1, other_channel, TYPE5_2, other_2)
    assert summary(items) == [("ok", "1", 2), ("ok", "5", 4), ("ok", "5", 5)]


def test_vdo_own_ship_with_not_available_values() -> None:
    item = only_accepted(VDO18)
    assert item.key == "18"
    d = item.data
    assert (d["own"], d["mmsi"], d["channel"]) == (True, 1000000000, None)
    assert (d["lat"], d["lon"], d["sog_knots"], d["speed_mps"]) == (None, None, None, None)
    assert (d["cog_deg"], d["heading_deg"]) == (None, None)


def test_type18_class_b_report() -> None:
    d = only_accepted(TYPE18).data
    assert (d["msg_type"], d["mmsi"], d["own"]) == (18, 338087471, False)
    assert d["lat"] == pytest.approx(40.68454, abs=1e-6)
    assert d["lon"] == pytest.approx(-74.072132, abs=1e-6)
    assert (d["sog_knots"], d["cog_deg"], d["heading_deg"]) == (0.1, 79.6, None)
    assert d["speed_mps"] == pytest.approx(0.051, abs=1e-3)  # 0.1 kn
    assert (d["cs"], d["second"]) == (True, 49)


def test_other_talker_and_dollar_start() -> None:
    bs = sentence(TYPE1[1:-3].replace("AIVDM", "BSVDM"))
    assert only_accepted(bs).data["talker"] == "BS"
    assert only_accepted(sentence(TYPE1[1:-3], start="$")).data["mmsi"] == 366053209


def test_items_are_json() -> None:
    for item in parse(TYPE1, TYPE5_1, TYPE5_2, VDO18, TYPE18):
        assert isinstance(item, Accepted)
        assert json.loads(json.dumps(item.data, allow_nan=False)) == item.data


# --- rejections -------------------------------------------------------------------------------


def _lat95_type1() -> str:
    from pyais.encode import encode_dict

    (line,) = encode_dict(
        {"type": 1, "mmsi": 366053209, "lat": 95.0, "lon": 19.0},
        talker_id="AI",
        sentence_type="VDM",
    )
    return str(line)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (TYPE1[:-2] + "5D", "checksum"),
        (TYPE1[:-3], "checksum"),
        (TYPE1[:30], "checksum"),
        (sentence("AIVDM,1,1,,B,15M67FC000G?ufbE"), "malformed"),  # 96 of 168 bits
        (sentence("AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00S\x7f,0"), "malformed"),
        (sentence("AIVDM,1,1,,B,,0"), "malformed"),
        (sentence("AIVDM,3,4,,B,15M67FC000G?ufbE`FepT@3n00Sa,0"), "malformed"),
        (sentence("AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,7"), "malformed"),
        (sentence("AIVDM,x,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0"), "malformed"),
        (sentence("AIVDM,1,1,,B"), "malformed"),
        (sentence("GPGGA,1,2,3"), "unsupported"),
        (sentence("AIVDM,1,1,,B,wwwwwwwwwwwwwwwwwwwwwwwwwww,0"), "unsupported"),  # type 63
        (_lat95_type1(), "out_of_range"),
        ("\x01\x02garbage\x7f", "checksum"),
        ("!!!*", "checksum"),
    ],
)
def test_bad_sentences_get_their_reason(line: str, reason: str) -> None:
    items = parse(line)
    assert len(items) == 1, items
    assert isinstance(items[0], Rejected), items[0]
    assert items[0].reason == reason, items[0]


def test_fragment_out_of_order() -> None:
    items = parse(TYPE5_2, TYPE5_1, TYPE1)
    assert summary(items) == [
        ("rej", "incomplete_fragment", 1),
        ("ok", "1", 3),
        ("rej", "incomplete_fragment", 2),  # still waiting for its second fragment at the end
    ]


def test_three_fragments_with_a_gap() -> None:
    f1 = sentence("AIVDM,3,1,5,A,55?MbV02;H;s<HtKR20EHE:0@T4@Dn22222222,0")
    f3 = sentence("AIVDM,3,3,5,A,88888888880,2")
    items = parse(f1, f3, TYPE1)
    assert summary(items) == [
        ("rej", "incomplete_fragment", 1),
        ("rej", "incomplete_fragment", 2),
        ("ok", "1", 3),
    ]


def test_restarted_sequence_interrupts_the_unfinished_one() -> None:
    items = parse(TYPE5_1, TYPE5_1, TYPE5_2)
    assert summary(items) == [("rej", "incomplete_fragment", 1), ("ok", "5", 3)]


def test_fragments_left_over_at_close() -> None:
    parser = AisParser()
    assert parser.feed(f"{TYPE1}\r\n{TYPE5_1}\r\n".encode()) != []
    closing = parser.close()
    assert summary(closing) == [("rej", "incomplete_fragment", 2)]


def test_pending_messages_are_bounded() -> None:
    firsts = [
        sentence(f"AIVDM,2,1,{n % 10},{'AB'[n // 10 % 2]}{n // 20},{TYPE5_1.split(',')[5]},0")
        for n in range(MAX_PENDING + 5)
    ]
    parser = AisParser()
    items = parser.feed("".join(f"{f}\r\n" for f in firsts).encode())
    assert summary(items) == [("rej", "incomplete_fragment", n) for n in range(1, 6)]
    assert len(parser.close()) == MAX_PENDING


def test_bad_lines_do_not_lose_good_neighbours() -> None:
    data = (
        f"{TYPE1}\r\n".encode()
        + b"\xff\xfe noise \x00\r\n"
        + b"!" + b"A" * (MAX_LINE_BYTES + 50) + b"\r\n"
        + f"{TYPE5_1}\r\n".encode()
        + f"{TYPE1[:-2]}00\r\n".encode()
        + f"{TYPE5_2}\r\n".encode()
        + f"{_lat95_type1()}\n".encode()
        + f"{TYPE18}".encode()
    )  # fmt: skip
    items = feed_all(AisParser(), data)
    assert summary(items) == [
        ("ok", "1", 1),
        ("rej", "malformed", 2),
        ("rej", "malformed", 3),
        ("rej", "checksum", 5),
        ("ok", "5", 6),
        ("rej", "out_of_range", 7),
        ("ok", "18", 8),
    ]
    assert lines_out(items) == framed_lines(data) == 8


# --- sample recording -------------------------------------------------------------------------


def test_sample_harbour_traffic() -> None:
    data = (DATA / "harbour_traffic.ais").read_bytes()
    items = feed_all(AisParser(), data)
    assert [i for i in items if isinstance(i, Rejected)] == []
    assert lines_out(items) == framed_lines(data)
    acc = [i for i in items if isinstance(i, Accepted)]
    statics = {i.data["mmsi"]: i.data for i in acc if i.key == "5"}
    assert {d["name"] for d in statics.values()} == {"BAR PILOT 2", "POLICIJA 12", "ADRIA CARRIER"}
    assert all(d["fragments"] == 2 for d in statics.values())
    own = [i.data for i in acc if i.data["own"]]
    assert len(own) == 30
    assert all(
        d["mmsi"] == 262000777 and d["speed_mps"] == pytest.approx(4.99, abs=0.01) for d in own
    )
    assert {i.key for i in acc} == {"1", "5", "18", "24"}
    assert any(i.data["talker"] == "BS" for i in acc)


# --- properties -------------------------------------------------------------------------------

_STREAM = b"".join(
    f"{line}\r\n".encode()
    for line in [TYPE1, TYPE5_1, TYPE18, TYPE5_2, TYPE5_2, "junk", VDO18, TYPE5_1, "", TYPE1[:-1]]
)


def _feed_in_chunks(data: bytes, cuts: list[int]) -> list[Item]:
    return feed_in_chunks(AisParser(), data, cuts)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(_STREAM)), max_size=40))
def test_chunking_does_not_change_items(cuts: list[int]) -> None:
    whole = feed_all(AisParser(), _STREAM)
    assert [i.line for i in whole] == [1, 3, 4, 5, 6, 7, 10, 8]  # ends with a left-over
    assert _feed_in_chunks(_STREAM, cuts) == whole


def _check_accounting(data: bytes) -> None:
    items = feed_all(AisParser(), data)
    assert lines_out(items) == framed_lines(data)
    for item in items:
        if isinstance(item, Accepted):
            json.dumps(item.data, allow_nan=False)
            assert item.key == str(item.data["msg_type"])
        else:
            assert item.reason in {
                "checksum",
                "malformed",
                "out_of_range",
                "unsupported",
                "incomplete_fragment",
            }


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data: bytes) -> None:
    _check_accounting(data)


@settings(max_examples=300, deadline=None)
@given(EDITS)
def test_corrupted_sentences_never_raise(edits: list[tuple[int, int]]) -> None:
    _check_accounting(corrupted(_STREAM, edits))


_ARMOUR = "0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVW`abcdefghijklmnopqrstuvw"


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=_ARMOUR, max_size=90),
    st.integers(0, 5),
    st.sampled_from(["AIVDM", "AIVDO", "BSVDM"]),
)
def test_random_payloads_with_valid_checksum_never_raise(
    payload: str, fill: int, head: str
) -> None:
    # Every message type pyais knows, and truncated ones, reach the field conversion.
    data = f"{sentence(f'{head},1,1,,A,{payload},{fill}')}\r\n".encode()
    _check_accounting(data)


@settings(max_examples=100, deadline=None)
@given(st.permutations([TYPE5_1, TYPE5_2, TYPE1, TYPE18, VDO18]))
def test_any_order_keeps_every_line_accounted(lines: list[str]) -> None:
    _check_accounting("".join(f"{ln}\r\n" for ln in lines).encode())


def test_tag_block_is_skipped() -> None:
    # Tag block example from pyais's documentation.
    item = only_accepted(f"\\s:2573535,c:1671533231*08\\{TYPE1}")
    assert (item.key, item.data["mmsi"]) == ("1", 366053209)


def test_multi_fragment_message_refused_on_each_line() -> None:
    # Two fragments with good checksums that together hold only 72 bits of a type 5.
    f1 = sentence("AIVDM,2,1,7,B,55?MbV,0")
    f2 = sentence("AIVDM,2,2,7,B,02;H;s,0")
    items = parse(TYPE1, f1, f2, TYPE18)
    assert summary(items) == [
        ("ok", "1", 1),
        ("rej", "malformed", 2),
        ("rej", "malformed", 3),
        ("ok", "18", 4),
    ]
    assert lines_out(items) == 4


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet=_ARMOUR, max_size=40), min_size=2, max_size=3),
    st.integers(0, 5),
)
def test_random_multi_fragment_payloads_keep_every_line_accounted(
    payloads: list[str], fill: int
) -> None:
    n = len(payloads)
    lines = [
        sentence(f"AIVDM,{n},{k + 1},3,A,{p},{fill if k == n - 1 else 0}")
        for k, p in enumerate(payloads)
    ]
    _check_accounting("".join(f"{ln}\r\n" for ln in lines).encode())


# --- acknowledgements and the class A shortcut -------------------------------------------------


def test_acknowledged_mmsi_cut_short_by_the_payload_is_null() -> None:
    # gpsd's sample.aivdm: a type 7 of 124 bits, two whole destinations and 20 bits of a third.
    item = only_accepted("!AIVDM,1,1,,B,7`0Pv1L:Ac8rbgPKHA8`P,2*56")
    d = item.data
    assert (d["mmsi"], d["mmsi1"], d["mmsi2"]) == (537411077, 43101326, 717096664)
    assert (d["mmsi3"], d["mmsiseq3"], d["mmsi4"]) == (None, None, None)


def test_acknowledgement_with_four_destinations_keeps_them_all() -> None:
    from pyais.encode import encode_dict

    dests = {f"mmsi{k}": 211000000 + k for k in range(1, 5)}
    (line,) = encode_dict({"type": 13, "mmsi": 244000001, **dests}, talker_id="AI")
    d = only_accepted(str(line)).data
    assert {k: d[k] for k in dests} == dests


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from("123"),
    st.text(alphabet=_ARMOUR, min_size=27, max_size=40),
    st.integers(0, 5),
)
def test_class_a_shortcut_gives_the_generic_item(msg_type: str, payload: str, fill: int) -> None:
    """Position reports 1-3 built by ``_class_a_report`` equal those of the generic path."""
    import dataclasses

    from pyais.messages import MSG_CLASS

    from borderwatch.sensors import ais

    data = f"{sentence(f'AIVDM,1,1,,A,{msg_type}{payload},{fill}')}\r\n".encode()
    fast = feed_all(AisParser(), data)
    generic_plans = dict(ais._PLANS)
    for t in (1, 2, 3):
        # The first parse above has worked out the plan of the message's class.
        cls = MSG_CLASS[t]
        if cls in ais._PLANS:
            generic_plans[cls] = dataclasses.replace(ais._PLANS[cls], class_a=False)
    saved = ais._PLANS
    ais._PLANS = generic_plans
    try:
        generic = feed_all(AisParser(), data)
    finally:
        ais._PLANS = saved
    assert fast == generic
