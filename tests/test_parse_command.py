"""``borderwatch parse`` through ``borderwatch.cli.main``: the JSON-lines contract end to end."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from borderwatch.cli import main
from borderwatch.parsecmd import parse_file
from borderwatch.sensors.co2 import modbus_frame
from borderwatch.sensors.registry import FORMAT_NAMES

DATA = Path(__file__).parent / "data" / "co2"
READ_CO2 = bytes.fromhex("FE 04 00 03 00 01 D5 C5")


def parse(
    capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, list[dict[str, Any]], dict[str, Any], list[str]]:
    code = main(["parse", *argv])
    captured = capsys.readouterr()
    out_lines = captured.out.splitlines()
    err_lines = captured.err.splitlines()
    objects = [json.loads(line) for line in out_lines]
    summary = json.loads(err_lines[-1]) if code == 0 else {}
    return code, objects, summary, out_lines


def test_gmp343_recording(capsys: pytest.CaptureFixture[str]) -> None:
    path = DATA / "gmp343_truck_inspection.txt"
    code, objects, summary, lines = parse(capsys, str(path), "--format", "gmp343")
    assert code == 0
    assert summary == {"accepted": {"gmp343": 200}, "rejected": {"malformed": 2}}
    assert len(objects) == 200
    assert all(o["kind"] == "co2" and o["sensor_format"] == "gmp343" for o in objects)
    assert objects[0] == {
        "kind": "co2",
        "ppm": 421.9,
        "sensor_format": "gmp343",
        "temperature_c": 21.7,
    }
    assert max(o["ppm"] for o in objects) > 2400.0
    # Compact, sorted keys: exactly what json.dumps writes with those options.
    for obj, line in zip(objects, lines, strict=True):
        assert line == json.dumps(obj, sort_keys=True, separators=(",", ":"))


def test_auto_is_the_default_and_reads_gmp343(capsys: pytest.CaptureFixture[str]) -> None:
    path = DATA / "gmp343_truck_inspection.txt"
    code, objects, summary, _ = parse(capsys, str(path))
    assert code == 0
    assert summary == {"accepted": {"gmp343": 200}, "rejected": {"malformed": 2}}
    assert len(objects) == 200


def test_senseair_recording(capsys: pytest.CaptureFixture[str]) -> None:
    path = DATA / "senseair_capture.bin"
    code, objects, summary, _ = parse(capsys, str(path), "--format", "senseair")
    assert code == 0
    assert summary == {
        "accepted": {"senseair": 39},
        "rejected": {"checksum": 1, "incomplete_fragment": 1, "malformed": 4},
    }
    assert len(objects) == 39
    assert all(
        set(o) == {"kind", "ppm", "sensor_format", "slave"}
        and o["kind"] == "co2"
        and isinstance(o["ppm"], int)
        and o["slave"] == 254
        for o in objects
    )


def test_summary_keys_sorted_and_last_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"-5\nxyz\n430.0\n1e7\nE 3 ERROR\n2500.0\n")
    code = main(["-v", "parse", str(path), "--format", "gmp343"])
    captured = capsys.readouterr()
    assert code == 0
    assert [json.loads(x)["ppm"] for x in captured.out.splitlines()] == [430.0, 2500.0]
    last = captured.err.splitlines()[-1]
    assert last == '{"accepted": {"gmp343": 2}, "rejected": {"malformed": 2, "out_of_range": 2}}'


def test_rejections_logged_at_debug(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"420.0\nnot a number\n")
    with caplog.at_level(logging.DEBUG, logger="borderwatch.parse"):
        assert main(["parse", str(path)]) == 0
    capsys.readouterr()
    messages = [r.getMessage() for r in caplog.records if r.name == "borderwatch.parse"]
    assert len(messages) == 1
    assert f"{path}:2: malformed" in messages[0]


def test_only_garbage_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "noise.bin"
    path.write_bytes(b"\x00\xff" * 100 + b"\x80\x81\n" + b"zz\n")
    code, objects, summary, _ = parse(capsys, str(path), "--format", "gmp343")
    assert code == 0
    assert objects == []
    assert summary == {"accepted": {}, "rejected": {"malformed": 2}}
    code, objects, summary, _ = parse(capsys, str(path), "--format", "senseair")
    assert code == 0
    assert objects == []
    assert summary == {"accepted": {}, "rejected": {"malformed": 1}}


def test_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    code, objects, summary, _ = parse(capsys, str(path))
    assert (code, objects, summary) == (0, [], {"accepted": {}, "rejected": {}})


def test_large_file_across_chunks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # More than two 64 KiB chunks, frames cut at chunk boundaries.
    frames = bytearray()
    for k in range(12_000):
        ppm = 400 + k % 2000
        frames += READ_CO2 + modbus_frame(bytes([0xFE, 0x04, 0x02, ppm >> 8, ppm & 0xFF]))
    path = tmp_path / "long.bin"
    path.write_bytes(bytes(frames))
    assert len(frames) > 2 * 64 * 1024
    code, objects, summary, _ = parse(capsys, str(path), "--format", "senseair")
    assert code == 0
    assert summary == {"accepted": {"senseair": 12_000}, "rejected": {}}
    assert [o["ppm"] for o in objects] == [400 + k % 2000 for k in range(12_000)]


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.txt"
    assert main(["parse", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "borderwatch parse: error:" in captured.err
    assert str(missing) in captured.err


def test_directory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(tmp_path)]) == 2
    assert "borderwatch parse: error:" in capsys.readouterr().err


def test_unknown_format_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(b"420\n")
    with pytest.raises(SystemExit) as exc:
        main(["parse", str(path), "--format", "csv"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["auto", "nmea", "ais", "gmp343", "senseair"])
def test_format_choices(fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "co2.txt"
    path.write_bytes(b"CO2= 420.0 ppm\n")
    code, objects, summary, _ = parse(capsys, str(path), "--format", fmt)
    assert code == 0
    if fmt in ("auto", "gmp343"):
        assert objects == [{"kind": "co2", "ppm": 420.0, "sensor_format": "gmp343"}]
        assert summary == {"accepted": {"gmp343": 1}, "rejected": {}}
    else:
        # Not this format: nothing accepted, the bytes counted as rejected.
        assert objects == []
        assert summary["accepted"] == {}
        assert sum(summary["rejected"].values()) >= 1


def test_mixed_nmea_ais_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "boat.txt"
    path.write_bytes(
        b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"
        b"!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5C\r\n"
        b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*48\r\n"
    )
    code, objects, summary, _ = parse(capsys, str(path))
    assert code == 0
    assert [o["kind"] for o in objects] == ["fix", "ais"]
    assert summary == {"accepted": {"1": 1, "GGA": 1}, "rejected": {"checksum": 1}}


def test_reader_gone_still_counts_everything(tmp_path: Path) -> None:
    # stdout is a pipe whose reader has closed: parsing goes on, the summary counts it all.
    path = tmp_path / "long.bin"
    frames = bytearray()
    for k in range(20_000):
        ppm = 400 + k % 1000
        frames += READ_CO2 + modbus_frame(bytes([0xFE, 0x04, 0x02, ppm >> 8, ppm & 0xFF]))
    path.write_bytes(bytes(frames))
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    out = os.fdopen(write_fd, "w", encoding="ascii")
    err = io.StringIO()
    try:
        summary = parse_file(path, "senseair", out=out, err=err)
    finally:
        with contextlib.suppress(BrokenPipeError):
            out.close()
    assert summary == {"accepted": {"senseair": 20_000}, "rejected": {}}
    assert json.loads(err.getvalue().splitlines()[-1]) == summary


def _summary(capsys: pytest.CaptureFixture[str], path: Path, fmt: str) -> dict[str, Any]:
    code, _, summary, _ = parse(capsys, str(path), "--format", fmt)
    assert code == 0
    return summary


def test_auto_on_interleaved_nmea_ais_and_co2_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ais = (DATA.parent / "ais" / "harbour_traffic.ais").read_bytes().splitlines()
    nmea = (DATA.parent / "nmea" / "boat_gps_1hz.nmea").read_bytes().splitlines()
    co2 = (DATA / "gmp343_truck_inspection.txt").read_bytes().splitlines()
    mixed = []
    for k in range(max(len(ais), len(nmea), len(co2))):
        mixed += [part[k] for part in (nmea, ais, co2) if k < len(part)]
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"\r\n".join(mixed) + b"\r\n")
    expected: dict[str, dict[str, int]] = {"accepted": {}, "rejected": {}}
    for fmt, lines in (("ais", ais), ("nmea", nmea), ("gmp343", co2)):
        alone = tmp_path / f"{fmt}.txt"
        alone.write_bytes(b"\r\n".join(lines) + b"\r\n")
        for group in ("accepted", "rejected"):
            for key, count in _summary(capsys, alone, fmt)[group].items():
                expected[group][key] = expected[group].get(key, 0) + count
    summary = _summary(capsys, path, "auto")
    assert summary == expected
    assert summary["accepted"]["gmp343"] == 200
    assert summary["accepted"]["GGA"] == 60
    assert summary["accepted"]["5"] == 3


def test_auto_reports_an_unfinished_ais_message_at_the_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ais = (DATA.parent / "ais" / "harbour_traffic.ais").read_bytes().splitlines()
    first_of_two = next(x for x in ais if x.startswith(b"!AIVDM,2,1,"))
    path = tmp_path / "cut.txt"
    path.write_bytes(b"CO2= 420.0 ppm\r\n" + first_of_two + b"\r\n")
    code, objects, summary, _ = parse(capsys, str(path))
    assert code == 0
    assert [o["kind"] for o in objects] == ["co2"]
    assert summary == {"accepted": {"gmp343": 1}, "rejected": {"incomplete_fragment": 1}}


def test_format_choices_are_the_registry_names(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["parse", "--help"])
    text = capsys.readouterr().out
    assert "{" + ",".join(FORMAT_NAMES) + "}" in text


def test_auto_routes_ais_in_every_framing_to_the_ais_parser() -> None:
    from borderwatch.sensors.base import Accepted, feed_all
    from borderwatch.sensors.registry import AutoParser

    sentence = "AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5C"  # pyais README example
    lines = [f"!{sentence}", f"${sentence}", f"\\s:base1,c:1700000000*00\\!{sentence}"]
    items = feed_all(AutoParser(), "".join(f"{ln}\r\n" for ln in lines).encode("ascii"))
    accepted = [i for i in items if isinstance(i, Accepted)]
    assert [a.data["kind"] for a in accepted] == ["ais", "ais", "ais"]
    assert {a.data["mmsi"] for a in accepted} == {366053209}
