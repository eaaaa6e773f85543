// Finished-job notices: which final states are news, how often to speak, and where.

import { isFinal } from "./protocol.js";

// Decides which final states are news: not the ones already final when the
// page opened, but every one reached while it was open, a reconnect included.
export class FinishWatch {
  #states = new Map();
  #told = new Set();

  // Runs on the first snapshot: what is already over is history.
  seed(jobs) {
    for (const job of jobs) {
      this.#states.set(job.id, job.state);
      if (isFinal(job.state)) this.#told.add(job.id);
    }
  }

  // True once per job, for the state that ends it.
  isNews(job) {
    this.#states.set(job.id, job.state);
    if (!isFinal(job.state) || this.#told.has(job.id)) return false;
    this.#told.add(job.id);
    return true;
  }
}

// Speaks at most once per `gap` ms: what comes sooner waits and goes out as one
// line ("3 jobs finished"), so a screen reader is not flooded by a batch of jobs.
export function createThrottle(say, { gap = 3000, now = () => Date.now(), schedule = setTimeout } = {}) {
  let last = -Infinity;
  let waiting = [];
  let timer = null;
  const flush = () => {
    timer = null;
    if (!waiting.length) return;
    const text = waiting.length === 1 ? waiting[0] : `${waiting.length} jobs finished`;
    waiting = [];
    last = now();
    say(text);
  };
  return (text) => {
    waiting.push(text);
    if (timer !== null) return;
    const wait = last + gap - now();
    if (wait <= 0) flush();
    else timer = schedule(flush, wait);
  };
}

// A system notification only where it helps: the tab is hidden and the user allowed it.
export function channelFor({ hidden, supported, permission }) {
  return hidden && supported && permission === "granted" ? "notification" : "toast";
}
