// Job store: the newest known state per job, by the protocol's seq rule (protocol.js).

import { isFinal, isNewer, isReplacement, RETRYABLE_STATES } from "./protocol.js";

export { RETRYABLE_STATES };

// A part of a group job is run by its group, never on its own.
export function canRetry(job) {
  return Boolean(job) && RETRYABLE_STATES.includes(job.state) && !job.parent;
}

// Unparseable dates sort last rather than breaking the order of the others.
function createdAt(job) {
  const time = Date.parse(job.created);
  return Number.isNaN(time) ? -Infinity : time;
}

// What a page shows of `offered`, a state of a new numbering (another epoch) replacing
// `held`: while both are running with the same total, the bar keeps the higher figures it
// showed, since the new numbering may start from the job's row, which follows at a low rate;
// its next states, or its final one, say the truth.
export function steady(held, offered) {
  if (!isReplacement(held, offered) || isFinal(offered.state) || isFinal(held.state)) return offered;
  if (offered.total !== held.total || !(offered.current < held.current)) return offered;
  return { ...offered, current: held.current, percent: held.percent };
}

export class JobStore {
  #jobs = new Map();

  // Whether `job` was news: only a newer state replaces the one held (isNewer). What get()
  // then gives may keep a running bar's figures (steady()).
  apply(job) {
    if (!job || typeof job.id !== "string" || job.id === "") return false;
    const held = this.#jobs.get(job.id);
    if (!isNewer(held, job)) return false;
    this.#jobs.set(job.id, steady(held, job));
    return true;
  }

  applySnapshot(jobs) {
    return Array.isArray(jobs) ? jobs.filter((job) => this.apply(job)) : [];
  }

  get(id) {
    return this.#jobs.get(id);
  }

  all() {
    return [...this.#jobs.values()].sort((a, b) => createdAt(b) - createdAt(a));
  }

  get size() {
    return this.#jobs.size;
  }
}
