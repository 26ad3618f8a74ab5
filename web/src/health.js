// The health panel: the broker link, this page's link, and for each node its sensors (ok, stale,
// fault), queue drops, outbox backlog and errors, from /api/health and health frames.

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function duration(seconds) {
  if (!Number.isFinite(seconds)) return "–";
  const s = Math.floor(seconds);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function count(value) {
  return Number.isFinite(value) ? String(value) : "–";
}

function kv(label, value, state) {
  const row = el("div", "kv");
  if (state) row.dataset.state = state;
  row.append(el("span", "k", label), el("span", "v", value));
  return row;
}

export class HealthPanel {
  constructor(element, flag, store, i18n) {
    this.element = element;
    this.flag = flag;
    this.store = store;
    this.i18n = i18n;
    this.link = "connecting";
    i18n.onChange(() => this.render());
  }

  setLink(state) {
    this.link = state;
    this.render();
  }

  render() {
    const t = (key, vars) => this.i18n.t(key, vars);
    const health = this.store.health;
    const parts = [];
    let trouble = this.link !== "open";
    parts.push(kv(t("health.console"), t(`link.${this.link}`), this.link === "open" ? "ok" : "fault"));
    if (this.store.bad > 0) parts.push(kv(t("health.page_errors"), String(this.store.bad), "stale"));
    if (!health) {
      parts.push(el("p", "empty", t("health.none")));
    } else {
      const broker = health.broker && typeof health.broker === "object" ? health.broker : {};
      if (broker.url) {
        const up = broker.connected === true;
        trouble ||= !up;
        parts.push(kv(t("health.broker"), `${t(up ? "health.connected" : "health.disconnected")} ${broker.url}`, up ? "ok" : "fault"));
      } else {
        parts.push(kv(t("health.broker"), t("health.no_broker")));
      }
      const consoleInfo = health.console && typeof health.console === "object" ? health.console : {};
      parts.push(kv(t("health.service_console"), t("health.clients", { n: count(consoleInfo.clients), e: count(consoleInfo.ws_errors) })));
      const nodes = Array.isArray(health.nodes) ? health.nodes : [];
      for (const node of nodes) {
        if (!node || typeof node !== "object") continue;
        const card = this.nodeCard(node, t);
        trouble ||= card.dataset.state !== "ok";
        parts.push(card);
      }
    }
    this.element.replaceChildren(...parts);
    this.flag.hidden = !trouble;
  }

  nodeCard(node, t) {
    const id = (node.provenance && node.provenance.node_id) || node.node_id || "?";
    const card = el("div", "node-card");
    card.dataset.nodeId = id;
    const online = node.status !== "offline";
    const sensors = Array.isArray(node.sensors) ? node.sensors.filter((s) => s && typeof s === "object") : [];
    const queues = Array.isArray(node.queues) ? node.queues.filter((q) => q && typeof q === "object") : [];
    const drops = queues.reduce((sum, q) => sum + (Number.isFinite(q.dropped) ? q.dropped : 0), 0);
    const worst = sensors.some((s) => s.status === "fault") ? "fault" : sensors.some((s) => s.status === "stale") ? "stale" : "ok";
    card.dataset.state = !online ? "fault" : drops > 0 && worst === "ok" ? "stale" : worst;

    const title = el("h3", "", id);
    title.append(el("span", `chip chip-${online ? "ok" : "fault"}`, t(`node.${online ? "online" : "offline"}`)));
    title.append(el("span", "muted", ` ${t("health.uptime", { t: duration(node.uptime_s) })}`));
    card.append(title);
    card.append(kv(t("health.outbox"), count(node.outbox_backlog), node.outbox_backlog > 0 ? "stale" : "ok"));
    card.append(kv(t("health.drops"), String(drops), drops > 0 ? "stale" : "ok"));
    card.append(kv(t("health.errors"), count(node.errors)));
    for (const q of queues) {
      card.append(kv(`  ${q.name}`, `${count(q.depth)} / ${count(q.capacity)}, ${count(q.dropped)} dropped`));
    }
    if (sensors.length) {
      const list = el("ul", "sensors");
      for (const sensor of sensors) {
        const status = ["ok", "stale", "fault"].includes(sensor.status) ? sensor.status : "fault";
        const item = el("li", "sensor");
        item.dataset.sensorId = String(sensor.sensor_id);
        item.dataset.state = status;
        item.append(el("span", `chip chip-${status}`, t(`sensor.${status}`)), el("span", "", ` ${sensor.sensor_id}`));
        if (sensor.detail) item.append(el("span", "muted", ` ${sensor.detail}`));
        list.append(item);
      }
      card.append(el("div", "k", t("health.sensors")), list);
    }
    return card;
  }
}
