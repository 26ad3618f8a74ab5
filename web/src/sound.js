// Alert tones from a WebAudio oscillator (no audio file). Browsers start audio only after a user
// gesture, so the page unlocks it on the first tap or key press and shows a button until then.

const MUTE_KEY = "borderwatch.muted";
const MIN_GAP_MS = 1500;
const PATTERNS = {
  rescue: [[1320, 0.12], [0, 0.06], [1320, 0.12], [0, 0.06], [1320, 0.12]],
  high: [[988, 0.16], [0, 0.05], [740, 0.22]],
  normal: [[740, 0.18]],
};

export class Alarm {
  constructor() {
    this.context = null;
    this.lastAt = 0;
    this.played = 0;
    this.heard = [];
    this.listeners = [];
    try {
      this.muted = localStorage.getItem(MUTE_KEY) === "1";
    } catch {
      this.muted = false;
    }
  }

  /** Creates or resumes the audio context; call from a user gesture. */
  unlock() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    if (!this.context) {
      try {
        this.context = new Context();
        this.context.onstatechange = () => this.changed();
      } catch {
        return;
      }
    }
    if (this.context.state === "suspended") this.context.resume().then(() => this.changed(), () => {});
    this.changed();
  }

  get state() {
    if (this.muted) return "muted";
    return this.context && this.context.state === "running" ? "on" : "locked";
  }

  toggleMute() {
    this.muted = !this.muted;
    try {
      localStorage.setItem(MUTE_KEY, this.muted ? "1" : "0");
    } catch {
      // not remembered
    }
    this.changed();
  }

  onChange(listener) {
    this.listeners.push(listener);
  }

  changed() {
    for (const listener of this.listeners) listener(this.state);
  }

  /**
   * Plays the tone for an alert priority; false when muted, locked, or too soon after the last
   * tone (a rescue always sounds).
   */
  play(priority, alertId) {
    if (this.state !== "on") return false;
    const now = Date.now();
    if (now - this.lastAt < MIN_GAP_MS && priority !== "rescue") return false;
    this.lastAt = now;
    this.heard.push(alertId);
    if (this.heard.length > 100) this.heard.shift();
    const ctx = this.context;
    let t = ctx.currentTime + 0.02;
    for (const [freq, length] of PATTERNS[priority] || PATTERNS.normal) {
      if (freq > 0) {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.type = "square";
        osc.frequency.value = freq;
        gain.gain.setValueAtTime(0.0001, t);
        gain.gain.exponentialRampToValueAtTime(0.25, t + 0.01);
        gain.gain.exponentialRampToValueAtTime(0.0001, t + length);
        osc.connect(gain).connect(ctx.destination);
        osc.start(t);
        osc.stop(t + length + 0.02);
      }
      t += length;
    }
    this.played += 1;
    return true;
  }
}
