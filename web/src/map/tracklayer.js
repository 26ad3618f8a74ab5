// Tracks, trails, 95 % ellipses, own units and alert rings on one canvas. It is a Leaflet canvas
// renderer, so panning moves the canvas without redrawing and zooming scales it; it redraws when
// a move ends and when new data arrived (at most once per animation frame).

import L from "leaflet";
import { pixelMapping } from "./geo.js";
import { ALERT_COLOUR, UNIT_COLOUR, symbolPath, trackStyle, unitPath } from "./symbols.js";

const DEG = Math.PI / 180;
const SYMBOL_PX = 8;
const UNIT_PX = 12;
const LEADER_S = 30;
const LEADER_MAX_PX = 40;
const LABEL_LIMIT = 150;

export const TrackLayer = L.Canvas.extend({
  options: { padding: 0.15, pane: "tracks" },

  initialize(store, show, options) {
    L.Canvas.prototype.initialize.call(this, options);
    this.store = store;
    this.show = show;
    this.drawRequest = null;
    this.drawCount = 0;
    this.drawMs = [];
    this.on("update", this.draw, this);
  },

  /** Redraws at the next animation frame (many frames per second coalesce into one). */
  requestDraw() {
    if (this.drawRequest !== null || !this._map) return;
    this.drawRequest = L.Util.requestAnimFrame(() => {
      this.drawRequest = null;
      this.draw();
    });
  },

  draw() {
    const map = this._map;
    if (!map || !this._ctx || !this._bounds) return;
    const began = performance.now();
    const ctx = this._ctx;
    const b = this._bounds;
    ctx.save();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this._container.width, this._container.height);
    ctx.restore();
    const { toPixel, pxPerMetre } = pixelMapping(map);
    const margin = 60;
    const inside = (p) => p[0] > b.min.x - margin && p[0] < b.max.x + margin && p[1] > b.min.y - margin && p[1] < b.max.y + margin;

    const visible = [];
    if (this.show.tracks) {
      for (const track of this.store.tracks.values()) {
        const p = toPixel(track.xy);
        if (inside(p)) visible.push([track, p]);
      }
    }
    if (this.show.ellipses) this.drawEllipses(ctx, visible, pxPerMetre);
    if (this.show.trails) this.drawTrails(ctx, visible, toPixel);
    this.drawAlertRings(ctx, toPixel, inside);
    this.drawSymbols(ctx, visible, pxPerMetre);
    if (this.show.units) this.drawUnits(ctx, toPixel, inside);
    if (this.show.labels && visible.length <= LABEL_LIMIT) this.drawLabels(ctx, visible);
    this.visibleCount = visible.length;
    this.drawCount += 1;
    this.drawMs.push(performance.now() - began);
    if (this.drawMs.length > 200) this.drawMs.shift();
  },

  drawEllipses(ctx, visible, pxPerMetre) {
    ctx.beginPath();
    for (const [track, p] of visible) {
      const e = track.ellipse;
      if (!e) continue;
      const k = pxPerMetre(track.lat);
      const rx = e.major * k;
      const ry = e.minor * k;
      if (rx < 3) continue;
      // orientation is from north, clockwise; canvas angles run clockwise from +x (east)
      const rot = (e.orientation - 90) * DEG;
      ctx.moveTo(p[0] + rx * Math.cos(rot), p[1] + rx * Math.sin(rot));
      ctx.ellipse(p[0], p[1], rx, Math.max(ry, 1), rot, 0, Math.PI * 2);
    }
    ctx.fillStyle = "rgba(255, 214, 102, 0.08)";
    ctx.fill();
    ctx.strokeStyle = "rgba(255, 214, 102, 0.55)";
    ctx.lineWidth = 1;
    ctx.stroke();
  },

  drawTrails(ctx, visible, toPixel) {
    const groups = [[], []];
    for (const entry of visible) groups[entry[0].own ? 1 : 0].push(entry);
    const colours = ["rgba(230, 237, 243, 0.45)", "rgba(56, 217, 107, 0.6)"];
    groups.forEach((group, i) => {
      ctx.beginPath();
      for (const [track, p] of group) {
        const trail = track.trail;
        if (trail.length === 0) continue;
        let q = toPixel(trail[0]);
        ctx.moveTo(q[0], q[1]);
        for (let j = 1; j < trail.length; j += 1) {
          q = toPixel(trail[j]);
          ctx.lineTo(q[0], q[1]);
        }
        ctx.lineTo(p[0], p[1]);
      }
      ctx.strokeStyle = colours[i];
      ctx.lineWidth = 1.5;
      ctx.stroke();
    });
  },

  drawAlertRings(ctx, toPixel, inside) {
    const open = [];
    for (const alert of this.store.alerts.values()) {
      if (alert.status === "closed" || !alert.xy) continue;
      const track = this.store.tracks.get(alert.trackId);
      const p = toPixel(track ? track.xy : alert.xy);
      if (inside(p)) open.push([alert, p]);
    }
    if (open.length === 0) return;
    ctx.lineWidth = 3;
    for (const [alert, p] of open) {
      ctx.beginPath();
      ctx.arc(p[0], p[1], SYMBOL_PX + 7, 0, Math.PI * 2);
      if (alert.priority === "rescue") ctx.arc(p[0], p[1], SYMBOL_PX + 12, 0, Math.PI * 2);
      ctx.strokeStyle = alert.status === "open" ? ALERT_COLOUR : "rgba(255, 59, 59, 0.5)";
      ctx.setLineDash(alert.status === "open" ? [] : [4, 4]);
      ctx.stroke();
    }
    ctx.setLineDash([]);
  },

  drawSymbols(ctx, visible, pxPerMetre) {
    ctx.lineJoin = "round";
    for (const [track, p] of visible) {
      const style = trackStyle(track);
      const course = track.course * DEG;
      ctx.globalAlpha = track.status === "coasting" ? 0.45 : 1;
      ctx.beginPath();
      symbolPath(ctx, track.cls, p[0], p[1], SYMBOL_PX, course);
      if (track.status === "tentative") {
        ctx.setLineDash([3, 2]);
        ctx.strokeStyle = style.fill;
        ctx.lineWidth = 2;
        ctx.stroke();
        ctx.setLineDash([]);
      } else {
        ctx.fillStyle = style.fill;
        ctx.fill();
        ctx.strokeStyle = track.alertIds.length ? ALERT_COLOUR : style.stroke;
        ctx.lineWidth = track.alertIds.length ? 3 : style.width;
        ctx.stroke();
      }
      if (track.speed > 0.3) {
        const len = Math.min(LEADER_MAX_PX, SYMBOL_PX + track.speed * LEADER_S * pxPerMetre(track.lat));
        ctx.beginPath();
        ctx.moveTo(p[0], p[1]);
        ctx.lineTo(p[0] + len * Math.sin(course), p[1] - len * Math.cos(course));
        ctx.strokeStyle = style.fill;
        ctx.lineWidth = 1.5;
        ctx.stroke();
      }
    }
    ctx.globalAlpha = 1;
  },

  drawUnits(ctx, toPixel, inside) {
    ctx.font = "600 12px system-ui, sans-serif";
    for (const unit of this.store.units.values()) {
      const p = toPixel(unit.xy);
      if (!inside(p)) continue;
      const heading = unit.heading === null ? null : unit.heading * DEG;
      ctx.beginPath();
      unitPath(ctx, p[0], p[1], unit.self ? UNIT_PX + 3 : UNIT_PX, heading);
      ctx.fillStyle = unit.status === "offline" ? "#6e7681" : UNIT_COLOUR;
      ctx.fill();
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = unit.self ? 3 : 2;
      ctx.stroke();
      this.label(ctx, unit.id, p[0] + UNIT_PX + 5, p[1] + 4, "#bdf6ff");
    }
  },

  drawLabels(ctx, visible) {
    ctx.font = "12px system-ui, sans-serif";
    for (const [track, p] of visible) {
      const name = track.vessel && track.vessel.name ? `${track.vessel.name} ` : "";
      this.label(ctx, name + track.id, p[0] + SYMBOL_PX + 4, p[1] - SYMBOL_PX, "#e6edf3");
    }
  },

  label(ctx, text, x, y, colour) {
    ctx.lineWidth = 3;
    ctx.strokeStyle = "rgba(13, 17, 23, 0.9)";
    ctx.strokeText(text, x, y);
    ctx.fillStyle = colour;
    ctx.fillText(text, x, y);
  },

  /** The track or own unit nearest to a layer point, within maxPx pixels; null if none. */
  nearest(layerPoint, maxPx) {
    const map = this._map;
    if (!map) return null;
    const { toPixel } = pixelMapping(map);
    let best = null;
    let bestD = maxPx * maxPx;
    const consider = (kind, item) => {
      const p = toPixel(item.xy);
      const d = (p[0] - layerPoint.x) ** 2 + (p[1] - layerPoint.y) ** 2;
      if (d <= bestD) {
        bestD = d;
        best = { kind, item };
      }
    };
    if (this.show.units) for (const unit of this.store.units.values()) consider("unit", unit);
    if (this.show.tracks) for (const track of this.store.tracks.values()) consider("track", track);
    return best;
  },
});
