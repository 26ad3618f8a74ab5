// The console page: loads the service's configuration and language, builds the map, the alert
// list and the health panel, and keeps them live over the WebSocket.

import { act, getJson } from "./api.js";
import { AlertList } from "./alerts.js";
import { HealthPanel } from "./health.js";
import { I18n } from "./i18n.js";
import { LiveLink } from "./livelink.js";
import { LiveMap } from "./map/livemap.js";
import { bindPanelToggle, bindTabs, renderLayers, renderLegend } from "./panel.js";
import { Alarm } from "./sound.js";
import { Store } from "./store.js";

const OPERATOR_KEY = "borderwatch.operator";
const CLOSED_KEPT_MS = 10 * 60 * 1000;
const $ = (id) => document.getElementById(id);

function remembered(key, fallback) {
  try {
    return localStorage.getItem(key) ?? fallback;
  } catch {
    return fallback;
  }
}

function remember(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // storage disabled: not remembered
  }
}

/** GET /api/config until it answers, with the same capped backoff as the live link. */
async function loadConfig(banner) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      const config = await getJson("api/config");
      banner.hidden = true;
      return config;
    } catch (err) {
      const delay = Math.max(500, Math.random() * Math.min(15000, 500 * 2 ** attempt));
      banner.textContent = `Service unreachable (${err.message}): retrying in ${Math.ceil(delay / 1000)} s.`;
      banner.hidden = false;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

function wsUrl() {
  const url = new URL("ws", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

class ConsolePage {
  constructor(config, i18n) {
    this.config = config;
    this.i18n = i18n;
    this.store = new Store();
    this.alarm = new Alarm();
    this.snapshots = 0;
    this.toastTimer = null;
    this.map = new LiveMap($("map"), config, this.store, i18n);
    this.alerts = new AlertList({ list: $("alert-list"), empty: $("alert-empty"), count: $("alert-count") }, this.store, i18n, {
      onAct: (alert, verb) => this.act(alert, verb),
      onSelect: (alert) => this.map.flyTo(alert.lon, alert.lat),
    });
    this.health = new HealthPanel($("health"), $("health-flag"), this.store, i18n);
    this.link = new LiveLink(wsUrl(), {
      onFrame: (frame) => this.frame(frame),
      onBad: (why) => this.bad(why),
      onState: (state, detail) => this.linkState(state, detail),
    });
  }

  start() {
    this.header();
    bindTabs($("side"));
    bindPanelToggle($("panel-toggle"), this.i18n);
    renderLayers($("layers"), this.map, this.i18n);
    renderLegend($("legend"), this.i18n);
    this.bindOperator();
    this.bindSound();
    this.i18n.bindPicker($("language"));
    this.i18n.onChange(() => this.header());
    this.health.render();
    this.alerts.renderAll();
    this.expose();
    this.link.start();
    setInterval(() => this.alerts.prune(CLOSED_KEPT_MS), 30000);
    setInterval(() => this.banner(), 1000);
  }

  header() {
    const c = this.config;
    $("role").textContent = this.i18n.t(c.role === "centre" ? "role.centre" : "role.node", { id: c.id });
    $("exercise").hidden = c.exercise !== true;
    $("simulated").hidden = c.simulated !== true;
    this.linkState(this.link.state, {});
  }

  // ---- live frames

  frame(frame) {
    try {
      switch (frame.type) {
        case "hello":
          break;
        case "snapshot":
          this.snapshot(frame);
          break;
        case "tracks":
          if (this.store.applyTracks(frame)) this.map.redraw();
          break;
        case "units":
          if (this.store.applyUnits(frame)) this.map.redraw();
          break;
        case "alert":
          this.alert(frame);
          break;
        case "health":
          if (this.store.setHealth(frame.health)) this.health.render();
          break;
        case "result":
        case "pong":
          break;
        case "error":
          console.warn("borderwatch: the service refused a message:", frame.error);
          break;
        default:
          this.bad(`type ${String(frame.type).slice(0, 40)}`);
      }
    } catch (err) {
      console.error("borderwatch: frame not applied", err);
      this.bad(`${frame.type}: ${err && err.message}`);
    }
  }

  bad(why) {
    this.store.rejected(why);
    this.health.render();
  }

  snapshot(frame) {
    const fresh = this.store.snapshot(frame);
    this.snapshots += 1;
    this.alerts.renderAll();
    this.health.render();
    this.map.redraw();
    // alerts raised while the link was down are announced once it is back
    if (this.snapshots > 1) {
      for (const alert of fresh) {
        if (alert.status === "open") {
          this.alerts.show(alert, true);
          this.alarm.play(alert.priority, alert.id);
        }
      }
    }
  }

  alert(frame) {
    const known = this.store.alerts.has(frame.feature && (frame.feature.id ?? frame.feature.properties?.alert_id));
    const alert = this.store.putAlert(frame.feature);
    if (!alert) {
      this.health.render();
      return;
    }
    const fresh = !known && alert.status === "open";
    this.alerts.show(alert, fresh);
    this.map.redraw();
    if (fresh) this.alarm.play(alert.priority, alert.id);
    this.title();
  }

  title() {
    let open = 0;
    for (const alert of this.store.alerts.values()) if (alert.status === "open") open += 1;
    document.title = open ? `(${open}) borderwatch` : "borderwatch";
  }

  // ---- link state

  linkState(state, detail) {
    const link = $("link");
    link.dataset.state = state;
    link.textContent = this.i18n.t(`link.${state}`);
    document.body.dataset.link = state;
    this.lostDetail = state === "lost" ? detail : null;
    this.banner();
    if (this.health) this.health.setLink(state);
  }

  banner() {
    const banner = $("banner");
    const lost = this.lostDetail;
    if (!lost) {
      banner.hidden = true;
      return;
    }
    const s = Math.max(0, Math.ceil((lost.retryAt - Date.now()) / 1000));
    banner.textContent = this.i18n.t("banner.lost", { s, n: lost.attempt });
    banner.hidden = false;
  }

  // ---- operator actions

  bindOperator() {
    const input = $("operator");
    input.value = remembered(OPERATOR_KEY, this.config.operator || "");
    input.addEventListener("input", () => remember(OPERATOR_KEY, input.value.trim()));
  }

  async act(alert, verb) {
    const input = $("operator");
    const operator = input.value.trim();
    if (!operator) {
      this.toast(this.i18n.t("operator.needed"));
      input.focus();
      return;
    }
    const body = { operator };
    if (verb === "assign") {
      const answer = await this.askAssignee();
      if (!answer) return;
      body.assignee = answer.assignee;
      if (answer.note) body.note = answer.note;
    }
    this.alerts.setBusy(alert.id, true);
    try {
      const props = await act(alert.id, verb, body);
      if (props && typeof props === "object") {
        const updated = this.store.putAlert({ type: "Feature", id: alert.id, geometry: null, properties: props });
        if (updated) this.alerts.show(updated, false);
      }
      this.toast(this.i18n.t("action.done", { verb: this.i18n.t(`action.${verb}`), id: alert.id }));
    } catch (err) {
      this.toast(this.i18n.t("action.failed", { verb: this.i18n.t(`action.${verb}`), error: err.message }));
    } finally {
      this.alerts.setBusy(alert.id, false);
      this.map.redraw();
      this.title();
    }
  }

  askAssignee() {
    const dialog = $("assign-dialog");
    const assignee = $("assignee");
    const note = $("assign-note");
    assignee.value = "";
    note.value = "";
    return new Promise((resolve) => {
      dialog.addEventListener(
        "close",
        () => {
          const name = assignee.value.trim();
          resolve(dialog.returnValue === "ok" && name ? { assignee: name, note: note.value.trim() } : null);
        },
        { once: true },
      );
      dialog.returnValue = "";
      dialog.showModal();
      assignee.focus();
    });
  }

  toast(text) {
    const toast = $("toast");
    toast.textContent = text;
    toast.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => {
      toast.hidden = true;
    }, 4000);
  }

  // ---- sound

  bindSound() {
    const button = $("sound");
    const show = (state) => {
      button.dataset.state = state;
      button.textContent = this.i18n.t(`sound.${state}`);
    };
    // true during the gesture that first allowed audio: that tap on the button does not mute
    let firstGesture = false;
    const unlock = () => {
      firstGesture = !this.alarm.context;
      this.alarm.unlock();
    };
    // the first tap or key anywhere allows audio
    window.addEventListener("pointerdown", unlock, { capture: true });
    window.addEventListener("keydown", unlock, { capture: true });
    button.addEventListener("click", () => {
      if (firstGesture || this.alarm.state === "locked") this.alarm.unlock();
      else this.alarm.toggleMute();
      firstGesture = false;
    });
    this.alarm.onChange(show);
    this.i18n.onChange(() => show(this.alarm.state));
    show(this.alarm.state);
  }

  // ---- for tests and the bench

  expose() {
    const page = this;
    const store = this.store;
    window.borderwatch = {
      tracks: store.tracks,
      alerts: store.alerts,
      units: store.units,
      trackFrames: store.trackFrames,
      config: this.config,
      map: this.map.map,
      sound: this.alarm,
      get connected() {
        return page.link.state === "open";
      },
      get lastFrameAt() {
        return store.lastFrameAt;
      },
      get bad() {
        return store.bad;
      },
      get badReasons() {
        return { ...store.badReasons };
      },
      get health() {
        return store.health;
      },
      get draws() {
        return page.map.tracks.drawCount;
      },
      get applyMs() {
        return store.applyMs.slice();
      },
      get lastParse() {
        return { ms: page.link.parseMs, chars: page.link.frameBytes };
      },
      get drawMs() {
        return page.map.tracks.drawMs.slice();
      },
      get visible() {
        return page.map.tracks.visibleCount;
      },
      get language() {
        return page.i18n.lang;
      },
    };
    document.body.dataset.ready = "1";
  }
}

async function main() {
  const config = await loadConfig($("banner"));
  const i18n = new I18n();
  await i18n.init(config.language, Array.isArray(config.languages) ? config.languages : ["en"]);
  new ConsolePage(config, i18n).start();
}

main().catch((err) => {
  console.error("borderwatch: console failed to start", err);
  const banner = $("banner");
  banner.textContent = `The console failed to start: ${err && err.message}`;
  banner.hidden = false;
});
