// Client-side ETA smoothing per job, so the "time left" text counts down instead of jumping.

function clockSeconds() {
  return typeof performance !== "undefined" && typeof performance.now === "function"
    ? performance.now() / 1000
    : Date.now() / 1000;
}

function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

export class EtaSmoother {
  #jobs = new Map();
  #now;
  #alpha;
  #resetRatio;

  constructor({ now = clockSeconds, alpha = 0.3, resetRatio = 2 } = {}) {
    this.#now = now;
    this.#alpha = alpha;
    this.#resetRatio = resetRatio;
  }

  // What was shown last, aged by the time since: time passes even when no frame comes.
  #countedDown(entry, at) {
    return Math.max(0, entry.shown - Math.max(0, at - entry.at));
  }

  update(jobId, eta) {
    if (!isNumber(eta)) {
      this.forget(jobId);
      return null;
    }
    const target = Math.max(0, eta);
    const at = this.#now();
    const entry = this.#jobs.get(jobId);
    let shown = target;
    if (entry) {
      const counted = this.#countedDown(entry, at);
      const low = Math.min(counted, target);
      const high = Math.max(counted, target);
      // A gap this wide is a real change of pace (or a finish), not jitter: follow it at once.
      const reset = low === 0 ? high > 0 : high / low > this.#resetRatio;
      if (!reset) shown = counted + this.#alpha * (target - counted);
    }
    this.#jobs.set(jobId, { shown, at });
    return shown;
  }

  // For a display that ticks between frames; null for a job with no estimate.
  current(jobId) {
    const entry = this.#jobs.get(jobId);
    return entry ? this.#countedDown(entry, this.#now()) : null;
  }

  forget(jobId) {
    this.#jobs.delete(jobId);
  }
}
