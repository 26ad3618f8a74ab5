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
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from scipy.special import ndtr
from shapely.errors import GEOSException

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
        self._prev, self._next = _continuations(self.a, self.b)
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
        at_start = (s <= 0.0) & (self._prev[seg] >= 0)
        at_end = (s >= ln) & (self._next[seg] >= 0)
        normal[at_start] += self.left_normal[self._prev[seg[at_start]]]
        normal[at_end] += self.left_normal[self._next[seg[at_end]]]
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

        Used for ground truth. A path step that cuts a border segment at interior points of
        both crosses it (the direction follows from the step's motion along the segment's
        normal). Contacts at a path sample or at a border vertex are degenerate: there the
        path crosses only if its points just before and just after the contact are on
        different sides, so a path that touches the line and turns back, or grazes a vertex,
        does not cross. Times are interpolated along the crossing step.
        """
        t = np.asarray(t, dtype=np.float64)
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if xy.shape[0] < 2:
            return []
        p0 = xy[:-1]
        dp = xy[1:] - p0
        ab = self.b - self.a
        denom = _cross(dp[:, None, :], ab[None, :, :])
        diff = self.a[None, :, :] - p0[:, None, :]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            s = _cross(diff, ab[None, :, :]) / denom
            r = _cross(diff, dp[:, None, :]) / denom
        eps = 1e-9
        hit = (denom != 0) & (s >= -eps) & (s <= 1 + eps) & (r >= -eps) & (r <= 1 + eps)
        interior = hit & (s > eps) & (s < 1 - eps) & (r > eps) & (r < 1 - eps)
        out = []
        for k, j in zip(*np.nonzero(interior), strict=True):
            from_side = RIGHT if float(dp[k] @ self.left_normal[j]) > 0 else LEFT
            out.append(self._path_crossing(t, xy, int(k), float(s[k, j]), int(j), from_side))
        seen: set[tuple[float, float]] = set()
        for k, j in zip(*np.nonzero(hit & ~interior), strict=True):
            sk = float(np.clip(s[k, j], 0.0, 1.0))
            point = xy[k] + sk * dp[k]
            key = (round(float(point[0]), 6), round(float(point[1]), 6))
            if key in seen:
                continue
            seen.add(key)
            before, after = _around(xy, int(k), sk)
            sides = self.side(np.vstack([before, after]))
            if sides[0] != sides[1]:
                out.append(self._path_crossing(t, xy, int(k), sk, int(j), int(sides[0])))
        out.sort(key=lambda c: (c.t, c.segment))
        return out

    @staticmethod
    def _path_crossing(
        t: FloatArray, xy: FloatArray, k: int, frac: float, segment: int, from_side: int
    ) -> PathCrossing:
        pos = xy[k] + frac * (xy[k + 1] - xy[k])
        return PathCrossing(
            t=float(t[k] + frac * (t[k + 1] - t[k])),
            index=k,
            segment=segment,
            direction=direction_name(from_side),
            x=float(pos[0]),
            y=float(pos[1]),
        )

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


def _around(
    xy: FloatArray, k: int, frac: float, delta: float = 1e-4
) -> tuple[FloatArray, FloatArray]:
    """Points of the path ``delta`` metres before and after the point at ``frac`` of step ``k``.

    Walks into the neighbouring steps when the point is a path sample; at the path's ends the
    end sample itself is used.
    """

    def walk(step: int, pos: float, direction: int) -> FloatArray:
        remaining = delta
        while True:
            seg = xy[step + 1] - xy[step]
            length = float(np.hypot(seg[0], seg[1]))
            room = pos * length if direction < 0 else (1.0 - pos) * length
            if remaining <= room:
                return np.asarray(
                    xy[step] + (pos + direction * remaining / max(length, 1e-300)) * seg,
                    dtype=np.float64,
                )
            remaining -= room
            step += direction
            if step < 0 or step >= xy.shape[0] - 1:
                return np.asarray(xy[0] if direction < 0 else xy[-1], dtype=np.float64)
            pos = 1.0 if direction < 0 else 0.0

    return walk(k, frac, -1), walk(k, frac, 1)


def _continuations(a: FloatArray, b: FloatArray) -> tuple[IntArray, IntArray]:
    """For each segment, the segment that ends where it starts (``prev``) and the one that
    starts where it ends (``next``), across lines too; -1 where there is none."""
    starts: dict[tuple[float, float], int] = {}
    for j, point in enumerate(map(tuple, a.tolist())):
        starts.setdefault((point[0], point[1]), j)
    prev = np.full(len(a), -1, dtype=np.int64)
    nxt = np.full(len(a), -1, dtype=np.int64)
    for i, point in enumerate(map(tuple, b.tolist())):
        j = starts.get((point[0], point[1]), -1)
        if j >= 0 and j != i:
            nxt[i] = j
            prev[j] = i
    return prev, nxt


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
        raise BorderError("border file is empty", path=path, line=1)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BorderError(f"not valid JSON: {exc.msg}", path=path, line=exc.lineno) from exc
    try:
        return border_from_geojson(doc, frame)
    except BorderError as exc:
        raise BorderError(exc.reason, path=path, line=_line_of(text, exc.reason)) from exc


def _line_of(text: str, reason: str) -> int | None:
    """Best-effort line of the JSON text that a border error is about (its quoted word)."""
    for word in re.findall(r"'([^']+)'", reason) + re.findall(r"got (\w+)", reason):
        at = text.find(f'"{word}"')
        if at >= 0:
            return text.count("\n", 0, at) + 1
    return None


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
        except (ValueError, TypeError, KeyError, AttributeError, GEOSException) as exc:
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
