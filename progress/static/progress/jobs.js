// Job store: the newest known state per job, enforcing the per-job `seq` ordering rule.

export const STATES = Object.freeze(["PENDING", "STARTED", "PROGRESS", "RETRY", "SUCCESS", "FAILURE", "REVOKED"]);
export const FINAL_STATES = Object.freeze(["SUCCESS", "FAILURE", "REVOKED"]);

export function isFinal(state) {
  return FINAL_STATES.includes(state);
}

export const RETRYABLE_STATES = Object.freeze(["FAILURE", "REVOKED"]);

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

  // Messages can arrive out of order (snapshot racing live frames, reconnects),
  // so only a strictly higher seq may replace what we already show.
  apply(job) {
    if (!job || typeof job.id !== "string" || job.id === "") return false;
    const known = this.#jobs.get(job.id);
    if (known && !(job.seq > known.seq)) return false;
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
