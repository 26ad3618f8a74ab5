// The side panel: tabs (alerts, health, layers), the layer switches and the legend, and the
// toggle that opens it over the map on a narrow screen.

import { BORDER_STYLES, CLASS_COLOURS, DARK_FILL, DARK_OUTLINE, OWN_COLOUR, UNIT_COLOUR, legendSwatch, symbolPath, unitPath } from "./map/symbols.js";

const CLASSES = ["person", "group", "boat", "vehicle", "unknown"];

export function bindTabs(side) {
  const buttons = side.querySelectorAll("[role=tab]");
  for (const button of buttons) {
    button.addEventListener("click", () => {
      for (const other of buttons) other.setAttribute("aria-selected", String(other === button));
      for (const tab of side.querySelectorAll("section.tab")) tab.hidden = tab.dataset.tab !== button.dataset.tab;
    });
  }
}

export function bindPanelToggle(button, i18n) {
  const label = () => {
    const open = document.body.classList.contains("panel-open");
    button.textContent = i18n.t(open ? "panel.hide" : "panel.show");
    button.setAttribute("aria-expanded", String(open));
  };
  button.addEventListener("click", () => {
    document.body.classList.toggle("panel-open");
    label();
  });
  i18n.onChange(label);
  label();
}

export function renderLayers(element, liveMap, i18n) {
  const render = () => {
    const items = liveMap.switches().map((name) => {
      const label = document.createElement("label");
      label.className = "switch";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.dataset.layer = name;
      box.checked = liveMap.isShown(name);
      box.addEventListener("change", () => liveMap.setShown(name, box.checked));
      label.append(box, document.createTextNode(` ${i18n.t(`layers.${name}`)}`));
      return label;
    });
    element.replaceChildren(...items);
  };
  i18n.onChange(render);
  render();
}

function line(style) {
  return (ctx, x, y) => {
    ctx.beginPath();
    ctx.moveTo(x - 12, y);
    ctx.lineTo(x + 12, y);
    ctx.strokeStyle = style.color;
    ctx.lineWidth = style.weight;
    ctx.setLineDash(style.dashArray ? style.dashArray.split(" ").map(Number) : []);
    ctx.stroke();
  };
}

function symbol(cls, fill, stroke, width, dashed = false, alpha = 1) {
  return (ctx, x, y) => {
    ctx.globalAlpha = alpha;
    ctx.beginPath();
    symbolPath(ctx, cls, x, y, 8, 0);
    if (dashed) {
      ctx.setLineDash([3, 2]);
      ctx.strokeStyle = fill;
      ctx.lineWidth = 2;
      ctx.stroke();
      return;
    }
    ctx.fillStyle = fill;
    ctx.fill();
    ctx.strokeStyle = stroke;
    ctx.lineWidth = width;
    ctx.stroke();
  };
}

export function renderLegend(element, i18n) {
  const render = () => {
    const t = (key) => i18n.t(key);
    const entries = [
      [line(BORDER_STYLES.green), t("legend.green")],
      [line(BORDER_STYLES.blue), t("legend.blue")],
      ...CLASSES.map((cls) => [symbol(cls, CLASS_COLOURS[cls], "#0d1117", 1.5), t(`class.${cls}`)]),
      [symbol("boat", OWN_COLOUR, "#ffffff", 2), t("legend.own")],
      [symbol("boat", DARK_FILL, DARK_OUTLINE, 3), t("legend.dark")],
      [symbol("person", CLASS_COLOURS.person, "#ff3b3b", 3), t("legend.alerting")],
      [symbol("person", CLASS_COLOURS.person, "", 0, true), t("legend.tentative")],
      [symbol("person", CLASS_COLOURS.person, "#0d1117", 1.5, false, 0.45), t("legend.coasting")],
      [
        (ctx, x, y) => {
          ctx.beginPath();
          unitPath(ctx, x, y, 10, 0.6);
          ctx.fillStyle = UNIT_COLOUR;
          ctx.fill();
          ctx.strokeStyle = "#ffffff";
          ctx.lineWidth = 2;
          ctx.stroke();
        },
        t("legend.unit"),
      ],
    ];
    const title = document.createElement("h3");
    title.textContent = t("legend");
    const list = document.createElement("ul");
    list.className = "legend";
    for (const [draw, text] of entries) {
      const item = document.createElement("li");
      item.append(legendSwatch(draw), document.createTextNode(` ${text}`));
      list.append(item);
    }
    element.replaceChildren(title, list);
  };
  i18n.onChange(render);
  render();
}
