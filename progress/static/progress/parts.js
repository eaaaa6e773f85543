// A group job's parts on its page: a bar per part, live, beside the bar of the whole.

import { JobStore } from "./jobs.js";
import { renderJob } from "./bars.js";
import { watch, watchUser } from "./client.js";

// Shows the parts embedded in the page and any that start later (a group's task records
// its parts once a worker runs it), each followed on the page's one socket.
export function startParts(section, embedded, { groupId, titles = {}, jobUrl = "" } = {}) {
  const container = section.querySelector("[data-job-parts]");
  const count = section.querySelector("[data-parts-count]");
  const store = new JobStore();
  const watched = new Set();
  const show = (job) => {
    if (job.parent !== groupId || !store.apply(job)) return;
    job = store.get(job.id);
    const row = renderJob(container, job, { titles, jobUrl, heading: "h3" });
    // Parts keep their group's order (in the DOM too, for screen readers), not the newest-first
    // order of job lists: they are all created at once.
    const place = Number(job.part ?? 0);
    row.setAttribute("data-part", String(place));
    const next = [...container.children].find((other) => Number(other.getAttribute("data-part")) > place);
    if (next !== row.nextElementSibling && next !== row) container.insertBefore(row, next ?? null);
    section.hidden = false;
    if (count) count.textContent = `(${store.size})`;
    if (!watched.has(job.id)) {
      // Subscribed one by one: staff may watch a group that is not their own.
      watched.add(job.id);
      watch(job.id, { onUpdate: show });
    }
  };
  embedded.forEach(show);
  watchUser({ onSnapshot: (jobs) => jobs.forEach(show), onJob: show });
  return store;
}
