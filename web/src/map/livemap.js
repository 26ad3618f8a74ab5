// The map: Leaflet with the service's own background layers, the track canvas on top, a
// details popup for the track or unit under a tap, and layer switches.

import L from "leaflet";
import { basemapLayer, borderLayer, sensorLayer, tileLayer } from "./basemap.js";
import { TrackLayer } from "./tracklayer.js";

const TAP_RADIUS_PX = 24;

function escapeHtml(text) {
  const el = document.createElement("span");
  el.textContent = String(text);
  return el.innerHTML;
}

export class LiveMap {
  constructor(element, config, store, i18n) {
    this.i18n = i18n;
    this.store = store;
    this.show = { tracks: true, trails: true, ellipses: true, units: true, labels: true };
    const map = L.map(element, {
      preferCanvas: true,
      zoomControl: true,
      attributionControl: true,
      minZoom: 3,
      maxZoom: 20,
      tapTolerance: 20,
      worldCopyJump: false,
    });
    this.map = map;
    map.attributionControl.setPrefix(false);
    map.createPane("tracks").style.zIndex = 450;
    const background = L.canvas({ padding: 0.3 });

    this.layers = {};
    const tiles = tileLayer(config.tiles);
    if (tiles) this.layers.tiles = tiles;
    this.layers.basemap = basemapLayer(config.basemap, background);
    this.layers.sensors = sensorLayer(config.sensors, background);
    this.layers.border = borderLayer(config.border, background);
    for (const layer of Object.values(this.layers)) layer.addTo(map);

    this.tracks = new TrackLayer(store, this.show);
    this.tracks.addTo(map);
    this.fit(config);
    map.on("click", (event) => this.tapped(event));
  }

  fit(config) {
    const border = this.layers.border;
    const bounds = border.getBounds && border.getBounds();
    if (bounds && bounds.isValid()) {
      this.map.fitBounds(bounds, { padding: [20, 20], maxZoom: 15 });
      return;
    }
    const centre = Array.isArray(config.center) ? config.center : null;
    if (centre && Number.isFinite(centre[0]) && Number.isFinite(centre[1])) {
      this.map.setView([centre[1], centre[0]], 13);
    } else {
      this.map.setView([0, 0], 3);
    }
  }

  redraw() {
    this.tracks.requestDraw();
  }

  setShown(name, on) {
    if (name in this.show) {
      this.show[name] = on;
      this.redraw();
      return;
    }
    const layer = this.layers[name];
    if (!layer) return;
    if (on) layer.addTo(this.map);
    else layer.remove();
    if (name === "border" && on) layer.bringToFront();
  }

  /** Layer switch names, in the order shown. */
  switches() {
    return ["tiles", "basemap", "border", "sensors", "tracks", "trails", "ellipses", "units", "labels"].filter(
      (name) => name in this.show || name in this.layers,
    );
  }

  isShown(name) {
    if (name in this.show) return this.show[name];
    const layer = this.layers[name];
    return Boolean(layer && this.map.hasLayer(layer));
  }

  flyTo(lon, lat) {
    if (Number.isFinite(lon) && Number.isFinite(lat)) {
      this.map.setView([lat, lon], Math.max(this.map.getZoom(), 15), { animate: true });
    }
  }

  tapped(event) {
    const hit = this.tracks.nearest(event.layerPoint, TAP_RADIUS_PX);
    if (!hit) return;
    const item = hit.item;
    L.popup({ maxWidth: 320, autoPanPadding: [40, 40] })
      .setLatLng([item.lat, item.lon])
      .setContent(hit.kind === "track" ? this.trackHtml(item) : this.unitHtml(item))
      .openOn(this.map);
  }

  trackHtml(track) {
    const t = (key, vars) => this.i18n.t(key, vars);
    const rows = [
      [t("track.class"), `${t(`class.${track.cls}`)}${Number.isFinite(track.classConfidence) ? ` (${track.classConfidence.toFixed(2)})` : ""}`],
      [t("track.status"), track.status],
      [t("track.speed"), `${track.speed.toFixed(1)} m/s`],
      [t("track.course"), `${track.course.toFixed(0)}°`],
      [t("track.time"), track.time],
    ];
    if (track.ellipse) {
      rows.push([t("track.ellipse"), `${track.ellipse.major.toFixed(0)} × ${track.ellipse.minor.toFixed(0)} m`]);
    }
    if (track.vessel) {
      rows.push([t("track.vessel"), [track.vessel.name, track.vessel.callsign, track.vessel.mmsi].filter(Boolean).join(" · ")]);
    }
    if (track.members.length) {
      rows.push([t("track.members"), track.members.map((m) => `${m.node_id}:${m.track_id}`).join(", ")]);
    }
    if (track.alertIds.length) rows.push([t("track.alerts"), track.alertIds.join(", ")]);
    const flags = [track.own ? t("legend.own") : "", track.dark ? t("legend.dark") : ""].filter(Boolean);
    return this.table(t("track.title", { id: track.id }), rows, flags);
  }

  unitHtml(unit) {
    const rows = [
      [this.i18n.t("track.course"), unit.heading === null ? "–" : `${unit.heading.toFixed(0)}°`],
      [this.i18n.t("track.speed"), Number.isFinite(unit.speed) ? `${unit.speed.toFixed(1)} m/s` : "–"],
      [this.i18n.t("track.status"), unit.status ? this.i18n.t(`node.${unit.status}`) : "–"],
      [this.i18n.t("track.time"), unit.time],
    ];
    return this.table(unit.id, rows, []);
  }

  table(title, rows, flags) {
    const body = rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join("");
    const flagHtml = flags.map((f) => `<span class="badge">${escapeHtml(f)}</span>`).join(" ");
    return `<div class="popup"><h3>${escapeHtml(title)}</h3>${flagHtml}<table>${body}</table></div>`;
  }
}
