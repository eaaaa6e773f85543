// Reconnect delays: exponential backoff with full jitter.

export const BACKOFF = Object.freeze({ base: 500, factor: 2, cap: 15000 });

// Full jitter spreads reconnects of many tabs after a server restart
// instead of having them all retry in lockstep.
export function backoffDelay(attempt, { base = BACKOFF.base, factor = BACKOFF.factor, cap = BACKOFF.cap, random = Math.random } = {}) {
  const ceiling = Math.min(cap, base * factor ** Math.max(0, attempt));
  return Math.floor(random() * ceiling);
}

// One pending reconnect at a time, each waiting longer than the last until reset(): what
// the WebSocket and its SSE fallback share.
export class Retrier {
  #schedule;
  #unschedule;
  #options;
  #attempt = 0;
  #timer = null;

  constructor(options = {}) {
    this.#schedule = options.schedule ?? ((fn, ms) => setTimeout(fn, ms));
    this.#unschedule = options.unschedule ?? ((handle) => clearTimeout(handle));
    this.#options = {
      base: options.base ?? BACKOFF.base,
      cap: options.cap ?? BACKOFF.cap,
      factor: BACKOFF.factor,
      random: options.random ?? Math.random,
    };
  }

  get pending() {
    return this.#timer !== null;
  }

  // `longest`: the server said the user holds too many sockets; retrying soon cannot help.
  later(fn, { longest = false } = {}) {
    const delay = longest ? this.#options.cap : backoffDelay(this.#attempt, this.#options);
    this.#attempt += 1;
    this.#timer = this.#schedule(() => {
      this.#timer = null;
      fn();
    }, delay);
  }

  cancel() {
    if (this.#timer !== null) this.#unschedule(this.#timer);
    this.#timer = null;
  }

  // A connection that delivered data is healthy: the next failure starts from the base delay.
  reset() {
    this.#attempt = 0;
  }
}
