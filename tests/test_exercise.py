"""The joint patrol exercise end to end: three nodes and a centre through a real Mosquitto.

The shipped ``joint-patrol-exercise`` scenario runs for its first 120 s at 20× speed against the
session's broker; the console writes to a real pseudo-terminal (so the progress line is redrawn
in place), read by a thread. Nothing is mocked: detections travel as MQTT messages to the nodes,
alerts and tracks through the nodes' outboxes to the centre, which stores them in SQLite.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from borderwatch.config.scenario import load_scenario
from borderwatch.edge.store import AlertStore
from borderwatch.errors import ConfigError
from borderwatch.exercise import ExerciseClock, node_sensors, run_exercise
from borderwatch.scenarios import resolve_scenario
from tests.conftest import MosquittoBroker, _mosquitto_binary

NODES = {"boat-1", "boat-2", "mobile-1"}


@pytest.fixture(scope="module")
def exercise_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker of the exercise's own: its node ids (boat-1...) and retained topics must not
    meet the sessions and retained messages other tests leave on the shared broker."""
    broker = MosquittoBroker(_mosquitto_binary(), tmp_path_factory.mktemp("exercise-broker"))
    broker.start()
    try:
        yield broker.url
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def exercise(exercise_broker: str, tmp_path_factory: pytest.TempPathFactory):
    """One short exercise run: its summary, what the terminal showed, and the output folder."""
    out = tmp_path_factory.mktemp("exercise")
    master, slave = os.openpty()
    shown = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the slave side was closed
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    with os.fdopen(slave, "w", encoding="utf-8", closefd=True) as terminal:
        summary = run_exercise(
            "joint-patrol-exercise",
            out,
            speed=20.0,
            duration_s=120.0,
            broker_url=exercise_broker,
            stream=terminal,
        )
    reader.join(timeout=5)
    os.close(master)
    return summary, shown.decode("utf-8", errors="replace"), out


def test_three_nodes_report_to_the_centre_and_crossings_are_alerted(exercise) -> None:
    summary, _shown, _out = exercise
    assert set(summary["nodes"]) == NODES
    centre = summary["centre"]
    assert len(centre["nodes_heard"]) >= 2
    crossings = centre["crossings"]
    assert crossings["alerted"] >= 1
    assert crossings["alerted"] + crossings["missed"] == crossings["in_view"]
    assert crossings["false_alerts"] <= max(2, crossings["alerted"] // 2)
    # Every node's sensors were fed and every node tracked something it could see.
    for node in summary["nodes"].values():
        assert node["detections_published"] > 0
        assert node["tracker"]["detections_received"] == node["detections_published"]
        assert node["tracks"]["snapshots"] > 0


def test_no_alert_event_is_lost_between_nodes_and_centre(exercise) -> None:
    summary, _shown, out = exercise
    sent = 0
    for node_id, node in summary["nodes"].items():
        events = node["alert_events"]
        assert events["lost"] == 0, node_id
        assert events["sent"] == events["received_by_centre"] + events["in_outbox_at_stop"]
        sent += events["sent"]
    assert sent > 0
    # The centre's own database, read independently: distinct node alert events by msg_id.
    with AlertStore.open(f"sqlite:///{out / 'centre.db'}") as store:
        views = store.alerts(limit=100_000)
        node_events = {
            e.msg_id
            for v in views
            if not v.alert_id.startswith("centre-1:")
            for e in store.alert_events(v.alert_id)
        }
        centre_ids = {v.alert_id for v in views if v.alert_id.startswith("centre-1:")}
    assert len(node_events) == summary["centre"]["node_alert_events_received"]
    assert len(centre_ids) == summary["centre"]["alerts"]
    assert json.loads((out / "summary.json").read_text()) == summary


def test_the_terminal_shows_alerts_as_raised_a_live_progress_line_and_the_summary(
    exercise,
) -> None:
    summary, shown, _out = exercise
    assert "node boat-1" in shown
    assert "CENTRE    NEW  centre-1:" in shown
    assert any(f"{n:<9} new  " in shown for n in summary["nodes"])
    # On a terminal the progress line is redrawn in place, not repeated on new lines.
    assert "\r\x1b[K  t = " in shown
    assert "Summary, scored against the simulation's truth" in shown
    table = shown[shown.index("Summary") :]
    for name in (*NODES, "centre"):
        assert f"\n  {name:<10}" in table.replace("\r\n", "\n")


def test_sensors_belong_to_the_node_named_after_their_platform() -> None:
    scenario = load_scenario(resolve_scenario("joint-patrol-exercise"))
    layout = node_sensors(scenario)
    assert set(layout) == NODES
    for node_id, sensors in layout.items():
        assert all(scenario.sensors[j].mount.platform == node_id for j in sensors)
    # A fixed sensor belongs to no node; river-crossing's tower is left out.
    river = load_scenario(resolve_scenario("river-crossing"))
    assert node_sensors(river) == {"patrol-boat": [0, 1]}


def test_a_platform_name_that_cannot_be_a_node_id_is_refused(tmp_path: Path) -> None:
    scenario = load_scenario(resolve_scenario("joint-patrol-exercise"))
    bad = scenario.model_copy(
        update={
            "platforms": [p.model_copy(update={"name": "Boat 1"}) for p in scenario.platforms],
            "sensors": [
                s.model_copy(update={"mount": s.mount.model_copy(update={"platform": "Boat 1"})})
                for s in scenario.sensors
            ],
        }
    )
    with pytest.raises(ConfigError, match="cannot be a node id"):
        node_sensors(bad)
    with pytest.raises(ConfigError, match="cannot be a node id"):
        run_exercise(bad, tmp_path, broker_url="mqtt://127.0.0.1:9")
    assert not (tmp_path / "summary.json").exists()


def test_clock_stands_still_until_begun_and_while_held() -> None:
    clock = ExerciseClock(1_700_000_000.0, 50.0)
    assert clock() == 1_700_000_000.0

    async def main() -> list[float]:
        seen = [clock.scenario_t()]
        await asyncio.sleep(0.05)
        seen.append(clock.scenario_t())  # not begun: still 0
        clock.begin()
        await clock.until(1.0)
        clock.hold()
        held = clock.scenario_t()
        await asyncio.sleep(0.05)
        seen += [held, clock.scenario_t()]
        clock.resume()
        await clock.until(held + 1.0)
        seen.append(clock.scenario_t())
        return seen

    seen = asyncio.run(main())
    assert seen[0] == seen[1] == 0.0
    assert seen[2] == seen[3] >= 1.0
    assert seen[4] >= seen[3] + 1.0
    assert clock.held_wall_s > 0.0


@pytest.mark.parametrize("speed", [0.0, -1.0, float("nan"), float("inf")])
def test_clock_refuses_a_speed_that_is_not_a_positive_number(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        ExerciseClock(0.0, speed)
