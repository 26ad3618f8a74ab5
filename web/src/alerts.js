// The alert list: one row per alert (newest and most urgent first), with acknowledge, assign
// and close. Rows carry data-alert-id and data-status; buttons data-action.

const PRIORITY_RANK = { rescue: 0, high: 1, normal: 2 };
const STATUS_RANK = { open: 0, acknowledged: 1, assigned: 2, closed: 3 };
const ACTIONS = {
  open: ["acknowledge", "assign", "close"],
  acknowledged: ["assign", "close"],
  assigned: ["assign", "close"],
  closed: [],
};
const FRESH_MS = 15000;

function compare(a, b) {
  return (
    STATUS_RANK[a.status] - STATUS_RANK[b.status] ||
    PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority] ||
    (b.raisedWall || 0) - (a.raisedWall || 0) ||
    (a.id < b.id ? -1 : 1)
  );
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function clock(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString([], { hour12: false });
}

export class AlertList {
  /**
   * @param {{list: HTMLElement, empty: HTMLElement, count: HTMLElement}} elements
   * @param {{onAct: (alert: object, verb: string) => void, onSelect: (alert: object) => void}} handlers
   */
  constructor(elements, store, i18n, handlers) {
    this.list = elements.list;
    this.empty = elements.empty;
    this.count = elements.count;
    this.store = store;
    this.i18n = i18n;
    this.handlers = handlers;
    this.rows = new Map();
    this.busy = new Set();
    this.list.addEventListener("click", (event) => this.clicked(event));
    this.list.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && event.target.matches("[data-alert-id]")) this.clicked(event);
    });
    i18n.onChange(() => this.renderAll());
  }

  clicked(event) {
    const row = event.target.closest("[data-alert-id]");
    if (!row) return;
    const alert = this.store.alerts.get(row.dataset.alertId);
    if (!alert) return;
    const button = event.target.closest("button[data-action]");
    if (button) {
      if (!button.disabled) this.handlers.onAct(alert, button.dataset.action);
    } else {
      this.handlers.onSelect(alert);
    }
  }

  /** Redraws every row from the store (after a snapshot or a language change). */
  renderAll() {
    for (const [id, row] of this.rows) {
      if (!this.store.alerts.has(id)) {
        row.remove();
        this.rows.delete(id);
      }
    }
    for (const alert of this.store.alerts.values()) this.renderRow(alert, false);
    this.order();
  }

  /** Shows one alert at once (an alert frame is never deferred). */
  show(alert, fresh) {
    this.renderRow(alert, fresh);
    this.order();
  }

  setBusy(alertId, busy) {
    if (busy) this.busy.add(alertId);
    else this.busy.delete(alertId);
    const alert = this.store.alerts.get(alertId);
    if (alert) this.renderRow(alert, false);
  }

  renderRow(alert, fresh) {
    const t = (key, vars) => this.i18n.t(key, vars);
    let row = this.rows.get(alert.id);
    if (!row) {
      row = el("li", "alert");
      row.dataset.alertId = alert.id;
      row.tabIndex = 0;
      this.rows.set(alert.id, row);
    }
    row.dataset.status = alert.status;
    row.dataset.priority = alert.priority;
    row.dataset.kind = alert.kind;
    row.classList.toggle("pending", alert.pending);
    if (fresh && alert.status === "open") {
      row.classList.add("fresh");
      clearTimeout(row.freshTimer);
      row.freshTimer = setTimeout(() => row.classList.remove("fresh"), FRESH_MS);
    }
    if (alert.status !== "open") row.classList.remove("fresh");

    const head = el("div", "alert-head");
    head.append(
      el("span", `prio prio-${alert.priority}`, t(`priority.${alert.priority}`)),
      el("span", "kind", `${t(`kind.${alert.kind}`)} · ${t(`border.${alert.borderKind}`)}`),
      el("time", "when", clock(alert.raisedAt)),
    );
    const facts = [t(`class.${alert.cls}`)];
    if (Number.isFinite(alert.pCross)) facts.push(t("alert.p", { p: alert.pCross.toFixed(2) }));
    if (alert.direction) facts.push(this.i18n.tOr(`direction.${alert.direction}`, alert.direction));
    if (alert.timeToCross !== null && alert.kind === "approach") {
      facts.push(t("alert.ttc", { s: Math.max(0, alert.timeToCross).toFixed(0) }));
    }
    if (alert.trackId) facts.push(t("alert.track", { id: alert.trackId }));
    if (alert.event === "end") facts.push(t("event.end"));
    const body = el("div", "alert-body", facts.join(" · "));

    const states = [t(`status.${alert.status}`)];
    if (alert.acknowledgedBy) states.push(t("alert.ack_by", { name: alert.acknowledgedBy }));
    if (alert.assignee) states.push(t("alert.assigned", { name: alert.assignee }));
    if (alert.closedBy) states.push(t("alert.closed_by", { name: alert.closedBy }));
    if (alert.pending) states.push(t("status.pending"));
    if (alert.members.length > 1) states.push(t("alert.nodes", { nodes: alert.members.map((m) => m.node_id).join(", ") }));
    const status = el("div", "alert-status", states.join(" · "));

    const actions = el("div", "alert-actions");
    for (const verb of ACTIONS[alert.status]) {
      const button = el("button", `act act-${verb}`, t(`action.${verb}`));
      button.type = "button";
      button.dataset.action = verb;
      button.disabled = this.busy.has(alert.id);
      actions.append(button);
    }
    row.replaceChildren(head, body, status, actions);
  }

  order() {
    const sorted = [...this.store.alerts.values()].sort(compare);
    let cursor = this.list.firstElementChild;
    for (const alert of sorted) {
      const row = this.rows.get(alert.id);
      if (!row) continue;
      if (row !== cursor) this.list.insertBefore(row, cursor);
      else cursor = cursor.nextElementSibling;
    }
    const open = sorted.filter((a) => a.status === "open").length;
    this.count.textContent = String(open);
    this.count.classList.toggle("hot", open > 0);
    this.empty.hidden = sorted.length > 0;
  }

  /** Forgets closed alerts last updated more than maxAgeMs ago. */
  prune(maxAgeMs) {
    const now = Date.now();
    let removed = false;
    for (const alert of [...this.store.alerts.values()]) {
      const updated = Date.parse(alert.updatedAt);
      if (alert.status === "closed" && Number.isFinite(updated) && now - updated > maxAgeMs) {
        this.store.alerts.delete(alert.id);
        removed = true;
      }
    }
    if (removed) this.renderAll();
  }
}
