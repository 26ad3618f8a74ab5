"""The bench command produces consistent figures (it is measured, never asserted on time)."""

from __future__ import annotations

import json

import pytest

from borderwatch.bench import run_bench, speed_scenario
from borderwatch.cli import main
from borderwatch.config.scenario import RandomGenerator
from borderwatch.simulator.run import simulate


def test_speed_figures_are_consistent_with_the_simulated_load():
    result = run_bench(targets=[10, 40], scans=12, seed=3, quality=False)
    rows = result["speed"]
    assert [r["targets"] for r in rows] == [10, 40]
    for row in rows:
        sim = simulate(speed_scenario(row["targets"], 12, 3))
        assert row["detections"] == sum(len(s.detections) for s in sim.scans)
        assert row["scans"] == 12
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert row["detections_per_s"] > 0
        assert row["tracks"] >= 0.8 * row["targets"]
    assert "det/s" in result["text"]
    assert "Tracking and crossing alerts" not in result["text"]


def test_speed_scenario_keeps_the_target_density_of_the_thousand_target_case():
    small, large = speed_scenario(10, 5, 0), speed_scenario(1000, 5, 0)
    walkers = [s.generate[0] for s in (small, large)]
    assert all(isinstance(g, RandomGenerator) for g in walkers)
    area = [(g.region[2] - g.region[0]) ** 2 for g in walkers if isinstance(g, RandomGenerator)]
    assert area[1] / area[0] == pytest.approx(100.0)
    assert sum(g.count for g in large.generate) == 1000


def test_bench_command_prints_json(capsys: pytest.CaptureFixture[str]):
    assert main(["bench", "--targets", "5", "--scans", "8", "--speed-only", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["speed"][0]["targets"] == 5
    assert "text" not in out


def test_parser_bench_accepts_every_synthetic_message():
    from borderwatch.bench_parsers import run_parser_bench

    result = run_parser_bench(messages=400)
    rows = {r["parser"]: r for r in result["parsers"]}
    assert set(rows) == {"nmea", "ais", "gmp343", "senseair"}
    for row in rows.values():
        assert row["messages"] == 400  # every synthetic message is accepted
        assert row["per_s"] > 0
    assert "messages/s" in result["text"]
