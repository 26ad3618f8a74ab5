"""Track-to-track fusion at the control centre: one picture from the tracks of several nodes.

Each node sends its own tracks: a state ``x = [x_m, y_m, vx_mps, vy_mps]`` in the deployment's
local east-north-up plane and its covariance ``P`` (m², m²/s, m²/s²). Nodes that watch the same
water report the same targets, with errors that are correlated in unknown ways (common process
noise, shared sensors, earlier exchanges). :class:`TrackToTrackFuser` keeps every node track
(a *member*), groups the members that describe one target into a centre track with a stable
id, and fuses each group by covariance intersection.

**Prediction to a common time.** A member reported at ``t_m`` is predicted to the picture time
``t`` with the constant-velocity model (``dt = t − t_m``)::

    F = [[I, dt·I], [0, I]],     Q = q · [[|dt|³/3·I, dt²/2·I], [dt²/2·I, |dt|·I]]

(continuous white acceleration of spectral density ``q`` m²/s³ per axis; the same ``Q`` as
filterpy's ``Q_continuous_white_noise``), ``x ← F x``, ``P ← F P Fᵀ + Q``.

**Association.** The distance between two estimates ``a`` and ``b`` of one target is::

    d² = (x_a − x_b)ᵀ (P_a + P_b)⁻¹ (x_a − x_b)          (χ² with 4 degrees of freedom)

The cross-covariance is unknown and left out; positive correlation, the usual case, makes the
true difference covariance smaller, so this gate errs on the side of associating. Pairs with
``d² > gate_chi2`` never associate, nor do groups sharing a node: two tracks of the SAME node are
two targets (that node's own tracker already decided so). Pairs are examined in increasing
``d²`` (greedy global nearest neighbour) and two groups are joined only when every pair of
their units passes the gate (complete linkage), so chains of loose pairs cannot merge targets.
A KD-tree on positions finds the candidate pairs first: the position-only Mahalanobis distance
is a lower bound of the full one, so pairs further apart than
``sqrt(gate_chi2 · (λ_a + λ_b))`` (λ the largest position variance) cannot pass.

**Fusion.** Covariance intersection (Julier & Uhlmann) with ``ω ∈ [0, 1]``::

    P⁻¹ = ω P_a⁻¹ + (1 − ω) P_b⁻¹
    x   = P (ω P_a⁻¹ x_a + (1 − ω) P_b⁻¹ x_b)

is consistent for ANY cross-correlation of the two errors, so information that two nodes share
is never counted twice (two identical inputs give back the same covariance, not half of it).
``ω`` minimises ``det P`` (default; independent of the mixed units of the state) or ``tr P``;
see :func:`covariance_intersection` for the closed form. Groups of more than two members are
fused sequentially in member order (each step is again a CI, so the result stays consistent).

**Identity.** A centre track keeps its id while any of its members keeps reporting. Each
picture first re-checks every group (a member whose ``d²`` to the fusion of the members before
it exceeds ``split_chi2`` leaves the group: the association was wrong or the targets parted),
then lets new members and single-member groups join. When two established groups merge, the
older (smaller) id survives. Members that have not reported for ``stale_s`` are dropped; ids
are never reused.

Pure, synchronous, deterministic: no I/O and no clock; time is the ``t`` passed in (seconds on
the deployment's time axis), and every iteration is over sorted keys.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from borderwatch.fusion.detections import FloatArray, IntArray
from borderwatch.fusion.imm import max_eig2, symmetrize

log = logging.getLogger(__name__)

Member = tuple[str, str]
"""A node track: ``(node_id, track_id)``."""

Criterion = Literal["det", "trace"]

#: χ²(0.999) with 4 degrees of freedom: the default association gate.
GATE_CHI2_999: Final = 18.466826952903

#: Bisection steps for ω: the bracket [0, 1] shrinks to 2⁻⁵⁰, far below any effect on P.
_BISECTION_STEPS: Final = 50

#: Relative tolerance under which two inputs hold the same information (ω is then 1/2).
_SAME_INFORMATION: Final = 1e-9


# ------------------------------------------------------------------------ pure functions


@dataclass(frozen=True, slots=True)
class CIResult:
    """Covariance intersections of ``n`` pairs: ``x (n, 4)``, ``P (n, 4, 4)``, ``omega (n,)``."""

    x: FloatArray
    P: FloatArray
    omega: FloatArray


def covariance_intersection(
    xa: FloatArray,
    Pa: FloatArray,
    xb: FloatArray,
    Pb: FloatArray,
    criterion: Criterion = "det",
) -> CIResult:
    """Fuse pairs of estimates with unknown cross-correlation by covariance intersection.

    Shapes: ``xa, xb (n, d)``, ``Pa, Pb (n, d, d)`` (positive definite). The weight ``ω`` of
    ``a`` minimises ``det P`` or ``tr P`` of::

        P(ω)⁻¹ = ω Pa⁻¹ + (1 − ω) Pb⁻¹,   x = P(ω) (ω Pa⁻¹ xa + (1 − ω) Pb⁻¹ xb)

    Closed form by simultaneous diagonalisation: with ``Pb⁻¹ = L Lᵀ`` (Cholesky) and
    ``L⁻¹ Pa⁻¹ L⁻ᵀ = U diag(μ) Uᵀ``, ``V = L⁻ᵀ U`` gives ``P(ω) = V diag(1/δ) Vᵀ`` with
    ``δᵢ = 1 + ω (μᵢ − 1)``. Hence::

        ln det P(ω) = ln det Pb − Σ ln δᵢ            d/dω = −Σ (μᵢ − 1) / δᵢ
        tr P(ω)     = Σ ‖vᵢ‖² / δᵢ                   d/dω = −Σ ‖vᵢ‖² (μᵢ − 1) / δᵢ²

    Both are convex in ω (their derivatives increase), so ω is 0 or 1 when the derivative
    does not change sign on [0, 1] and otherwise the root of the derivative, found by
    bisection for all pairs at once. When both inputs hold the same information (all μᵢ = 1)
    every ω gives the same ``P``; ω = 1/2 then averages the two means.
    """
    Ya = np.linalg.inv(Pa)
    Yb = symmetrize(np.asarray(np.linalg.inv(Pb), dtype=np.float64))
    L = np.linalg.cholesky(Yb)
    Linv = np.linalg.inv(L)
    C = symmetrize(Linv @ Ya @ np.swapaxes(Linv, -1, -2))
    mu, U = np.linalg.eigh(C)
    V = np.swapaxes(Linv, -1, -2) @ U
    g = mu - 1.0  # (n, d)
    w = np.sum(V * V, axis=-2) if criterion == "trace" else np.ones_like(mu)
    power = 2 if criterion == "trace" else 1

    def slope(omega: FloatArray) -> FloatArray:
        delta = 1.0 + omega[:, None] * g
        return np.asarray(-np.sum(w * g / delta**power, axis=-1), dtype=np.float64)

    n = xa.shape[0]
    lo, hi = np.zeros(n), np.ones(n)
    at0, at1 = slope(lo), slope(hi)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        rising = slope(mid) > 0.0
        hi = np.where(rising, mid, hi)
        lo = np.where(rising, lo, mid)
    omega = 0.5 * (lo + hi)
    omega = np.where(at0 >= 0.0, 0.0, np.where(at1 <= 0.0, 1.0, omega))
    same = np.all(np.abs(g) <= _SAME_INFORMATION, axis=-1)
    omega = np.where(same, 0.5, omega)

    delta = 1.0 + omega[:, None] * g
    P = symmetrize((V / delta[:, None, :]) @ np.swapaxes(V, -1, -2))
    info_x = omega[:, None] * np.einsum("nij,nj->ni", Ya, xa) + (1.0 - omega)[:, None] * np.einsum(
        "nij,nj->ni", Yb, xb
    )
    x = np.einsum("nij,nj->ni", P, info_x)
    return CIResult(x=x, P=P, omega=omega)


def predict_cv(
    x: FloatArray, P: FloatArray, dt: FloatArray, q_m2ps3: float
) -> tuple[FloatArray, FloatArray]:
    """Constant-velocity prediction of ``n`` states ``(n, 4)``, ``(n, 4, 4)`` by ``dt (n,)`` s.

    ``Q`` (see the module docstring) uses ``|dt|``, so predicting backwards also adds
    uncertainty instead of removing it.
    """
    n = x.shape[0]
    F = np.tile(np.eye(4), (n, 1, 1))
    F[:, 0, 2] = F[:, 1, 3] = dt
    a = np.abs(dt)
    Q = np.zeros((n, 4, 4))
    Q[:, 0, 0] = Q[:, 1, 1] = a**3 / 3.0
    Q[:, 0, 2] = Q[:, 2, 0] = Q[:, 1, 3] = Q[:, 3, 1] = dt**2 / 2.0
    Q[:, 2, 2] = Q[:, 3, 3] = a
    xp = np.einsum("nij,nj->ni", F, x)
    Pp = F @ P @ np.swapaxes(F, -1, -2) + q_m2ps3 * Q
    return xp, symmetrize(Pp)


def pair_distance2(xa: FloatArray, Pa: FloatArray, xb: FloatArray, Pb: FloatArray) -> FloatArray:
    """``d² = (xa − xb)ᵀ (Pa + Pb)⁻¹ (xa − xb)`` for ``n`` pairs, shape ``(n,)``."""
    diff = xa - xb
    solved = np.linalg.solve(Pa + Pb, diff[..., None])[..., 0]
    return np.asarray(np.sum(diff * solved, axis=-1), dtype=np.float64)


def _sequential_ci(
    groups: Sequence[Sequence[int]],
    x: FloatArray,
    P: FloatArray,
    criterion: Criterion,
    split_chi2: float | None = None,
) -> tuple[FloatArray, FloatArray, list[list[int]], list[int]]:
    """Fuse each group's rows of ``x``/``P`` in order: estimate ← CI(estimate, next member).

    All groups advance together, one member per round. With ``split_chi2``, a member whose
    ``d²`` to the estimate so far exceeds it is left out and returned as ejected.

    Returns:
        fused ``x (g, 4)``, ``P (g, 4, 4)``, the members kept per group, the ejected rows.
    """
    g = len(groups)
    xf = np.empty((g, 4))
    Pf = np.empty((g, 4, 4))
    if g == 0:
        return xf, Pf, [], []
    heads = np.array([m[0] for m in groups], dtype=np.int64)
    xf[:], Pf[:] = x[heads], P[heads]
    kept = [[m[0]] for m in groups]
    ejected: list[int] = []
    for r in range(1, max(len(m) for m in groups)):
        which = np.array([k for k, m in enumerate(groups) if len(m) > r], dtype=np.int64)
        rows = np.array([groups[k][r] for k in which], dtype=np.int64)
        if split_chi2 is not None:
            fits = pair_distance2(xf[which], Pf[which], x[rows], P[rows]) <= split_chi2
            ejected.extend(int(i) for i in rows[~fits])
            which, rows = which[fits], rows[fits]
        if which.size == 0:
            continue
        fused = covariance_intersection(xf[which], Pf[which], x[rows], P[rows], criterion)
        xf[which], Pf[which] = fused.x, fused.P
        for k, i in zip(which.tolist(), rows.tolist(), strict=True):
            kept[k].append(i)
    return xf, Pf, kept, ejected


# ----------------------------------------------------------------------------- tracker


@dataclass(frozen=True, slots=True)
class FusedTable:
    """The centre's picture at time ``t``, sorted by id (length ``k``).

    Attributes:
        t: time of the estimates, seconds on the deployment's time axis.
        ids: stable centre track ids ``(k,)``.
        x: fused states ``(k, 4)``: x, y (m, local ENU), vx, vy (m/s).
        P: fused covariances ``(k, 4, 4)``.
        last_report_t: latest report time among each track's members ``(k,)``.
        members: the node tracks of each centre track, in fusion order (anchor first).
    """

    t: float
    ids: IntArray
    x: FloatArray
    P: FloatArray
    last_report_t: FloatArray
    members: tuple[tuple[Member, ...], ...]

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass(slots=True)
class _Report:
    t: float
    x: FloatArray
    P: FloatArray


class TrackToTrackFuser:
    """Associates node tracks, fuses them by covariance intersection, keeps centre ids.

    Args:
        gate_chi2: association gate on ``d²`` (4 degrees of freedom); default χ²(0.999).
        split_chi2: a member further than this from the rest of its group leaves it; default
            twice ``gate_chi2`` (hysteresis: joining is harder than staying).
        stale_s: a member not reported for longer than this (s) is dropped.
        q_m2ps3: process noise spectral density for the prediction to the picture time.
        max_gate_m: no association beyond this distance (m), whatever the covariances say.
        criterion: ``det`` or ``trace``, what covariance intersection minimises.
    """

    def __init__(
        self,
        gate_chi2: float = GATE_CHI2_999,
        stale_s: float = 10.0,
        *,
        split_chi2: float | None = None,
        q_m2ps3: float = 0.5,
        max_gate_m: float = 300.0,
        criterion: Criterion = "det",
    ):
        if gate_chi2 <= 0 or stale_s <= 0 or q_m2ps3 < 0 or max_gate_m <= 0:
            raise ValueError("gate_chi2, stale_s and max_gate_m must be > 0, q_m2ps3 >= 0")
        if criterion not in ("det", "trace"):
            raise ValueError(f"criterion must be 'det' or 'trace', got {criterion!r}")
        self.gate_chi2 = gate_chi2
        self.split_chi2 = 2.0 * gate_chi2 if split_chi2 is None else split_chi2
        self.stale_s = stale_s
        self.q_m2ps3 = q_m2ps3
        self.max_gate_m = max_gate_m
        self.criterion: Criterion = criterion
        self._reports: dict[Member, _Report] = {}
        self._groups: dict[int, list[Member]] = {}  # centre id -> members, anchor first
        self._next_id = 1
        self.stats: Counter[str] = Counter()

    # ---------------------------------------------------------------------- input

    def update(
        self,
        t: float,
        node_id: str,
        track_ids: Sequence[str],
        x: FloatArray,
        P: FloatArray,
    ) -> None:
        """Take a node's latest estimates of some of its tracks.

        A report older than the one held for the same track is ignored (counted as
        ``out_of_order``); rows with non-finite numbers or a covariance that is not positive
        definite are refused (counted as ``rejected``). Tracks not named keep their last
        report until it goes stale.

        Args:
            t: time of the estimates, seconds on the deployment's time axis.
            node_id: the reporting node.
            track_ids: the node's ids of the ``n`` tracks (unique).
            x: states ``(n, 4)`` in the local ENU plane.
            P: covariances ``(n, 4, 4)``.

        Raises:
            ValueError: shapes disagree, ids repeat, or ``t`` is not finite.
        """
        x = np.asarray(x, dtype=np.float64)
        P = np.asarray(P, dtype=np.float64)
        n = len(track_ids)
        if x.shape != (n, 4) or P.shape != (n, 4, 4):
            raise ValueError(f"need x (n, 4) and P (n, 4, 4) for n={n}, got {x.shape}, {P.shape}")
        if len(set(track_ids)) != n:
            raise ValueError("track ids repeat within one update")
        if not np.isfinite(t):
            raise ValueError("t must be finite")
        good = _valid_rows(x, P)
        self.stats["received"] += n
        self.stats["rejected"] += int(n - good.sum())
        P = symmetrize(P)
        for i in np.flatnonzero(good).tolist():
            key = (node_id, track_ids[i])
            held = self._reports.get(key)
            if held is not None and held.t > t:
                self.stats["out_of_order"] += 1
                continue
            self._reports[key] = _Report(float(t), x[i].copy(), P[i].copy())

    def drop(self, node_id: str, track_ids: Sequence[str]) -> None:
        """Forget node tracks that their node has ended."""
        for track_id in track_ids:
            self._reports.pop((node_id, track_id), None)

    # ---------------------------------------------------------------------- output

    def picture(self, t: float) -> FusedTable:
        """Associate and fuse every live member at time ``t``; advances the identities.

        Call with non-decreasing ``t``: it also decides which members are stale.
        """
        self._drop_stale(t)
        keys = sorted(self._reports)
        if not keys:
            self._groups.clear()
            return _empty_table(t)
        x, P = self._predicted(keys, t)
        unit_ids, unit_rows, ux, uP = self._units(keys, x, P)
        nodes = [frozenset(keys[i][0] for i in rows) for rows in unit_rows]
        groups = self._identify(self._merge(ux, uP, nodes), unit_ids, unit_rows)
        fx, fP, _, _ = _sequential_ci([rows for _, rows in groups], x, P, self.criterion)
        out_ids = np.empty(len(groups), dtype=np.int64)
        self._groups = {}
        for k, (known_id, rows) in enumerate(groups):
            gid = self._new_id() if known_id is None else known_id
            out_ids[k] = gid
            self._groups[gid] = [keys[r] for r in rows]
        order = np.argsort(out_ids, kind="stable")
        last = np.array([max(self._reports[keys[r]].t for r in rows) for _, rows in groups])
        return FusedTable(
            t=float(t),
            ids=out_ids[order],
            x=fx[order],
            P=fP[order],
            last_report_t=last[order],
            members=tuple(tuple(self._groups[int(out_ids[k])]) for k in order),
        )

    # ------------------------------------------------------------------- internals

    def _new_id(self) -> int:
        gid = self._next_id
        self._next_id += 1
        return gid

    def _units(
        self, keys: list[Member], x: FloatArray, P: FloatArray
    ) -> tuple[list[int | None], list[list[int]], FloatArray, FloatArray]:
        """Established groups, re-checked member by member, then every other member alone.

        Returns per unit: its centre id (None for a new one), its rows of ``x``/``P`` in
        fusion order, and its fused state and covariance.
        """
        row = {k: i for i, k in enumerate(keys)}
        ids = sorted(self._groups)
        persisting = [[row[m] for m in self._groups[i] if m in row] for i in ids]
        alive = [k for k, rows in enumerate(persisting) if rows]
        ux, uP, kept, ejected = _sequential_ci(
            [persisting[k] for k in alive], x, P, self.criterion, self.split_chi2
        )
        self.stats["split"] += len(ejected)
        grouped = {i for rows in kept for i in rows}
        fresh = sorted(set(range(len(keys))) - grouped)
        unit_ids: list[int | None] = [ids[k] for k in alive]
        unit_ids += [None] * len(fresh)
        unit_rows = kept + [[i] for i in fresh]
        return unit_ids, unit_rows, np.concatenate([ux, x[fresh]]), np.concatenate([uP, P[fresh]])

    def _identify(
        self, merged: list[list[int]], unit_ids: list[int | None], unit_rows: list[list[int]]
    ) -> list[tuple[int | None, list[int]]]:
        """Each merged group's id (its oldest unit's; None for new) and its rows, anchor first."""
        groups: list[tuple[int | None, list[int]]] = []
        for units in merged:
            units.sort(key=lambda u: (unit_ids[u] is None, unit_ids[u] or 0, unit_rows[u][0]))
            known = [i for i in (unit_ids[u] for u in units) if i is not None]
            # Two established centre tracks found to be one target: the younger id ends.
            self.stats["merged"] += max(len(known) - 1, 0)
            groups.append((known[0] if known else None, [r for u in units for r in unit_rows[u]]))
        groups.sort(key=lambda g: (g[0] is None, g[0] or 0, g[1][0]))
        return groups

    def _drop_stale(self, t: float) -> None:
        stale = [k for k, r in self._reports.items() if t - r.t > self.stale_s]
        for k in stale:
            del self._reports[k]
        self.stats["stale"] += len(stale)

    def _predicted(self, keys: list[Member], t: float) -> tuple[FloatArray, FloatArray]:
        reports = [self._reports[k] for k in keys]
        x = np.stack([r.x for r in reports])
        P = np.stack([r.P for r in reports])
        dt = t - np.array([r.t for r in reports])
        return predict_cv(x, P, dt, self.q_m2ps3)

    def _merge(self, x: FloatArray, P: FloatArray, nodes: list[frozenset[str]]) -> list[list[int]]:
        """Groups of unit indices: greedy in increasing d², complete linkage, disjoint nodes."""
        n = x.shape[0]
        gated = self._gated_pairs(x, P, nodes)
        parent = list(range(n))
        members = [[u] for u in range(n)]
        group_nodes = list(nodes)
        for d2, a, b in sorted((d2, a, b) for (a, b), d2 in gated.items()):
            del d2
            ra, rb = parent[a], parent[b]
            if ra == rb or group_nodes[ra] & group_nodes[rb]:
                continue
            if not all((min(u, v), max(u, v)) in gated for u in members[ra] for v in members[rb]):
                continue
            keep, gone = min(ra, rb), max(ra, rb)
            for u in members[gone]:
                parent[u] = keep
            members[keep] += members[gone]
            group_nodes[keep] = group_nodes[keep] | group_nodes[gone]
            members[gone] = []
        return [m for m in members if m]

    def _gated_pairs(
        self, x: FloatArray, P: FloatArray, nodes: list[frozenset[str]]
    ) -> dict[tuple[int, int], float]:
        """Unit pairs ``(a < b)`` of disjoint nodes within the gate, with their ``d²``."""
        if x.shape[0] < 2:
            return {}
        spread = max_eig2(P[:, :2, :2])
        radius = min(float(np.sqrt(self.gate_chi2 * 2.0 * spread.max())), self.max_gate_m)
        pairs = cKDTree(x[:, :2]).query_pairs(radius, output_type="ndarray")
        if pairs.shape[0] == 0:
            return {}
        a, b = pairs[:, 0], pairs[:, 1]
        gap2 = np.sum((x[a, :2] - x[b, :2]) ** 2, axis=1)
        near = gap2 <= self.gate_chi2 * (spread[a] + spread[b])
        a, b = a[near], b[near]
        separate = [not (nodes[i] & nodes[j]) for i, j in zip(a.tolist(), b.tolist(), strict=True)]
        a, b = a[separate], b[separate]
        d2 = pair_distance2(x[a], P[a], x[b], P[b])
        inside = d2 <= self.gate_chi2
        return {
            (min(i, j), max(i, j)): float(v)
            for i, j, v in zip(
                a[inside].tolist(), b[inside].tolist(), d2[inside].tolist(), strict=True
            )
        }


def _valid_rows(x: FloatArray, P: FloatArray) -> NDArray[np.bool_]:
    """Rows with finite numbers and a (nearly) symmetric positive definite covariance."""
    finite = np.all(np.isfinite(x), axis=1) & np.all(np.isfinite(P), axis=(1, 2))
    ok = finite.copy()
    if finite.any():
        Pf = P[finite]
        scale = np.maximum(np.abs(Pf).max(axis=(1, 2)), 1e-300)
        symmetric = np.abs(Pf - np.swapaxes(Pf, 1, 2)).max(axis=(1, 2)) <= 1e-9 * scale
        positive = np.linalg.eigvalsh(symmetrize(Pf))[:, 0] > 0.0
        ok[finite] = symmetric & positive
    return np.asarray(ok, dtype=np.bool_)


def _empty_table(t: float) -> FusedTable:
    return FusedTable(
        t=float(t),
        ids=np.zeros(0, dtype=np.int64),
        x=np.zeros((0, 4)),
        P=np.zeros((0, 4, 4)),
        last_report_t=np.zeros(0),
        members=(),
    )
