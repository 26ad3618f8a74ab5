// Web Mercator (EPSG:3857) arithmetic done once per point, so a redraw only scales and shifts.

const R = 6378137;
const K = 0.5 / (Math.PI * R);
const MAX_LAT = 85.0511287798;

/** Spherical Mercator metres [x, y] of lon/lat degrees. */
export function projectLonLat(lon, lat) {
  const phi = (Math.max(Math.min(lat, MAX_LAT), -MAX_LAT) * Math.PI) / 180;
  return [(R * lon * Math.PI) / 180, R * Math.log(Math.tan(Math.PI / 4 + phi / 2))];
}

/**
 * A function from Mercator metres to the map's layer pixels at the current zoom, and the pixels
 * per ground metre at latitude lat (Mercator stretches ground distances by 1 / cos(lat)).
 */
export function pixelMapping(map) {
  const scale = 256 * 2 ** map.getZoom();
  const origin = map.getPixelOrigin();
  const toPixel = (xy) => [scale * (K * xy[0] + 0.5) - origin.x, scale * (-K * xy[1] + 0.5) - origin.y];
  const pxPerMetre = (lat) => (scale * K) / Math.cos((lat * Math.PI) / 180);
  return { toPixel, pxPerMetre };
}
