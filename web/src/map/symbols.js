// Class symbols drawn on a canvas (the map and the legend share them): no icon files, crisp at
// any pixel ratio, and one canvas for a thousand tracks instead of a thousand DOM markers.

export const CLASS_COLOURS = {
  person: "#ffd166",
  group: "#ff9f43",
  boat: "#4cc9f0",
  vehicle: "#c77dff",
  unknown: "#adb5bd",
};
export const OWN_COLOUR = "#38d96b";
export const DARK_FILL = "#05070a";
export const DARK_OUTLINE = "#ff4dff";
export const ALERT_COLOUR = "#ff3b3b";
export const UNIT_COLOUR = "#00e5ff";
export const BORDER_STYLES = {
  green: { color: "#3ddc84", weight: 3, dashArray: "12 6", opacity: 0.95 },
  blue: { color: "#3fa9ff", weight: 5, opacity: 0.95 },
};
export const BORDER_CASING = {
  green: { color: "#0b2e1a", weight: 7, opacity: 0.8 },
  blue: { color: "#c8e7ff", weight: 9, opacity: 0.35 },
};

const TAU = Math.PI * 2;

/** Adds the outline of a class symbol of radius r at (x, y) to the current path. */
export function symbolPath(ctx, cls, x, y, r, courseRad) {
  switch (cls) {
    case "person":
      ctx.moveTo(x + r * 0.75, y);
      ctx.arc(x, y, r * 0.75, 0, TAU);
      break;
    case "group": {
      const s = r * 0.45;
      for (const [dx, dy] of [[0, -0.5], [-0.55, 0.45], [0.55, 0.45]]) {
        ctx.moveTo(x + dx * r + s, y + dy * r);
        ctx.arc(x + dx * r, y + dy * r, s, 0, TAU);
      }
      break;
    }
    case "boat": {
      // a hull pointing along the course
      const c = Math.cos(courseRad);
      const s = Math.sin(courseRad);
      const pts = [[0, -1.2], [0.6, -0.2], [0.6, 0.9], [-0.6, 0.9], [-0.6, -0.2]];
      pts.forEach(([px, py], i) => {
        const rx = x + r * (px * c - py * s);
        const ry = y + r * (px * s + py * c);
        if (i === 0) ctx.moveTo(rx, ry);
        else ctx.lineTo(rx, ry);
      });
      ctx.closePath();
      break;
    }
    case "vehicle":
      ctx.rect(x - r * 0.8, y - r * 0.55, r * 1.6, r * 1.1);
      break;
    default:
      ctx.moveTo(x, y - r);
      ctx.lineTo(x + r, y);
      ctx.lineTo(x, y + r);
      ctx.lineTo(x - r, y);
      ctx.closePath();
  }
}

/** An own unit: a navigation arrow pointing along its heading (a circle when unknown). */
export function unitPath(ctx, x, y, r, headingRad) {
  if (headingRad === null) {
    ctx.moveTo(x + r * 0.7, y);
    ctx.arc(x, y, r * 0.7, 0, TAU);
    return;
  }
  const c = Math.cos(headingRad);
  const s = Math.sin(headingRad);
  const pts = [[0, -1.3], [0.85, 0.9], [0, 0.4], [-0.85, 0.9]];
  pts.forEach(([px, py], i) => {
    const rx = x + r * (px * c - py * s);
    const ry = y + r * (px * s + py * c);
    if (i === 0) ctx.moveTo(rx, ry);
    else ctx.lineTo(rx, ry);
  });
  ctx.closePath();
}

/** Fill and outline of a track's symbol: own and dark boats stand out from the class colour. */
export function trackStyle(track) {
  if (track.own) return { fill: OWN_COLOUR, stroke: "#ffffff", width: 2 };
  if (track.dark) return { fill: DARK_FILL, stroke: DARK_OUTLINE, width: 3 };
  return { fill: CLASS_COLOURS[track.cls] || CLASS_COLOURS.unknown, stroke: "#0d1117", width: 1.5 };
}

/** A small canvas with one symbol, for the legend. */
export function legendSwatch(draw) {
  const canvas = document.createElement("canvas");
  const ratio = window.devicePixelRatio || 1;
  canvas.width = 28 * ratio;
  canvas.height = 28 * ratio;
  canvas.style.width = "28px";
  canvas.style.height = "28px";
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  draw(ctx, 14, 14);
  return canvas;
}
