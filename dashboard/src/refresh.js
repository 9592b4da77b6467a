// Auto-refresh without hammering the API: the next refresh is scheduled only after
// the previous one has finished (so a slow API never sees refreshes pile up), one
// refresh is one request per panel, and nothing runs while the tab is hidden (Page
// Visibility API). Coming back after the interval has passed refreshes at once.

/**
 * @typedef {object} Clock
 * @property {() => number} now
 * @property {(fn: () => void, ms: number) => unknown} setTimeout
 * @property {(id: unknown) => void} clearTimeout
 */

/** @type {Clock} */
const realClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(/** @type {ReturnType<typeof setTimeout>} */ (id)),
};

export class Refresher {
  /**
   * @param {(signal: AbortSignal) => Promise<void>} refresh  one round of requests
   * @param {{visibilityState: string, addEventListener: (t: string, f: () => void) => void}} doc
   * @param {Clock} [clock]
   */
  constructor(refresh, doc, clock = realClock) {
    this.refresh = refresh;
    this.doc = doc;
    this.clock = clock;
    /** 0: off. */
    this.intervalMs = 0;
    /** When the last refresh finished (ms), or -Infinity. */
    this.lastDone = -Infinity;
    /** @type {AbortController | null} */
    this.inFlight = null;
    /** @type {unknown} */
    this.timer = null;
    /** @type {(state: string) => void} */
    this.onState = () => {};
    doc.addEventListener('visibilitychange', () => this.visibilityChanged());
  }

  get hidden() {
    return this.doc.visibilityState === 'hidden';
  }

  /** @param {number} ms 0 turns auto-refresh off */
  setInterval(ms) {
    this.intervalMs = ms;
    this.schedule();
  }

  /**
   * Refreshes now (the selection changed): an older refresh still in flight is
   * aborted, so its answers can never overwrite the new selection's.
   */
  now() {
    this.cancelTimer();
    if (this.inFlight) this.inFlight.abort();
    const ctl = new AbortController();
    this.inFlight = ctl;
    this.onState('loading');
    return this.refresh(ctl.signal)
      .catch(() => {})
      .finally(() => {
        if (this.inFlight !== ctl) return; // superseded
        this.inFlight = null;
        this.lastDone = this.clock.now();
        this.schedule();
      });
  }

  /** Arms the timer for the next refresh, if auto-refresh is on and the tab visible. */
  schedule() {
    this.cancelTimer();
    if (this.inFlight) return; // scheduled when it finishes
    if (this.intervalMs <= 0) {
      this.onState('off');
      return;
    }
    if (this.hidden) {
      this.onState('paused');
      return;
    }
    const wait = Math.max(0, this.lastDone + this.intervalMs - this.clock.now());
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      this.now();
    }, wait);
    this.onState('waiting');
  }

  visibilityChanged() {
    // Hidden: the timer is dropped. Visible: a refresh that fell due meanwhile runs at once.
    this.schedule();
  }

  cancelTimer() {
    if (this.timer !== null) {
      this.clock.clearTimeout(this.timer);
      this.timer = null;
    }
  }
}
