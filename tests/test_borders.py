"""Border geometry: sides, signed distance, P(left), path crossings, GeoJSON reading."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from borderwatch.errors import BorderError
from borderwatch.fusion.borders import (
    FRAME_MEMBER,
    Border,
    BorderKind,
    PathCrossing,
    border_from_geojson,
    load_border,
)
from borderwatch.fusion.frames import LocalFrame

FloatArray = NDArray[np.float64]

# A point on the Drina, where Bosnia and Herzegovina meets Serbia.
FRAME = LocalFrame(lat_deg=44.2, lon_deg=19.4, alt_m=180.0)


def line(*points: tuple[float, float]) -> FloatArray:
    return np.array(points, dtype=np.float64)


def border(*lines: FloatArray, kinds: list[BorderKind] | None = None) -> Border:
    kinds = kinds or [BorderKind.GREEN] * len(lines)
    return Border(list(lines), kinds, [f"l{i}" for i in range(len(lines))])


def pts(*points: tuple[float, float]) -> FloatArray:
    return np.array(points, dtype=np.float64).reshape(-1, 2)


def crossings(b: Border, path: FloatArray, t: list[float] | None = None) -> list[PathCrossing]:
    times = np.arange(len(path), dtype=np.float64) if t is None else np.array(t, dtype=np.float64)
    return b.path_crossings(times, path)


def write_json(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


# ------------------------------------------------------------------ signed distance and side
EAST = border(line((0.0, 0.0), (10.0, 0.0)))  # left is north


def test_signed_distance_is_positive_on_the_left_of_a_straight_line() -> None:
    prox = EAST.proximity(pts((3, 4), (3, -4), (7, 0.5), (7, -0.5)))
    np.testing.assert_allclose(prox.signed_distance_m, [4, -4, 0.5, -0.5])
    np.testing.assert_array_equal(prox.segment, [0, 0, 0, 0])
    # The gradient points to the left side on both sides of the line.
    np.testing.assert_allclose(prox.gradient, [[0, 1]] * 4, atol=1e-12)
    np.testing.assert_array_equal(EAST.side(pts((3, 4), (3, -4))), [1, -1])


def test_reversing_the_line_swaps_the_sides() -> None:
    west = border(line((10.0, 0.0), (0.0, 0.0)))
    p = pts((3, 4), (3, -4))
    np.testing.assert_allclose(west.proximity(p).signed_distance_m, [-4, 4])
    np.testing.assert_array_equal(west.side(p), [-1, 1])


def test_points_beyond_the_ends_measure_distance_to_the_end_vertex() -> None:
    prox = EAST.proximity(pts((13, 4), (-3, -4)))
    np.testing.assert_allclose(prox.signed_distance_m, [5, -5])
    np.testing.assert_allclose(prox.gradient, [[0.6, 0.8], [0.6, 0.8]])


def test_points_on_the_line_count_as_left_with_zero_distance() -> None:
    prox = EAST.proximity(pts((0, 0), (5, 0), (10, 0)))
    np.testing.assert_allclose(prox.signed_distance_m, 0.0)
    np.testing.assert_array_equal(EAST.side(pts((5, 0))), [1])
    np.testing.assert_allclose(prox.gradient, [[0, 1]] * 3)


def test_empty_query_gives_empty_arrays() -> None:
    prox = EAST.proximity(np.zeros((0, 2)))
    assert prox.segment.shape == (0,)
    assert prox.signed_distance_m.shape == (0,)
    assert prox.gradient.shape == (0, 2)


def test_polyline_uses_the_nearest_segment() -> None:
    b = border(line((0, 0), (10, 0), (20, 10)))  # east, then north-east
    prox = b.proximity(pts((5, 3), (5, -3), (15, 0), (12, 8)))
    np.testing.assert_array_equal(prox.segment, [0, 0, 1, 1])
    r = math.sqrt(12.5)
    np.testing.assert_allclose(prox.signed_distance_m, [3, -3, -r, 3 * math.sqrt(2)])
    np.testing.assert_array_equal(b.side(pts((5, 3), (5, -3), (15, 0), (12, 8))), [1, -1, -1, 1])


# Sharp left turn: east to the tip (100, 0), then back west-north-west. The left side of the line
# near the tip is the inside of the triangle; outside the tip is the right side.
TIP = line((0, 0), (100, 0), (0, 30))
TRIANGLE = shapely.Polygon(TIP)
NEAR_TIP = pts(
    (101, 0.5),  # outside, nearest the tip: the first segment's normal alone would say "left"
    (102, 1.0),
    (101, 0.1),
    (100.5, 2.0),
    (101, -0.5),
    (99, 0.1),  # inside the acute corner
    (98, 0.3),
    (99.5, 0.05),
    (100.2, -0.01),
)


def _side_from_polygon(poly: Any, xy: FloatArray, left_inside: bool) -> NDArray[np.int64]:
    inside = shapely.contains_xy(poly, xy[:, 0], xy[:, 1])
    return np.where(inside == left_inside, 1, -1).astype(np.int64)


def test_side_at_a_sharp_convex_corner_follows_the_pseudo_normal() -> None:
    b = border(TIP)
    expected = _side_from_polygon(TRIANGLE, NEAR_TIP, left_inside=True)
    assert expected.tolist() == [-1, -1, -1, -1, -1, 1, 1, 1, -1]  # hand geometry agrees
    np.testing.assert_array_equal(b.side(NEAR_TIP), expected)
    # Distances are plain Euclidean distances to the polyline, whatever the side.
    dist = shapely.distance(shapely.LineString(TIP), shapely.points(NEAR_TIP))
    np.testing.assert_allclose(np.abs(b.proximity(NEAR_TIP).signed_distance_m), dist)


def test_side_at_a_sharp_right_turn_is_the_mirror_image() -> None:
    mirrored = TIP * [1.0, -1.0]
    b = border(mirrored)
    xy = NEAR_TIP * [1.0, -1.0]
    expected = _side_from_polygon(shapely.Polygon(mirrored), xy, left_inside=False)
    assert expected.tolist() == [1, 1, 1, 1, 1, -1, -1, -1, 1]
    np.testing.assert_array_equal(b.side(xy), expected)


def test_right_angle_corner_sides_both_ways() -> None:
    b = border(line((0, 0), (10, 0), (10, 10)))  # east then north: left is the inner corner
    xy = pts((11, -1), (12, -0.5), (9, 1), (9.9, 0.1), (11, 1), (9, -1))
    np.testing.assert_array_equal(b.side(xy), [-1, -1, 1, 1, -1, -1])


def test_side_at_a_vertex_shared_by_two_lines_matches_the_joined_polyline() -> None:
    joined = border(TIP)
    split = border(TIP[:2], TIP[1:], kinds=[BorderKind.GREEN, BorderKind.BLUE])
    np.testing.assert_array_equal(split.side(NEAR_TIP), joined.side(NEAR_TIP))


# x-monotone polylines: "left" is exactly "above the graph", which shapely decides independently.
@st.composite
def monotone_polylines(draw: st.DrawFn) -> FloatArray:
    n = draw(st.integers(min_value=1, max_value=12))
    xs = draw(
        st.lists(
            st.floats(min_value=-120, max_value=120, allow_nan=False),
            min_size=n,
            max_size=n,
            unique=True,
        )
    )
    xs = sorted(xs)
    assume(all(b - a >= 0.5 for a, b in itertools.pairwise(xs)))
    ys = draw(st.lists(st.floats(min_value=-50, max_value=50), min_size=n + 2, max_size=n + 2))
    return np.column_stack([[-2000.0, *xs, 2000.0], ys]).astype(np.float64)


coords = st.floats(min_value=-100, max_value=100, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(poly=monotone_polylines(), x=coords, y=coords)
def test_side_of_x_monotone_polyline_matches_polygon_above_it(
    poly: FloatArray, x: float, y: float
) -> None:
    p = shapely.Point(x, y)
    assume(shapely.LineString(poly).distance(p) >= 1e-3)
    above = shapely.Polygon([*poly.tolist(), (2000.0, 1e4), (-2000.0, 1e4)])
    expected = 1 if above.contains(p) else -1
    assert border(poly).side(pts((x, y))).tolist() == [expected]


# ------------------------------------------------------------------------------ P(left side)
def test_p_left_is_one_half_on_the_line_and_tends_to_one_far_left() -> None:
    cov = np.broadcast_to(np.diag([4.0, 4.0]), (4, 2, 2))
    p = EAST.proximity(pts((5, 0), (5, 100), (5, -100), (5, 2))).p_left(cov)
    assert p[0] == pytest.approx(0.5, abs=1e-12)
    assert p[1] == pytest.approx(1.0, abs=1e-12)
    assert p[2] == pytest.approx(0.0, abs=1e-12)
    # Gaussian along the normal: P = Φ(d / σ) with σ = 2 m.
    assert p[3] == pytest.approx(0.5 * (1 + math.erf(1 / math.sqrt(2))), rel=1e-9)


def test_p_left_is_monotone_in_signed_distance() -> None:
    b = border(line((0, 0), (50, 20), (100, 0)))
    d = np.linspace(-30, 30, 241)
    # Walk along the normal of the first segment through its midpoint.
    n = np.array([-20.0, 50.0]) / math.hypot(20, 50)
    xy = np.array([25.0, 10.0]) + d[:, None] * n
    prox = b.proximity(xy)
    np.testing.assert_allclose(prox.signed_distance_m, d, atol=1e-9)
    p = prox.p_left(np.broadcast_to(np.eye(2) * 9.0, (len(d), 2, 2)))
    assert np.all(np.diff(p) >= 0)
    assert np.all(np.diff(p)[np.abs(d[:-1]) < 10] > 0)  # strictly where it is not saturated
    assert p[0] < 1e-6
    assert p[-1] > 1 - 1e-6


def test_p_left_uses_only_the_variance_along_the_normal() -> None:
    angle = math.radians(30)
    u = np.array([math.cos(angle), math.sin(angle)])
    nrm = np.array([-u[1], u[0]])
    b = border(line((0, 0), tuple(200 * u)))
    xy = np.array([100 * u + 2.5 * nrm, 100 * u - 1.0 * nrm, 100 * u + 7 * nrm])
    prox = b.proximity(xy)

    def cov(along: float, across: float) -> FloatArray:
        rot = np.column_stack([u, nrm])
        c = rot @ np.diag([along**2, across**2]) @ rot.T
        return np.broadcast_to(c, (3, 2, 2)).copy()

    round_ = prox.p_left(cov(3.0, 3.0))
    stretched = prox.p_left(cov(300.0, 3.0))
    np.testing.assert_allclose(stretched, round_, rtol=1e-12, atol=1e-15)
    # ... whereas spreading across the line does change it.
    wide = prox.p_left(cov(3.0, 30.0))
    assert np.all(np.abs(wide - 0.5) < np.abs(round_ - 0.5))


# --------------------------------------------------------------------------- path crossings
def test_straight_path_crossing_left_to_right() -> None:
    out = crossings(EAST, pts((5, 10), (5, -10)), t=[10.0, 20.0])
    assert out == [PathCrossing(t=15.0, index=0, segment=0, direction="left_to_right", x=5, y=0)]


def test_straight_path_crossing_right_to_left_interpolates_time() -> None:
    # Crosses y = 0 three quarters of the way along the step.
    (c,) = crossings(EAST, pts((1, -30), (9, 10)), t=[2.0, 6.0])
    assert c.direction == "right_to_left"
    assert c.t == pytest.approx(5.0)
    assert c.x == pytest.approx(7.0)
    assert c.y == pytest.approx(0.0, abs=1e-12)


def test_path_that_stays_on_one_side_or_runs_along_the_line_does_not_cross() -> None:
    assert crossings(EAST, pts((1, 5), (9, 0.001))) == []
    assert crossings(EAST, pts((-5, 1), (20, 1), (20, 2))) == []
    assert crossings(EAST, pts((2, 0), (8, 0))) == []  # along the line itself
    assert crossings(EAST, pts((12, 5), (12, -5))) == []  # past the end of the line
    assert crossings(EAST, pts((5, 5))) == []  # a single sample is no path


def test_path_touching_the_line_and_turning_back_does_not_cross() -> None:
    assert crossings(EAST, pts((5, 5), (5, 0), (6, 5))) == []


def test_straight_path_tangent_to_a_vertex_does_not_cross() -> None:
    peak = border(line((0, 0), (5, 5), (10, 0)))
    assert crossings(peak, pts((0, 5), (10, 5))) == []


def test_path_through_an_interior_vertex_crosses_once() -> None:
    peak = border(line((0, 0), (5, 5), (10, 0)))
    out = crossings(peak, pts((5, 10), (5, 0)))
    assert [(c.direction, c.x, c.y) for c in out] == [("left_to_right", 5.0, 5.0)]


def test_path_crossing_and_coming_back_crosses_twice() -> None:
    out = crossings(EAST, pts((5, 10), (5, -10), (6, 10)), t=[0.0, 4.0, 6.0])
    assert [c.direction for c in out] == ["left_to_right", "right_to_left"]
    assert [c.index for c in out] == [0, 1]
    assert [c.t for c in out] == [pytest.approx(2.0), pytest.approx(5.0)]


def test_straight_path_crossing_a_zigzag_twice() -> None:
    peak = border(line((0, 0), (10, 10), (20, 0)))
    out = crossings(peak, pts((-5, 5), (25, 5)), t=[0.0, 30.0])
    assert [(c.segment, c.direction) for c in out] == [(0, "left_to_right"), (1, "right_to_left")]
    assert [c.t for c in out] == [pytest.approx(10.0), pytest.approx(20.0)]
    assert [c.x for c in out] == [pytest.approx(5.0), pytest.approx(15.0)]


def test_path_crossing_both_lines_of_a_multilinestring() -> None:
    doc = {
        "type": "MultiLineString",
        "coordinates": [[[-100, 0], [100, 0]], [[100, 50], [-100, 50]]],  # second one westward
    }
    b = border_from_geojson(doc)
    out = crossings(b, pts((0, 75), (0, -25)), t=[0.0, 100.0])
    assert [(c.segment, c.direction) for c in out] == [(1, "right_to_left"), (0, "left_to_right")]
    assert [c.t for c in out] == [pytest.approx(25.0), pytest.approx(75.0)]
    assert b.line.tolist() == [0, 1]


@settings(max_examples=200, deadline=None)
@given(poly=monotone_polylines(), x0=coords, y0=coords, x1=coords, y1=coords)
def test_crossings_alternate_and_their_parity_is_the_change_of_side(
    poly: FloatArray, x0: float, y0: float, x1: float, y1: float
) -> None:
    """For an x-monotone polyline reaching far beyond the path, and a straight path with both
    ends at least 1 m from the border that keeps clear of the border's vertices, every crossing
    is transversal: crossings alternate in direction, the first leaves the start's side, and
    there is an odd number of them exactly when the ends are on different sides."""
    line_ = shapely.LineString(poly)
    path = shapely.LineString([(x0, y0), (x1, y1)])
    assume(line_.distance(shapely.Point(x0, y0)) >= 1.0)
    assume(line_.distance(shapely.Point(x1, y1)) >= 1.0)
    assume(path.distance(shapely.MultiPoint(poly)) >= 1e-3)
    b = border(poly)
    side0, side1 = b.side(pts((x0, y0), (x1, y1))).tolist()
    out = crossings(b, pts((x0, y0), (x1, y1)))
    event(f"{len(out)} crossings")
    assert (len(out) % 2 == 1) == (side0 != side1)
    expected = (
        ["left_to_right", "right_to_left"] if side0 == 1 else ["right_to_left", "left_to_right"]
    )
    assert [c.direction for c in out] == [expected[k % 2] for k in range(len(out))]
    assert [c.t for c in out] == sorted(c.t for c in out)
    if out:
        on_border = shapely.distance(line_, shapely.points([(c.x, c.y) for c in out]))
        assert np.all(on_border < 1e-6)
    # The count agrees with shapely's intersection of the two lines.
    hits = [g for g in shapely.get_parts(line_.intersection(path)) if not g.is_empty]
    assert all(g.geom_type == "Point" for g in hits)
    assert len(out) == len(hits)


# ---------------------------------------------------------------------------- GeoJSON reading
def test_to_geojson_round_trip_keeps_lines_kinds_and_names(tmp_path: Path) -> None:
    a = line((0.0, 0.0), (120.25, 40.5), (300.125, -10.75))
    b = line((500.0, 500.0), (400.0, 650.0))
    original = Border([a, b], [BorderKind.GREEN, BorderKind.BLUE], ["ridge", "Drina"])
    doc = original.to_geojson(FRAME)
    assert doc["type"] == "FeatureCollection"
    assert doc[FRAME_MEMBER]["type"] == "local_enu"
    assert doc[FRAME_MEMBER]["origin"] == {"lat_deg": 44.2, "lon_deg": 19.4, "alt_m": 180.0}
    path = write_json(tmp_path / "border.geojson", doc)
    again = load_border(path)
    np.testing.assert_allclose(again.a, original.a, atol=1e-3)
    np.testing.assert_allclose(again.b, original.b, atol=1e-3)
    assert again.kind.tolist() == [0, 0, 1]
    assert again.line.tolist() == [0, 0, 1]
    assert again.names == ["ridge", "Drina"]
    assert again.to_geojson(FRAME) == doc


def test_defaults_for_kind_and_name() -> None:
    b = border_from_geojson(
        {
            "type": "Feature",
            "properties": None,
            "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 0]]},
        }
    )
    assert b.kind.tolist() == [BorderKind.GREEN]
    assert b.names == ["line-0"]


def wgs84_doc(frame: LocalFrame, local: FloatArray) -> dict[str, Any]:
    """A blue border Feature in GeoJSON lon/lat, from local metres of ``frame``."""
    latlon = frame.to_wgs84(local)
    return {
        "type": "Feature",
        "properties": {"kind": "blue", "name": "Drina"},
        "geometry": {"type": "LineString", "coordinates": latlon[:, ::-1].tolist()},
        FRAME_MEMBER: {"type": "wgs84"},
    }


DRINA = line((-1500.0, -800.0), (-200.0, 35.5), (900.0, 1200.0), (2500.0, 1300.0))


def test_wgs84_border_is_converted_with_the_local_frame(tmp_path: Path) -> None:
    frame = LocalFrame(lat_deg=44.2, lon_deg=19.4)
    path = write_json(tmp_path / "drina.geojson", wgs84_doc(frame, DRINA))
    b = load_border(path, frame)
    np.testing.assert_allclose(np.vstack([b.a, b.b[-1:]]), DRINA, atol=0.01)
    assert b.kind.tolist() == [BorderKind.BLUE] * 3
    assert b.names == ["Drina"]
    # Written back in local metres and read without a frame: the same line.
    back = border_from_geojson(json.loads(json.dumps(b.to_geojson(frame))))
    np.testing.assert_allclose(np.vstack([back.a, back.b[-1:]]), DRINA, atol=0.01)


def test_wgs84_border_round_trip_with_a_frame_above_the_ellipsoid(tmp_path: Path) -> None:
    path = write_json(tmp_path / "drina.geojson", wgs84_doc(FRAME, DRINA))
    b = load_border(path, FRAME)
    np.testing.assert_allclose(np.vstack([b.a, b.b[-1:]]), DRINA, atol=0.01)


def test_wgs84_border_elsewhere_lands_elsewhere() -> None:
    latlon = FRAME.to_wgs84(line((0.0, 0.0), (100.0, 0.0)))
    doc = {
        "type": "LineString",
        "coordinates": latlon[:, ::-1].tolist(),
        FRAME_MEMBER: {"type": "wgs84"},
    }
    here = border_from_geojson(doc, FRAME)
    there = border_from_geojson(doc, LocalFrame(lat_deg=44.2, lon_deg=19.41))
    np.testing.assert_allclose(here.a[0], [0, 0], atol=0.01)
    # The other origin is 0.01° of longitude (about 800 m) further east.
    assert there.a[0, 0] == pytest.approx(-800, abs=5)


LS = {"type": "LineString", "coordinates": [[0, 0], [10, 0]]}
BAD_BORDERS: dict[str, tuple[str, str]] = {
    "polygon": (
        json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}),
        "must be a LineString",
    ),
    "point": (json.dumps({"type": "Point", "coordinates": [0, 0]}), "must be a LineString"),
    "collection": (
        json.dumps({"type": "GeometryCollection", "geometries": [LS]}),
        "must be a LineString",
    ),
    "feature-polygon": (
        json.dumps(
            {
                "type": "Feature",
                "properties": {},
                "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
            }
        ),
        "must be a LineString",
    ),
    "repeated-vertex": (
        json.dumps({"type": "LineString", "coordinates": [[0, 0], [5, 5], [5, 5], [9, 0]]}),
        "zero-length",
    ),
    "nan": ('{"type": "LineString", "coordinates": [[0, 0], [NaN, 1]]}', "finite"),
    "infinity": ('{"type": "LineString", "coordinates": [[0, 0], [Infinity, 1]]}', "finite"),
    "unknown-kind": (
        json.dumps({"type": "Feature", "properties": {"kind": "red"}, "geometry": LS}),
        "kind",
    ),
    "no-features": (json.dumps({"type": "FeatureCollection", "features": []}), "no features"),
    "feature-not-object": (
        json.dumps({"type": "FeatureCollection", "features": [LS, 3]}),
        "feature must be an object",
    ),
    "wgs84-without-frame": (json.dumps({**LS, FRAME_MEMBER: {"type": "wgs84"}}), "WGS-84"),
    "array": ("[1, 2]", "must be an object"),
    "string-coordinates": (
        json.dumps({"type": "LineString", "coordinates": [["a", "b"], [1, 2]]}),
        "invalid geometry",
    ),
}


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning:shapely")
@pytest.mark.parametrize("case", sorted(BAD_BORDERS))
def test_bad_border_files_raise_border_error_naming_the_file(tmp_path: Path, case: str) -> None:
    text, words = BAD_BORDERS[case]
    path = tmp_path / f"{case}.geojson"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BorderError) as err:
        load_border(path)
    assert err.value.path == str(path)
    assert re.match(rf"{re.escape(str(path))}(:\d+)?: ", str(err.value))
    assert words in str(err.value)


@pytest.mark.parametrize("text", ["", "  \n\t\n"])
def test_empty_border_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.geojson"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BorderError, match="empty") as err:
        load_border(path)
    assert err.value.path == str(path)


def test_invalid_json_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.geojson"
    path.write_text(
        '{\n  "type": "LineString",\n  "coordinates": [[0, 0], [1, 1]],\n}\n', encoding="utf-8"
    )
    with pytest.raises(BorderError, match="not valid JSON") as err:
        load_border(path)
    assert err.value.line == 4
    assert str(err.value).startswith(f"{path}:4: ")


def test_missing_border_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.geojson"
    with pytest.raises(BorderError, match="cannot read") as err:
        load_border(path)
    assert err.value.path == str(path)


def test_linestring_with_no_points(tmp_path: Path) -> None:
    path = write_json(tmp_path / "empty-line.geojson", {"type": "LineString", "coordinates": []})
    with pytest.raises(BorderError) as err:
        load_border(path)
    assert err.value.path == str(path)


def test_linestring_with_one_point(tmp_path: Path) -> None:
    path = write_json(tmp_path / "one.geojson", {"type": "LineString", "coordinates": [[3, 4]]})
    with pytest.raises(BorderError) as err:
        load_border(path)
    assert err.value.path == str(path)
