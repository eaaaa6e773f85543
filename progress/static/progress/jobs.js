// Job store: the newest known state per job, by the protocol's seq rule (protocol.js).

import { isNewer, RETRYABLE_STATES } from "./protocol.js";

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

export class JobStore {
  #jobs = new Map();

  // Whether `job` was news: only a newer state replaces the one held (isNewer).
  apply(job) {
    if (!job || typeof job.id !== "string" || job.id === "") return false;
    if (!isNewer(this.#jobs.get(job.id), job)) return false;
    this.#jobs.set(job.id, job);
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
