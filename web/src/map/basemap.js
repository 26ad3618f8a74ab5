// The background the service gives in /api/config: raster tiles from its own /tiles (when it
// has an MBTiles file), local vector features (water, land, roads, places), the border and the
// sensors' fields of view. Nothing is fetched from anywhere else.

import L from "leaflet";
import { BORDER_CASING, BORDER_STYLES } from "./symbols.js";

const BASEMAP_STYLES = {
  water: { color: "#1f5f8b", weight: 1, fillColor: "#123a5a", fillOpacity: 0.9 },
  land: { color: "#2a3a2e", weight: 1, fillColor: "#18221b", fillOpacity: 0.9 },
  forest: { color: "#1f3a26", weight: 1, fillColor: "#163020", fillOpacity: 0.9 },
  road: { color: "#6b6252", weight: 2, opacity: 0.9 },
  track: { color: "#5a5244", weight: 1, dashArray: "4 3", opacity: 0.9 },
  building: { color: "#4a4f57", weight: 1, fillColor: "#30353c", fillOpacity: 0.9 },
};
const DEFAULT_BASEMAP_STYLE = { color: "#48525e", weight: 1, fillColor: "#222a33", fillOpacity: 0.6 };
const MAX_PLACE_LABELS = 300;

function featureCollection(value) {
  return value && value.type === "FeatureCollection" && Array.isArray(value.features)
    ? value
    : { type: "FeatureCollection", features: [] };
}

function safe(build, fallback) {
  try {
    return build();
  } catch (err) {
    console.error("borderwatch: bad map data", err);
    return fallback;
  }
}

function escapeHtml(text) {
  const el = document.createElement("span");
  el.textContent = text;
  return el.innerHTML;
}

export function tileLayer(tiles) {
  if (!tiles || typeof tiles.url !== "string") return null;
  const minZoom = Number.isInteger(tiles.minzoom) ? tiles.minzoom : 0;
  const maxZoom = Number.isInteger(tiles.maxzoom) ? tiles.maxzoom : 18;
  return L.tileLayer(tiles.url.replace(/^\//, ""), {
    minNativeZoom: minZoom,
    maxNativeZoom: maxZoom,
    minZoom: Math.max(0, minZoom - 2),
    maxZoom: 20,
    attribution: typeof tiles.attribution === "string" ? escapeHtml(tiles.attribution) : "",
    keepBuffer: 4,
  });
}

export function basemapLayer(collection, renderer) {
  const places = [];
  const layer = safe(
    () =>
      L.geoJSON(featureCollection(collection), {
        renderer,
        interactive: false,
        style: (feature) => BASEMAP_STYLES[feature.properties && feature.properties.layer] || DEFAULT_BASEMAP_STYLE,
        filter: (feature) => {
          if (feature.geometry && feature.geometry.type === "Point") {
            if (places.length < MAX_PLACE_LABELS && feature.properties && feature.properties.name) {
              places.push(feature);
            }
            return false;
          }
          return true;
        },
      }),
    L.layerGroup(),
  );
  for (const place of places) {
    const [lon, lat] = place.geometry.coordinates;
    if (!Number.isFinite(lon) || !Number.isFinite(lat)) continue;
    const label = L.divIcon({ className: "place-label", html: "", iconSize: null });
    const marker = L.marker([lat, lon], { icon: label, interactive: false, keyboard: false });
    marker.on("add", () => {
      marker.getElement().textContent = String(place.properties.name);
    });
    layer.addLayer(marker);
  }
  return layer;
}

export function borderLayer(collection, renderer) {
  const fc = featureCollection(collection);
  const kindOf = (feature) => (feature.properties && feature.properties.kind === "blue" ? "blue" : "green");
  const casing = safe(
    () => L.geoJSON(fc, { renderer, interactive: false, style: (f) => BORDER_CASING[kindOf(f)] }),
    L.layerGroup(),
  );
  const line = safe(
    () =>
      L.geoJSON(fc, {
        renderer,
        style: (f) => BORDER_STYLES[kindOf(f)],
        onEachFeature: (feature, lyr) => {
          const name = feature.properties && feature.properties.name;
          if (name) lyr.bindTooltip(String(name), { sticky: true });
        },
      }),
    L.layerGroup(),
  );
  return L.featureGroup([casing, line]);
}

export function sensorLayer(collection, renderer) {
  return safe(
    () =>
      L.geoJSON(featureCollection(collection), {
        renderer,
        interactive: false,
        style: (feature) => ({
          color: feature.properties && feature.properties.type === "radar" ? "#7ee787" : "#d2a8ff",
          weight: 1,
          dashArray: "3 4",
          fillOpacity: 0.06,
          opacity: 0.7,
        }),
      }),
    L.layerGroup(),
  );
}
