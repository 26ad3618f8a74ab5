// The live picture held by the page: tracks, own units, alerts and health, fed by snapshot and
// delta frames. Every feature is checked before it is kept: a malformed one is skipped and
// counted, never drawn.

import { projectLonLat } from "./map/geo.js";

const TRACK_CLASSES = new Set(["person", "group", "boat", "vehicle", "unknown"]);
const TRACK_STATUSES = new Set(["tentative", "confirmed", "coasting"]);
const ALERT_STATUSES = new Set(["open", "acknowledged", "assigned", "closed"]);
const MAX_TRAIL = 120;
const FRAME_LOG = 600;

function finite(value, fallback = 0) {
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}

function pointOf(feature) {
  const geometry = feature && feature.geometry;
  if (!geometry || geometry.type !== "Point" || !Array.isArray(geometry.coordinates)) return null;
  const [lon, lat] = geometry.coordinates;
  if (!Number.isFinite(lon) || !Number.isFinite(lat)) return null;
  if (Math.abs(lat) > 85 || Math.abs(lon) > 180) return null;
  return [lon, lat];
}

function idOf(feature, key) {
  const id = feature.id ?? (feature.properties && feature.properties[key]);
  return typeof id === "string" || typeof id === "number" ? String(id) : null;
}

function text(value) {
  return typeof value === "string" ? value : value == null ? "" : String(value);
}

/** A track feature reduced to what the page draws, with its points projected once. */
export function trackFrom(feature) {
  const at = pointOf(feature);
  const id = at && idOf(feature, "track_id");
  if (!id) return null;
  const p = feature.properties && typeof feature.properties === "object" ? feature.properties : {};
  const ellipse = p.ellipse && typeof p.ellipse === "object" ? p.ellipse : null;
  const trail = [];
  if (Array.isArray(p.trail)) {
    for (const point of p.trail.slice(-MAX_TRAIL)) {
      if (Array.isArray(point) && Number.isFinite(point[0]) && Number.isFinite(point[1])) {
        trail.push(projectLonLat(point[0], point[1]));
      }
    }
  }
  const vessel = p.vessel && typeof p.vessel === "object" ? p.vessel : null;
  return {
    id,
    lon: at[0],
    lat: at[1],
    xy: projectLonLat(at[0], at[1]),
    time: text(p.time),
    status: TRACK_STATUSES.has(p.status) ? p.status : "confirmed",
    cls: TRACK_CLASSES.has(p.class) ? p.class : "unknown",
    classConfidence: finite(p.class_confidence, NaN),
    speed: finite(p.speed_mps),
    course: finite(p.course_deg),
    ellipse: ellipse && {
      major: Math.max(0, finite(ellipse.semi_major_m)),
      minor: Math.max(0, finite(ellipse.semi_minor_m)),
      orientation: finite(ellipse.orientation_deg),
    },
    trail,
    own: p.own === true,
    dark: p.dark === true,
    vessel: vessel && { mmsi: text(vessel.mmsi), name: text(vessel.name), callsign: text(vessel.callsign) },
    members: Array.isArray(p.members) ? p.members.filter((m) => m && typeof m === "object") : [],
    alertIds: Array.isArray(p.alert_ids) ? p.alert_ids.map(text) : [],
  };
}

export function unitFrom(feature) {
  const at = pointOf(feature);
  const id = at && idOf(feature, "node_id");
  if (!id) return null;
  const p = feature.properties && typeof feature.properties === "object" ? feature.properties : {};
  const heading = typeof p.heading_deg === "number" && Number.isFinite(p.heading_deg) ? p.heading_deg : null;
  return {
    id,
    lon: at[0],
    lat: at[1],
    xy: projectLonLat(at[0], at[1]),
    time: text(p.time),
    heading,
    speed: finite(p.speed_mps, NaN),
    status: p.status === "offline" ? "offline" : p.status === "online" ? "online" : null,
    self: p.self === true,
  };
}

export function alertFrom(feature) {
  if (!feature || typeof feature !== "object") return null;
  const p = feature.properties && typeof feature.properties === "object" ? feature.properties : null;
  const id = p && idOf(feature, "alert_id");
  if (!id) return null;
  const at = pointOf(feature);
  return {
    id,
    lon: at ? at[0] : null,
    lat: at ? at[1] : null,
    xy: at ? projectLonLat(at[0], at[1]) : null,
    kind: p.kind === "approach" ? "approach" : "crossing",
    event: text(p.event),
    priority: ["rescue", "high", "normal"].includes(p.priority) ? p.priority : "normal",
    borderKind: p.border_kind === "blue" ? "blue" : "green",
    direction: text(p.direction),
    trackId: text(p.track_id),
    cls: TRACK_CLASSES.has(p.class) ? p.class : "unknown",
    pCross: finite(p.p_cross, NaN),
    confidence: finite(p.confidence, NaN),
    timeToCross: typeof p.time_to_cross_s === "number" && Number.isFinite(p.time_to_cross_s) ? p.time_to_cross_s : null,
    raisedAt: text(p.raised_at),
    updatedAt: text(p.updated_at),
    raisedWall: finite(p.raised_wall, NaN),
    status: ALERT_STATUSES.has(p.status) ? p.status : "open",
    acknowledgedBy: text(p.acknowledged_by),
    assignee: text(p.assignee),
    closedBy: text(p.closed_by),
    pending: p.pending === true,
    members: Array.isArray(p.members) ? p.members.filter((m) => m && typeof m === "object") : [],
  };
}

function featuresOf(collection) {
  if (Array.isArray(collection)) return collection;
  if (collection && Array.isArray(collection.features)) return collection.features;
  return null;
}

export class Store {
  constructor() {
    this.tracks = new Map();
    this.units = new Map();
    this.alerts = new Map();
    this.health = null;
    this.bad = 0;
    this.badReasons = {};
    this.trackFrames = [];
    this.applyMs = [];
    this.lastFrameAt = 0;
    this.serverOffsetMs = 0;
  }

  rejected(why) {
    this.bad += 1;
    this.badReasons[why] = (this.badReasons[why] || 0) + 1;
  }

  /** Replaces everything with a snapshot; returns the alerts not known before. */
  snapshot(frame) {
    const fresh = [];
    const tracks = featuresOf(frame.tracks);
    const units = featuresOf(frame.units);
    const alerts = featuresOf(frame.alerts);
    if (tracks) {
      this.tracks.clear();
      this.putTracks(tracks);
    } else this.rejected("snapshot.tracks");
    if (units) {
      this.units.clear();
      this.putUnits(units);
    }
    if (alerts) {
      const known = new Set(this.alerts.keys());
      this.alerts.clear();
      for (const feature of alerts) {
        const alert = this.putAlert(feature);
        if (alert && !known.has(alert.id)) fresh.push(alert);
      }
    } else this.rejected("snapshot.alerts");
    if (frame.health && typeof frame.health === "object") this.health = frame.health;
    return fresh;
  }

  /** Applies a tracks frame (changed features and removed ids). */
  applyTracks(frame) {
    const features = featuresOf(frame.features);
    if (!features) {
      this.rejected("tracks.features");
      return false;
    }
    const began = performance.now();
    this.putTracks(features);
    if (Array.isArray(frame.removed)) {
      for (const id of frame.removed) this.tracks.delete(String(id));
    }
    const now = Date.now();
    this.lastFrameAt = now;
    if (typeof frame.server_time === "number" && Number.isFinite(frame.server_time)) {
      this.serverOffsetMs = frame.server_time * 1000 - now;
    }
    this.trackFrames.push(now);
    this.applyMs.push(performance.now() - began);
    if (this.applyMs.length > FRAME_LOG) this.applyMs.shift();
    if (this.trackFrames.length > FRAME_LOG) this.trackFrames.splice(0, this.trackFrames.length - FRAME_LOG);
    return true;
  }

  putTracks(features) {
    this.putAll(this.tracks, features, trackFrom, "track");
  }

  applyUnits(frame) {
    const features = featuresOf(frame.features);
    if (!features) {
      this.rejected("units.features");
      return false;
    }
    this.putUnits(features);
    return true;
  }

  putUnits(features) {
    this.putAll(this.units, features, unitFrom, "unit");
  }

  /** Keeps each feature that `convert` accepts in `into` by id; counts the others. */
  putAll(into, features, convert, what) {
    for (const feature of features) {
      const item = convert(feature);
      if (item) into.set(item.id, item);
      else this.rejected(what);
    }
  }

  /** Keeps one alert feature; returns the alert, or null when it was malformed. */
  putAlert(feature) {
    const alert = alertFrom(feature);
    if (!alert) {
      this.rejected("alert");
      return null;
    }
    const before = this.alerts.get(alert.id);
    if (alert.lon === null && before) {
      alert.lon = before.lon;
      alert.lat = before.lat;
      alert.xy = before.xy;
    }
    this.alerts.set(alert.id, alert);
    return alert;
  }

  setHealth(health) {
    if (!health || typeof health !== "object") {
      this.rejected("health");
      return false;
    }
    this.health = health;
    return true;
  }
}
