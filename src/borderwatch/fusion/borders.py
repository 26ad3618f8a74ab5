"""Borders: polylines of segments tagged green (land) or blue (river/lake).

Sides follow the orientation of each line: walking from a line's first vertex to its last, the
*left* side is on the left. A point belongs to the side of its nearest border segment; at a vertex
shared by two segments the side is taken from the vertex pseudo-normal (the sum of the two
segments' left normals), so points near a corner never get a contradictory side.

Geometry is read from GeoJSON (a ``LineString``, ``MultiLineString``, ``Feature`` or
``FeatureCollection`` of those) with shapely. Coordinates are metres in the same local ENU frame as
the detections, unless the file declares a WGS-84 frame (see :func:`load_border`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from scipy.special import ndtr

from borderwatch.errors import BorderError
from borderwatch.fusion.detections import FloatArray, IntArray
from borderwatch.fusion.frames import LocalFrame

#: GeoJSON foreign member naming the frame of a border file's coordinates.
FRAME_MEMBER = "borderwatch:frame"


class BorderKind(IntEnum):
    """Segment type: green (land border) or blue (river or lake)."""

    GREEN = 0
    BLUE = 1


#: Sign of a side: +1 left of the line's orientation, -1 right.
LEFT = 1
RIGHT = -1


def direction_name(from_side: int) -> str:
    """``left_to_right`` when leaving the left side, else ``right_to_left``."""
    return "left_to_right" if from_side == LEFT else "right_to_left"


@dataclass(frozen=True, slots=True)
class BorderProximity:
    """Where points stand relative to a border (arrays of length ``n``).

    Attributes:
        segment: index of the nearest segment.
        signed_distance_m: distance to the border, positive on the left side.
        gradient: unit vector ``(n, 2)`` along which the signed distance grows fastest
            (pointing to the left side); used to project a position covariance onto the border.
    """

    segment: IntArray
    signed_distance_m: FloatArray
    gradient: FloatArray

    def p_left(self, cov_xy: FloatArray) -> FloatArray:
        """P(point is on the left side) for Gaussian positions with covariances ``(n, 2, 2)``.

        Linearises the border at the nearest point: the signed distance is Gaussian with mean
        ``signed_distance_m`` and variance ``gᵀ P g``.
        """
        g = self.gradient
        var = np.einsum("ni,nij,nj->n", g, cov_xy, g)
        sd = np.sqrt(np.maximum(var, 1e-12))
        return np.asarray(ndtr(self.signed_distance_m / sd), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class PathCrossing:
    """A straight-line path segment crossing a border segment."""

    t: float
    index: int  # index of the path step that crossed (between samples index and index + 1)
    segment: int
    direction: str
    x: float
    y: float


class Border:
    """A set of border polylines flattened into segments, with fast nearest-segment queries."""

    def __init__(self, lines: list[FloatArray], kinds: list[BorderKind], names: list[str]):
        if not lines:
            raise BorderError("a border needs at least one line")
        starts, ends, seg_kind, seg_line = [], [], [], []
        # Left normal at each segment's start vertex, summed with the previous segment's: the
        # pseudo-normal used to decide the side of points nearest to a shared vertex.
        for li, (coords, kind) in enumerate(zip(lines, kinds, strict=True)):
            if coords.shape[0] < 2:
                raise BorderError(f"border line {li} has fewer than two points")
            starts.append(coords[:-1])
            ends.append(coords[1:])
            seg_kind.append(np.full(coords.shape[0] - 1, int(kind)))
            seg_line.append(np.full(coords.shape[0] - 1, li))
        self.a: FloatArray = np.concatenate(starts)
        self.b: FloatArray = np.concatenate(ends)
        self.kind: IntArray = np.concatenate(seg_kind).astype(np.int64)
        self.line: IntArray = np.concatenate(seg_line).astype(np.int64)
        self.names = names
        d = self.b - self.a
        length = np.hypot(d[:, 0], d[:, 1])
        if np.any(length <= 0):
            raise BorderError("border has a zero-length segment (repeated vertex)")
        self.length: FloatArray = length
        self.unit: FloatArray = d / length[:, None]
        self.left_normal: FloatArray = np.column_stack([-self.unit[:, 1], self.unit[:, 0]])
        # Does segment i continue segment i-1 of the same line (shared start vertex)?
        same_prev = np.zeros(len(self.a), dtype=bool)
        same_prev[1:] = self.line[1:] == self.line[:-1]
        self._has_prev = same_prev
        self._has_next = np.append(same_prev[1:], False)
        self._tree = shapely.STRtree(shapely.linestrings(np.stack([self.a, self.b], axis=1)))

    def __len__(self) -> int:
        return len(self.a)

    def proximity(self, xy: FloatArray) -> BorderProximity:
        """Nearest segment, signed distance and distance gradient for points ``(n, 2)``."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        n = xy.shape[0]
        if n == 0:
            return BorderProximity(np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 2)))
        pts = shapely.points(xy)
        # all_matches=False gives one nearest segment per point, deterministically the first.
        pairs = self._tree.query_nearest(pts, all_matches=False)
        seg = np.empty(n, dtype=np.int64)
        seg[pairs[0]] = pairs[1]
        a, u, ln = self.a[seg], self.unit[seg], self.length[seg]
        rel = xy - a
        s = np.clip(np.einsum("ni,ni->n", rel, u), 0.0, ln)
        foot = a + u * s[:, None]
        off = xy - foot
        dist = np.hypot(off[:, 0], off[:, 1])
        normal = self.left_normal[seg].copy()
        # Nearest point at a shared vertex: the side comes from the vertex pseudo-normal.
        at_start = (s <= 0.0) & self._has_prev[seg]
        at_end = (s >= ln) & self._has_next[seg]
        normal[at_start] += self.left_normal[seg[at_start] - 1]
        normal[at_end] += self.left_normal[seg[at_end] + 1]
        side = np.where(np.einsum("ni,ni->n", off, normal) >= 0.0, 1.0, -1.0)
        on_line = dist < 1e-9
        safe = np.where(on_line, 1.0, dist)
        grad = np.where(
            on_line[:, None], self.left_normal[seg], side[:, None] * off / safe[:, None]
        )
        return BorderProximity(seg, side * dist, grad)

    def side(self, xy: FloatArray) -> IntArray:
        """+1 (left) or -1 (right) for each point; points exactly on the line count as left."""
        return np.where(self.proximity(xy).signed_distance_m >= 0.0, LEFT, RIGHT).astype(np.int64)

    def path_crossings(self, t: FloatArray, xy: FloatArray) -> list[PathCrossing]:
        """Exact crossings of a piecewise-linear path (samples ``t``, ``xy``) with the border.

        Used for ground truth: each path step is intersected with every border segment, and a
        crossing is counted where the path passes from one side of the crossed segment to the
        other. Times are interpolated linearly along the step.
        """
        t = np.asarray(t, dtype=np.float64)
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if xy.shape[0] < 2:
            return []
        p0, p1 = xy[:-1], xy[1:]
        dp = p1 - p0
        # Parametric intersection p0 + s·dp = a + r·(b - a), vectorised over steps × segments.
        ab = self.b - self.a
        denom = _cross(dp[:, None, :], ab[None, :, :])
        diff = self.a[None, :, :] - p0[:, None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            s = _cross(diff, ab[None, :, :]) / denom
            r = _cross(diff, dp[:, None, :]) / denom
        hit = (denom != 0) & (s > 0) & (s <= 1) & (r >= 0) & (r < 1)
        steps, segs = np.nonzero(hit)
        out = []
        for k, j in zip(steps.tolist(), segs.tolist(), strict=True):
            sk = float(s[k, j])
            # Moving along +left_normal means arriving on the left: so we left the right side.
            from_side = RIGHT if float(dp[k] @ self.left_normal[j]) > 0 else LEFT
            pos = p0[k] + sk * dp[k]
            out.append(
                PathCrossing(
                    t=float(t[k] + sk * (t[k + 1] - t[k])),
                    index=k,
                    segment=j,
                    direction=direction_name(from_side),
                    x=float(pos[0]),
                    y=float(pos[1]),
                )
            )
        out.sort(key=lambda c: (c.t, c.segment))
        return out

    def to_geojson(self, frame: LocalFrame | None = None) -> dict[str, Any]:
        """A FeatureCollection of the border lines, in local metres (and the frame origin)."""
        features = []
        for li in range(int(self.line.max()) + 1):
            sel = self.line == li
            coords = np.vstack([self.a[sel], self.b[sel][-1:]])
            features.append(
                {
                    "type": "Feature",
                    "properties": {
                        "kind": BorderKind(int(self.kind[sel][0])).name.lower(),
                        "name": self.names[li],
                    },
                    "geometry": {"type": "LineString", "coordinates": coords.round(3).tolist()},
                }
            )
        doc: dict[str, Any] = {"type": "FeatureCollection", "features": features}
        frame_doc: dict[str, Any] = {"type": "local_enu", "units": "m"}
        if frame is not None:
            frame_doc["origin"] = {
                "lat_deg": frame.lat_deg,
                "lon_deg": frame.lon_deg,
                "alt_m": frame.alt_m,
            }
        doc[FRAME_MEMBER] = frame_doc
        return doc


def _cross(u: FloatArray, v: FloatArray) -> FloatArray:
    return np.asarray(u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0], dtype=np.float64)


def load_border(path: str | Path, frame: LocalFrame | None = None) -> Border:
    """Read a border from a GeoJSON file.

    Coordinates are local ENU metres unless the document's ``"borderwatch:frame"`` member says
    ``{"type": "wgs84"}``: then they are GeoJSON longitude/latitude and ``frame`` (the
    deployment's local frame) converts them. Raises :class:`BorderError` naming the file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BorderError(f"cannot read border file: {exc.strerror}", path=path) from exc
    if not text.strip():
        raise BorderError("border file is empty", path=path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BorderError(f"not valid JSON: {exc.msg}", path=path, line=exc.lineno) from exc
    try:
        return border_from_geojson(doc, frame)
    except BorderError as exc:
        raise BorderError(exc.reason, path=path) from exc


def border_from_geojson(doc: Any, frame: LocalFrame | None = None) -> Border:
    """Build a :class:`Border` from a parsed GeoJSON document (see :func:`load_border`)."""
    if not isinstance(doc, Mapping):
        raise BorderError("border GeoJSON must be an object")
    frame_doc = doc.get(FRAME_MEMBER, {})
    wgs84 = isinstance(frame_doc, Mapping) and frame_doc.get("type") == "wgs84"
    if wgs84 and frame is None:
        raise BorderError("border is in WGS-84 but no local frame origin was given")
    lines: list[FloatArray] = []
    kinds: list[BorderKind] = []
    names: list[str] = []
    for geometry, props in _features(doc):
        try:
            geom = shapely.geometry.shape(geometry)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise BorderError(f"invalid geometry: {exc}") from exc
        parts = list(geom.geoms) if isinstance(geom, shapely.MultiLineString) else [geom]
        for part in parts:
            if not isinstance(part, shapely.LineString):
                raise BorderError(f"border geometry must be a LineString, got {part.geom_type}")
            coords = np.asarray(part.coords, dtype=np.float64)[:, :2]
            if not np.all(np.isfinite(coords)):
                raise BorderError("border coordinates must be finite numbers")
            if wgs84:
                assert frame is not None
                coords = frame.to_enu(coords[:, 1], coords[:, 0])
            lines.append(coords)
            kinds.append(_kind(props.get("kind", "green")))
            names.append(str(props.get("name", f"line-{len(names)}")))
    return Border(lines, kinds, names)


def _features(doc: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    kind = doc.get("type")
    if kind == "FeatureCollection":
        feats = doc.get("features")
        if not isinstance(feats, list) or not feats:
            raise BorderError("FeatureCollection has no features")
        out = []
        for f in feats:
            out.extend(_features(f) if isinstance(f, Mapping) else _bad(f))
        return out
    if kind == "Feature":
        geometry = doc.get("geometry")
        props = doc.get("properties") or {}
        if not isinstance(geometry, Mapping) or not isinstance(props, Mapping):
            raise BorderError("Feature needs a geometry object")
        return [(geometry, props)]
    if kind in ("LineString", "MultiLineString"):
        return [(doc, {})]
    raise BorderError(f"border geometry must be a LineString, got {kind!r}")


def _bad(value: Any) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    raise BorderError(f"feature must be an object, got {type(value).__name__}")


def _kind(value: Any) -> BorderKind:
    try:
        return BorderKind[str(value).upper()]
    except KeyError:
        raise BorderError(f"border kind must be 'green' or 'blue', got {value!r}") from None
