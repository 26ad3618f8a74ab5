// The WebSocket /ws, reconnected with capped, fully jittered exponential backoff. The server
// sends hello and a snapshot after every connection, so reconnecting is also the resync.

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;
const PING_EVERY_MS = 10000;
/** A link that has said nothing for this long is dead even if the socket says open. */
const SILENCE_MS = 25000;

export class LiveLink {
  /**
   * @param {string} url ws:// or wss:// URL
   * @param {{onFrame: (frame: object) => void, onBad: (why: string) => void,
   *          onState: (state: string, detail: object) => void}} handlers
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.state = "connecting";
    this.attempt = 0;
    this.socket = null;
    this.lastHeardAt = 0;
    this.retryTimer = null;
    this.watchdog = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.connect();
    this.watchdog = setInterval(() => this.check(), PING_EVERY_MS / 2);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.watchdog);
    clearTimeout(this.retryTimer);
    if (this.socket) this.socket.close();
  }

  send(frame) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  connect() {
    clearTimeout(this.retryTimer);
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (err) {
      this.lost(String(err));
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.lastHeardAt = Date.now();
      this.lastPingAt = Date.now();
      this.setState("open", {});
    };
    socket.onmessage = (event) => {
      this.lastHeardAt = Date.now();
      let frame;
      try {
        const began = performance.now();
        frame = JSON.parse(event.data);
        this.parseMs = performance.now() - began;
        this.frameBytes = event.data.length;
      } catch {
        this.handlers.onBad("not JSON");
        return;
      }
      if (!frame || typeof frame !== "object" || typeof frame.type !== "string") {
        this.handlers.onBad("no type");
        return;
      }
      this.handlers.onFrame(frame);
    };
    socket.onclose = () => {
      if (this.socket === socket) this.lost("closed");
    };
    socket.onerror = () => {
      // onclose follows and reconnects
    };
  }

  lost(why) {
    this.socket = null;
    if (this.stopped) return;
    const cap = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** this.attempt);
    const delay = Math.max(250, Math.random() * cap);
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.setState("lost", { why, delayMs: delay, attempt: this.attempt, retryAt: this.retryAt });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  check() {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    const now = Date.now();
    if (now - this.lastHeardAt > SILENCE_MS) {
      this.socket = null;
      socket.close();
      this.lost("silent");
      return;
    }
    if (now - this.lastPingAt >= PING_EVERY_MS) {
      this.lastPingAt = now;
      this.send({ type: "ping" });
    }
  }

  setState(state, detail) {
    this.state = state;
    this.handlers.onState(state, detail);
  }
}
