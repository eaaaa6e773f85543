// Reconnect delays: exponential backoff with full jitter.

export const BACKOFF = Object.freeze({ base: 500, factor: 2, cap: 15000 });

// Full jitter spreads reconnects of many tabs after a server restart
// instead of having them all retry in lockstep.
export function backoffDelay(attempt, { base = BACKOFF.base, factor = BACKOFF.factor, cap = BACKOFF.cap, random = Math.random } = {}) {
  const ceiling = Math.min(cap, base * factor ** Math.max(0, attempt));
  return Math.floor(random() * ceiling);
}
