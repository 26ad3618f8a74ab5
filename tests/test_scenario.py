"""Scenario files: the examples validate, and bad files fail at the right line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from borderwatch.config.scenario import (
    AcrossBorderGenerator,
    RadarSensorConfig,
    WaypointMotion,
    load_scenario,
)
from borderwatch.config.yamlload import load_yaml_model, locate
from borderwatch.errors import ConfigError

SCENARIOS = Path(__file__).resolve().parents[1] / "config" / "scenarios"

VALID = """\
name: small
seed: 3
duration_s: 60
origin: {lat_deg: 44.1, lon_deg: 19.3, alt_m: 200}
border:
  - name: line
    kind: green
    points: [[-500, 0], [0, 20], [500, 0]]
platforms:
  - name: boat
    points: [[-400, -50], [400, -50]]
    speed_mps: 4
targets:
  - id: walker
    class: person
    start_s: 5
    end_s: 50
    motion:
      type: waypoints
      points: [[0, -200], [0, 200]]
      speed_mps: 1.5
  - class: boat
    motion:
      type: manoeuvring
      start_xy: [100, -100]
      heading_deg: 90
      speed_mps: 3
      speed_range_mps: [2, 6]
generate:
  - name: crosser
    heading: across_border
    count: 3
    class: person
    speed_mps: [1, 1.5]
    cross_at_s: [30, 50]
    before_s: [25, 30]
sensors:
  - id: tower
    type: position
    mount: {xy: [0, -300]}
    fov: {max_range_m: 1000, centre_azimuth_deg: 0, width_deg: 120}
    sigma_m: 5
    pd: 0.9
    clutter_rate: 2
    update_interval_s: 1
  - id: radar
    type: radar
    mount: {platform: boat}
    fov: {max_range_m: 800}
    sigma_range_m: 10
    sigma_bearing_deg: 1
    pd: 0.8
    update_interval_s: 2
    phase_s: 0.5
"""


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, fragment: str) -> int:
    """1-based line number of the first line containing ``fragment``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(f"{fragment!r} not in text")


def with_change(old: str, new: str) -> str:
    assert VALID.count(old) == 1, old
    return VALID.replace(old, new)


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_example_scenarios_validate(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.sensors


def test_valid_scenario_loads_with_defaults(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, VALID))
    assert scenario.target_ids() == ["walker", "target-1", "crosser-0", "crosser-1", "crosser-2"]
    motion = scenario.targets[0].motion
    assert isinstance(motion, WaypointMotion)
    assert motion.after_last == "end"
    assert motion.leg_speeds_mps() == [1.5]
    radar = scenario.sensors[1]
    assert isinstance(radar, RadarSensorConfig)
    assert radar.fov.width_deg == 360.0
    assert radar.clutter_rate == 0.0
    generator = scenario.generate[0]
    assert isinstance(generator, AcrossBorderGenerator)
    assert generator.approach == "manoeuvring"


@pytest.mark.parametrize(
    ("old", "new", "marker", "expected"),
    [
        ("    sigma_m: 5", "    sigma_m: -5", "sigma_m: -5", "greater than 0"),
        ("    pd: 0.9", "    pd: 1.2", "pd: 1.2", "less than or equal to 1"),
        ("    pd: 0.8", "    pd: -0.1", "pd: -0.1", "greater than or equal to 0"),
        ("duration_s: 60", "duration_s: sixty", "duration_s: sixty", "valid number"),
        ("      heading_deg: 90", "      heading_deg: 90\n      wobble: 3", "wobble", "Extra"),
        ("    clutter_rate: 2", "    clutter_rate: 2\n    colour: red", "colour", "Extra"),
        (
            "    points: [[-500, 0], [0, 20], [500, 0]]",
            "    points: [[-500, 0]]",
            "points: [[-500, 0]]",
            "at least 2",
        ),
        ("    kind: green", "    kind: purple", "kind: purple", "'green' or 'blue'"),
        ("    mount: {platform: boat}", "    mount: {platform: ship}", "platform: ship", "ship"),
        ("    speed_mps: [1, 1.5]", "    speed_mps: [2, 1]", "speed_mps: [2, 1]", "greater than"),
        ("  - id: radar", "  - id: tower", "id: tower\n", "duplicate id"),
        ("    end_s: 50", "    end_s: 2", "end_s: 2", "later than start_s"),
        (
            "      speed_mps: 1.5",
            "      speed_mps: [1.5, 2]",
            "speed_mps: [1.5, 2]",
            "one speed per leg",
        ),
    ],
)
def test_bad_value_names_file_and_line(
    tmp_path: Path, old: str, new: str, marker: str, expected: str
) -> None:
    text = with_change(old, new)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    error = info.value
    if marker == "id: tower\n":  # the duplicate is the second sensor
        want = [n for n, line in enumerate(text.splitlines(), 1) if "id: tower" in line][1]
    else:
        want = line_of(text, marker)
    assert error.line == want, str(error)
    assert error.path == str(path)
    assert expected in str(error)
    assert str(error).startswith(f"{path}:{want}: ")


def test_unknown_sensor_type_points_at_the_sensor(tmp_path: Path) -> None:
    text = with_change("    type: radar", "    type: sonar")
    with pytest.raises(ConfigError) as info:
        load_scenario(write(tmp_path, text))
    assert info.value.line == line_of(text, "- id: radar")
    assert "sonar" in str(info.value)


def test_missing_field_points_at_its_mapping(tmp_path: Path) -> None:
    text = with_change("    update_interval_s: 2\n", "")
    with pytest.raises(ConfigError) as info:
        load_scenario(write(tmp_path, text))
    assert info.value.line == line_of(text, "- id: radar")
    assert "sensors[1].update_interval_s: Field required" in str(info.value)


def test_yaml_syntax_error_has_its_line(tmp_path: Path) -> None:
    text = with_change("    pd: 0.9", "    pd: [0.9")
    with pytest.raises(ConfigError) as info:
        load_scenario(write(tmp_path, text))
    assert info.value.line is not None
    assert abs(info.value.line - line_of(text, "pd: [0.9")) <= 1
    assert "invalid YAML" in str(info.value)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="empty"):
        load_scenario(write(tmp_path, "# nothing\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_scenario(tmp_path / "absent.yaml")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_scenario(write(tmp_path, "- just\n- a list\n"))
    assert info.value.line == 1


def test_several_errors_are_summarised(tmp_path: Path) -> None:
    text = with_change("    pd: 0.9", "    pd: 2").replace("    sigma_m: 5", "    sigma_m: 0")
    with pytest.raises(ConfigError) as info:
        load_scenario(write(tmp_path, text))
    message = str(info.value)
    assert "also:" in message
    pd_line, sigma_line = line_of(text, "pd: 2"), line_of(text, "sigma_m: 0")
    assert info.value.line in (pd_line, sigma_line)
    other = sigma_line if info.value.line == pd_line else pd_line
    assert f"(line {other})" in message


class _Leaf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: float = Field(ge=0, le=1, description="A fraction.")


class _Tree(BaseModel):
    model_config = ConfigDict(extra="forbid")
    leaves: list[_Leaf] = Field(description="Leaves.")


def test_loader_is_generic(tmp_path: Path) -> None:
    text = "leaves:\n  - level: 0.5\n  -\n    level: 3\n"
    with pytest.raises(ConfigError) as info:
        load_yaml_model(write(tmp_path, text, "tree.yaml"), _Tree)
    assert info.value.line == 4
    assert "leaves[1].level" in str(info.value)
    tree = load_yaml_model(write(tmp_path, "leaves: [{level: 1}]\n", "ok.yaml"), _Tree)
    assert tree.leaves[0].level == 1.0


_keys = st.text(alphabet="abcdefghij", min_size=1, max_size=6)
_trees = st.recursive(
    st.integers(-5, 5),
    lambda children: (
        st.dictionaries(_keys, children, min_size=1, max_size=4)
        | st.lists(children, min_size=1, max_size=3)
    ),
    max_leaves=12,
)


def _leaf_paths(node: object, prefix: tuple[int | str, ...] = ()) -> list[tuple[int | str, ...]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaf_paths(v, (*prefix, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _leaf_paths(v, (*prefix, i))]
    return [prefix]


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_keys, _trees, min_size=1, max_size=4))
def test_locate_finds_the_line_of_every_leaf(tree: dict[str, object]) -> None:
    text = yaml.safe_dump(tree, default_flow_style=False)
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    assert root is not None
    lines = text.splitlines()
    for path in _leaf_paths(tree):
        line, where = locate(root, path)
        key = [p for p in path if isinstance(p, str)][-1]
        if isinstance(path[-1], str):
            assert lines[line - 1].lstrip(" -").startswith(f"{key}:"), (text, path, line)
        assert where.split(".")[0].split("[")[0] == path[0]


def test_documented_example_validates(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "scenarios.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    scenario = load_scenario(write(tmp_path, example))
    assert scenario.name == "small-example"
