// What the pages' aria-live region reads out: which job updates are news, and how often to speak.

import { taskTitle } from "./format.js";
import { isFinal, isNewer, State } from "./protocol.js";

// Quarter steps are enough to follow a long job by ear; finer ones would be noise.
const MILESTONES = Object.freeze([25, 50, 75]);

// Past this many jobs a joined sentence takes longer to hear than the gap it waits for.
const MOST_SPOKEN = 3;

const STATE_TEXT = Object.freeze({
  [State.STARTED]: (title) => `${title} started`,
  [State.RETRY]: (title) => `${title} retrying`,
});

function milestoneOf(percent) {
  if (typeof percent !== "number" || !Number.isFinite(percent)) return 0;
  return MILESTONES.reduce((best, step) => (percent >= step ? step : best), 0);
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

// Too many jobs at once: one item in full (a final first, as it matters most)
// and a count of the rest that still says how many of them ended.
function fold(items) {
  const lead = items.find((item) => item.final) ?? items[0];
  const rest = items.filter((item) => item !== lead);
  const finals = rest.filter((item) => item.final).length;
  let tail;
  if (finals === rest.length) tail = `${plural(rest.length, "more job")} finished`;
  else if (finals === 0) tail = `${plural(rest.length, "more job")} changed`;
  else tail = `${plural(rest.length, "more job")} changed, ${finals} of them finished`;
  return `${lead.text}. ${tail}`;
}

export function createAnnouncements({ say, titles = {}, gap = 4000, now = () => Date.now(), schedule = setTimeout }) {
  // Per job: the state and milestone last heard, so only a change is news.
  const known = new Map();
  // Per job: the one item still to say; Map order is the order of arrival.
  const pending = new Map();
  let last = -Infinity;
  let timer = null;

  const speak = () => {
    if (!pending.size) return;
    const items = [...pending.values()];
    pending.clear();
    last = now();
    say(items.length > MOST_SPOKEN ? fold(items) : items.map((item) => item.text).join(". "));
  };

  // Re-checks the time when it fires: a flush() in between may have spoken
  // since it was set, and the gap then counts from that.
  const drain = () => {
    timer = null;
    const wait = last + gap - now();
    if (wait > 0 && pending.size) timer = schedule(drain, wait);
    else speak();
  };

  const queue = (id, item) => {
    const waiting = pending.get(id);
    // A final is never dropped; anything after it for the same job is stale.
    if (waiting?.final && !item.final) return;
    pending.delete(id);
    pending.set(id, item);
    if (timer !== null) return;
    const wait = last + gap - now();
    if (wait <= 0) speak();
    else timer = schedule(drain, wait);
  };

  const remember = (job) => {
    known.set(job.id, { job, milestone: milestoneOf(job.percent) });
  };

  const newsOf = (job, before) => {
    const title = taskTitle(titles, job.task);
    if (job.state !== before?.job.state) {
      if (isFinal(job.state)) return { text: `${title} finished: ${job.state}`, final: true };
      if (STATE_TEXT[job.state]) return { text: STATE_TEXT[job.state](title), final: false };
    }
    const milestone = milestoneOf(job.percent);
    if (job.state === State.PROGRESS && milestone > (before?.milestone ?? 0)) {
      return { text: `${title} ${milestone}%`, final: false };
    }
    return null;
  };

  return {
    seed(jobs) {
      for (const job of jobs ?? []) if (job && job.id != null) remember(job);
    },
    job(job) {
      if (!job || job.id == null) return;
      const before = known.get(job.id);
      // Callers filter by seq already; this keeps a replayed frame from re-raising news.
      if (!isNewer(before?.job, job)) return;
      const news = newsOf(job, before);
      // Remembered even when silent, so a retry that restarts at 0 % is heard again at 25 %.
      remember(job);
      if (news) queue(job.id, news);
    },
    flush: speak,
  };
}
