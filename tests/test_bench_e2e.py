"""``borderwatch bench e2e``: the load's geometry, and a small run through a real Mosquitto.

No figure is asserted: the run must produce a well-formed result in which every alert the node
delivered reached the centre exactly once.
"""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from borderwatch.bench_e2e import (
    BURSTS_PER_S,
    DETECTION_LIST,
    SPACING_M,
    BurstMaker,
    CrossingLoad,
    run_e2e_bench,
)
from borderwatch.schema import Detection
from borderwatch.sensors.base import Accepted
from borderwatch.sensors.jsondet import JsonDetectionParser

CONTRACT_KEYS = (
    "p50_ms",
    "p99_ms",
    "max_ms",
    "detections_per_s",
    "alerts_sent",
    "alerts_received",
    "alerts_duplicated",
    "drops",
)


@pytest.mark.parametrize(("targets", "seconds"), [(1, 5.0), (50, 8.0), (1000, 60.0)])
def test_crossers_cross_their_line_during_the_run_and_others_do_not(
    targets: int, seconds: float
) -> None:
    load = CrossingLoad.make(targets, seconds, np.random.default_rng(3))
    everyone = np.arange(targets)
    before, after = load.positions(0.0, everyone), load.positions(seconds, everyone)
    lines = load.lines_y
    # A target's line is the first one north of where it starts.
    own = np.array([lines[lines >= y].min() for y in before[:, 1]])
    crossed = (before[:, 1] < own) & (after[:, 1] >= own)
    assert crossed.sum() == load.crossers
    assert np.all(np.abs(before[:, 0]) < load.half_width_m)


def test_targets_never_come_within_a_gate_of_each_other() -> None:
    seconds = 60.0
    load = CrossingLoad.make(400, seconds, np.random.default_rng(5))
    everyone = np.arange(len(load))
    for t in np.linspace(0.0, seconds, 13):
        xy = load.positions(float(t), everyone)
        gaps = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
        np.fill_diagonal(gaps, np.inf)
        assert gaps.min() >= SPACING_M - 1e-6


def test_bursts_cover_every_target_once_a_second_with_their_scheduled_stamp() -> None:
    load = CrossingLoad.make(37, 10.0, np.random.default_rng(1))
    maker = BurstMaker(load, 1_800_000_000.25, np.random.default_rng(2))
    sizes = []
    for k in range(BURSTS_PER_S):
        stamp, messages = maker.burst(k)
        assert stamp == maker.publisher.epoch + timedelta(seconds=k / BURSTS_PER_S)
        # The burst goes out as one array payload that the node's parser takes whole.
        (item,) = JsonDetectionParser().feed(DETECTION_LIST.dump_json(messages))
        assert isinstance(item, Accepted)
        parsed = item.data["messages"]
        assert parsed == messages
        assert all(isinstance(m, Detection) and m.time == stamp for m in parsed)
        sizes.append(len(parsed))
    assert sum(sizes) == len(load)


@pytest.mark.parametrize("rate_hz", [2, 5, 10])
def test_at_a_higher_rate_every_target_is_in_rate_bursts_a_second(rate_hz: int) -> None:
    load = CrossingLoad.make(23, 10.0, np.random.default_rng(1))
    maker = BurstMaker(load, 1_800_000_000.0, np.random.default_rng(2), rate_hz)
    seen = np.zeros(len(load), dtype=int)
    for k in range(BURSTS_PER_S):
        _stamp, messages = maker.burst(k)
        # Each detection lies within a few sigma of one target's true position.
        xy = maker.publisher.frame.to_enu(
            np.array([m.measurement.position.lat_deg for m in messages]),  # type: ignore[union-attr]
            np.array([m.measurement.position.lon_deg for m in messages]),  # type: ignore[union-attr]
        )
        truth = load.positions(k / BURSTS_PER_S, np.arange(len(load)))
        nearest = np.argmin(np.hypot(*(xy[:, None, :2] - truth[None]).transpose(2, 0, 1)), 1)
        seen[nearest] += 1
    assert seen.tolist() == [rate_hz] * len(load)


def test_bad_arguments_are_refused_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="at least one target"):
        CrossingLoad.make(0, 10.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="seconds"):
        run_e2e_bench(10, 0.0)
    with pytest.raises(ValueError, match="rate_hz"):
        run_e2e_bench(10, 5.0, rate_hz=3)
    with pytest.raises(ValueError, match="brokers the bench starts"):
        run_e2e_bench(10, 60.0, broker="mqtt://127.0.0.1:1883", outage_s=5.0)
    with pytest.raises(ValueError, match="seconds >= 53"):
        run_e2e_bench(10, 30.0, outage_s=5.0)
    with pytest.raises(ValidationError):
        run_e2e_bench(10, 5.0, broker="http://127.0.0.1:1883")


def test_small_run_through_mosquitto_delivers_every_alert_once(mosquitto: str) -> None:
    result = run_e2e_bench(50, 8.0, broker=mosquitto, seed=11)
    text = result.pop("text")
    decoded = json.loads(json.dumps(result))
    assert all(key in decoded for key in CONTRACT_KEYS)
    assert decoded["broker"] == "external"
    assert "detection to centre alert" in text
    assert decoded["detections_published"] == 50 * 8
    assert decoded["alerts_sent"] > 0
    assert decoded["alerts_received"] == decoded["alerts_sent"]
    assert decoded["alerts_duplicated"] == 0
    assert decoded["alerts_pending"] + decoded["alerts_sent"] == decoded["alerts_raised"]
    assert decoded["drops"] == decoded["detections_published"] - decoded["detections_processed"]
    # Every centre alert event was either timed against its burst or counted apart.
    assert (
        decoded["latency_events"] + decoded["centre_alert_events_without_scan"]
        == (decoded["centre_alert_events_received"])
    )
