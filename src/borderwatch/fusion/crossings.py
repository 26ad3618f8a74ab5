"""Border crossing and approach alerts, decided from each track's position distribution.

A naive sign flip of the estimated position chatters when a noisy track walks along the line.
Instead each confirmed track carries a *side* it is established on, and decisions use
probabilities from the track covariance projected on the border normal
(:meth:`BorderProximity.p_left`):

* **Establish**: an unknown side becomes known once P(side) ≥ ``p_establish``.
* **Crossing (new)**: on an established side, P(far side) ≥ ``p_new`` *and* the track moves
  towards the far side significantly (faster than ``min_normal_speed_mps`` and
  ``normal_speed_sigmas`` standard deviations); or, whatever its motion, P(far side) ≥
  ``p_confirm`` (a target that crossed and turned along the far bank). The side flips.
* **Hand-over**: a track born within ``handover_radius_m`` of a confirmed track that has just
  lost its target inherits that track's side, so a target lost in a sharp turn at the line
  still raises its crossing.
* **Confirm (update)**: P(far side) ≥ ``p_confirm``.
* **Retract (end, reason ``retracted``)**: before confirmation the track is back on its old side
  with P ≥ ``p_establish``: the hysteresis band between ``p_new`` and ``p_establish`` means a
  track has to come clearly back, not merely wobble.
* **Hold (end, reason ``confirmed``)**: a confirmed crossing ends after ``hold_s`` on the far side;
  a later crossing back raises a new alert.
* **Approach**: on an established side, moving towards the border with predicted time to cross
  ``d / v_n`` below the horizon: an ``approach`` alert (new / update / end with reason
  ``crossed`` or ``turned_away``).

Tracks that are deleted end their open alerts with reason ``track_lost``
(:meth:`BorderMonitor.end_lost`).

**Own vessels** (``TrackStore.own``: the track carries one of the deployment's own MMSIs) raise
no alert while ``suppress_own_alerts`` is on: patrol boats cross the line on duty. An alert a
track raised before it was recognised (radar saw the boat before its AIS report came) ends with
reason ``retracted``. Their side follows them (re-established whenever P(side) ≥
``p_establish``) without any alert.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from borderwatch.config.tracker import CrossingSettings
from borderwatch.fusion.borders import Border, BorderKind, BorderProximity, direction_name
from borderwatch.fusion.detections import FloatArray, IntArray
from borderwatch.fusion.outputs import AlertEvent, AlertKind, BorderAlert
from borderwatch.fusion.tracks import CONFIRMED, TrackStore


class AlertIds:
    """Monotonic alert id source owned by a tracker (deterministic, no global state)."""

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last += 1
        return self.last


class BorderMonitor:
    """Applies the crossing/approach rules to all tracks after each update."""

    def __init__(self, border: Border, settings: CrossingSettings, ids: AlertIds):
        self.border = border
        self.s = settings
        self.ids = ids

    def step(
        self, store: TrackStore, xc: FloatArray, Pc: FloatArray, t: float
    ) -> tuple[list[BorderAlert], IntArray, BorderProximity]:
        """Update the border state of ``store`` in place; return the alert events of this step.

        Only confirmed tracks are considered. Also returns their row indices and their border
        proximity, which the tracker reuses for its track table.
        """
        rows = np.flatnonzero(store.status == CONFIRMED)
        prox = self.border.proximity(xc[rows, :2])
        if rows.size == 0:
            return [], rows, prox
        p_left = prox.p_left(Pc[rows, :2, :2])
        s = self.s
        side = store.side[rows]
        own = store.own[rows] if s.suppress_own_alerts else np.zeros(rows.size, dtype=bool)
        # Establish the side of tracks that have none yet; own vessels' sides just follow them.
        unknown = (side == 0) | own
        side[unknown & (p_left >= s.p_establish)] = 1
        side[unknown & (p_left <= 1.0 - s.p_establish)] = -1
        store.side[rows] = side

        g = prox.gradient
        v_left = np.einsum("ni,ni->n", xc[rows, 2:4], g)
        var_v = np.einsum("ni,nij,nj->n", g, Pc[rows, 2:4, 2:4], g)
        p_far = np.where(side == 1, 1.0 - p_left, np.where(side == -1, p_left, 0.0))
        v_far = -side * v_left
        dist = np.abs(prox.signed_distance_m)
        candidate = side != 0
        open_alert = (store.cross_alert[rows] > 0) | (store.approach_alert[rows] > 0)
        # Tracks without an open alert matter only if they may cross now, or may raise an
        # approach alert now: the approach rule's necessary conditions, vectorised, so that
        # a thousand walkers heading for the line are not looked at one by one each step.
        with np.errstate(divide="ignore", invalid="ignore"):
            ttc = np.where(v_far > 0.0, dist / v_far, np.inf)
        may_approach = (
            (v_far > s.min_normal_speed_mps)
            & (dist <= s.approach_max_distance_m)
            & (ttc <= s.approach_horizon_s)
            & (t - store.first_t[rows] >= s.approach_min_age_s)
        )
        interesting = (
            open_alert
            | (candidate & (p_far >= min(s.p_new, s.p_confirm)))
            | (candidate & may_approach)
        )
        alerts: list[BorderAlert] = []
        for k in np.flatnonzero(interesting).tolist():
            i = int(rows[k])
            ctx = _TrackView(store, i, xc[i], Pc[i], t, prox, p_left[k], var_v[k], row=k)
            # A track now known to be an own vessel: its open alerts are withdrawn.
            alerts.extend(self._end_all(ctx, "retracted") if own[k] else self._track(ctx))
        return alerts, rows, prox

    def _end_all(self, c: _TrackView, reason: str) -> list[BorderAlert]:
        """``end`` events with ``reason`` for every open alert of the track."""
        store, i = c.store, c.i
        out: list[BorderAlert] = []
        if store.cross_alert[i]:
            out.append(self._close_crossing(c, reason))
        if store.approach_alert[i]:
            side = int(store.side[i]) or 1
            out.append(self._event(c, AlertKind.APPROACH, AlertEvent.END, side, reason))
            store.approach_alert[i] = 0
        return out

    def _track(self, c: _TrackView) -> list[BorderAlert]:
        s, store, i = self.s, c.store, c.i
        out: list[BorderAlert] = []
        if store.cross_alert[i]:
            out.extend(self._open_crossing(c))
        side = int(store.side[i])
        if store.cross_alert[i] == 0 and side != 0:
            p_far = c.p_side(-side)
            strong = p_far >= s.p_confirm
            if strong or (p_far >= s.p_new and self._moving_across(c, side)):
                if store.approach_alert[i]:
                    out.append(self._event(c, AlertKind.APPROACH, AlertEvent.END, side, "crossed"))
                    store.approach_alert[i] = 0
                store.cross_alert[i] = self.ids.next()
                store.cross_from[i] = side
                store.side[i] = -side
                store.cross_confirmed_t[i] = math.nan
                out.append(self._event(c, AlertKind.CROSSING, AlertEvent.NEW, side))
                store.alert_t[i] = c.t
                return out
        if store.cross_alert[i] == 0 and side != 0:
            out.extend(self._approach(c, side))
        return out

    def _open_crossing(self, c: _TrackView) -> list[BorderAlert]:
        s, store, i, t = self.s, c.store, c.i, c.t
        origin = int(store.cross_from[i])
        confirmed_t = float(store.cross_confirmed_t[i])
        if math.isnan(confirmed_t):
            if c.p_side(origin) >= s.p_establish:
                store.side[i] = origin
                return [self._close_crossing(c, "retracted")]
            if c.p_side(-origin) >= s.p_confirm:
                store.cross_confirmed_t[i] = t
                store.alert_t[i] = t
                return [self._event(c, AlertKind.CROSSING, AlertEvent.UPDATE, origin, "confirmed")]
        elif t - confirmed_t >= s.hold_s or (
            c.p_side(origin) >= s.p_new and self._moving_across(c, -origin)
        ):
            # Held long enough, or heading back across: close it so a new crossing can open.
            return [self._close_crossing(c, "confirmed")]
        if t - float(store.alert_t[i]) >= s.update_interval_s:
            store.alert_t[i] = t
            return [self._event(c, AlertKind.CROSSING, AlertEvent.UPDATE, origin)]
        return []

    def _moving_across(self, c: _TrackView, side: int, sigmas: float | None = None) -> bool:
        """Does the track move away from ``side`` across the line, fast and significantly?"""
        s = self.s
        k = s.normal_speed_sigmas if sigmas is None else sigmas
        need = max(s.min_normal_speed_mps, k * math.sqrt(max(c.var_v, 0.0)))
        return c.v_far(side) >= need

    def _close_crossing(self, c: _TrackView, reason: str) -> BorderAlert:
        store, i = c.store, c.i
        event = self._event(c, AlertKind.CROSSING, AlertEvent.END, int(store.cross_from[i]), reason)
        store.cross_alert[i] = 0
        store.cross_from[i] = 0
        store.cross_confirmed_t[i] = math.nan
        return event

    def _approach(self, c: _TrackView, side: int) -> list[BorderAlert]:
        s, store, i, t = self.s, c.store, c.i, c.t
        v = c.v_far(side)
        dist = abs(c.signed_distance())
        ttc = dist / v if v > 0 else math.inf
        if store.approach_alert[i] == 0:
            near = ttc <= s.approach_horizon_s and dist <= s.approach_max_distance_m
            near = near and t - float(store.first_t[i]) >= s.approach_min_age_s
            if near and s.approach_horizon_s > 0 and self._moving_across(c, side, sigmas=2.0):
                store.approach_alert[i] = self.ids.next()
                store.alert_t[i] = t
                return [self._event(c, AlertKind.APPROACH, AlertEvent.NEW, side, ttc=ttc)]
            return []
        # Hysteresis: raised on a significant approach, ended only when clearly turned away,
        # and not before it has stood for one update interval (slow walkers dither).
        turned = v <= 0 or ttc > 2.0 * s.approach_horizon_s
        if turned and t - float(store.alert_t[i]) >= s.update_interval_s:
            event = self._event(c, AlertKind.APPROACH, AlertEvent.END, side, "turned_away")
            store.approach_alert[i] = 0
            return [event]
        if not turned and t - float(store.alert_t[i]) >= s.update_interval_s:
            store.alert_t[i] = t
            return [self._event(c, AlertKind.APPROACH, AlertEvent.UPDATE, side, ttc=ttc)]
        return []

    def _event(
        self,
        c: _TrackView,
        kind: AlertKind,
        event: AlertEvent,
        from_side: int,
        reason: str = "",
        ttc: float | None = None,
    ) -> BorderAlert:
        store, i = c.store, c.i
        alert_id = int(
            store.cross_alert[i] if kind is AlertKind.CROSSING else store.approach_alert[i]
        )
        p_cross = c.p_side(-from_side)
        if kind is AlertKind.APPROACH:
            confidence = self._p_cross_within_horizon(c, from_side)
        else:
            confidence = p_cross
        evidence = store.cls_evidence[i]
        total = float(evidence.sum())
        seg = int(c.prox.segment[c.row])
        return BorderAlert(
            t=c.t,
            alert_id=alert_id,
            track_id=int(store.track_id[i]),
            kind=kind,
            event=event,
            direction=direction_name(from_side),
            border_kind=BorderKind(int(self.border.kind[seg])),
            segment=seg,
            x=float(c.xc[0]),
            y=float(c.xc[1]),
            vx=float(c.xc[2]),
            vy=float(c.xc[3]),
            cov_xy=c.Pc[:2, :2].copy(),
            p_cross=float(p_cross),
            confidence=float(confidence),
            time_to_cross_s=ttc,
            cls=int(np.argmax(evidence)) if total > 0 else 0,
            cls_conf=float(evidence.max() / total) if total > 0 else 0.0,
            reason=reason,
            sensor_mask=int(store.sensor_mask[i]),
        )

    def _p_cross_within_horizon(self, c: _TrackView, side: int) -> float:
        """P(the track reaches the border within the horizon) under its own velocity spread."""
        horizon = self.s.approach_horizon_s
        dist = abs(c.signed_distance())
        mean = c.v_far(side) * horizon - dist
        var_d = float(c.Pc[:2, :2].trace()) / 2.0
        sd = math.sqrt(max(var_d + horizon * horizon * c.var_v, 1e-9))
        return float(ndtr(mean / sd))

    def end_lost(
        self, store: TrackStore, lost: IntArray, xc: FloatArray, Pc: FloatArray, t: float
    ) -> list[BorderAlert]:
        """``end`` events (reason ``track_lost``) for the open alerts of tracks being deleted."""
        if lost.size == 0:
            return []
        prox = self.border.proximity(xc[lost, :2])
        p_left = prox.p_left(Pc[lost, :2, :2])
        out: list[BorderAlert] = []
        for k, i in enumerate(lost.tolist()):
            if not (store.cross_alert[i] or store.approach_alert[i]):
                continue
            ctx = _TrackView(store, i, xc[i], Pc[i], t, prox, p_left[k], 0.0, row=k)
            out.extend(self._end_all(ctx, "track_lost"))
        return out


class _TrackView:
    """One track's numbers during a border decision (a thin view, not stored)."""

    __slots__ = ("Pc", "_p_left", "i", "prox", "row", "store", "t", "var_v", "xc")

    def __init__(
        self,
        store: TrackStore,
        i: int,
        xc: FloatArray,
        Pc: FloatArray,
        t: float,
        prox: BorderProximity,
        p_left: float,
        var_v: float,
        row: int | None = None,
    ):
        self.store, self.i, self.xc, self.Pc, self.t = store, i, xc, Pc, t
        self.prox = prox
        self.row = i if row is None else row
        self._p_left = float(p_left)
        self.var_v = float(var_v)

    def p_side(self, side: int) -> float:
        """P(the track is on ``side``): +1 left, -1 right."""
        return self._p_left if side == 1 else 1.0 - self._p_left

    def v_far(self, side: int) -> float:
        """Speed (m/s) away from ``side``, towards the other side, along the border normal."""
        g = self.prox.gradient[self.row]
        v_left = float(self.xc[2] * g[0] + self.xc[3] * g[1])
        return -side * v_left

    def signed_distance(self) -> float:
        return float(self.prox.signed_distance_m[self.row])
