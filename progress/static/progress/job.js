// Job page entry: one job's live row and log, rendered first from the server-embedded state.

import { JobStore } from "./jobs.js";
import { renderJob, wireRetry } from "./bars.js";
import { LogStore, renderLog } from "./logs.js";
import { watch } from "./client.js";
import { createAnnouncer, readJSON, showStatus, wireCancel } from "./page.js";
import { fillUrl } from "./format.js";
import { startParts } from "./parts.js";

function start(root) {
  const { jobId, cancelUrl, retryUrl, jobUrl, title } = root.dataset;
  const list = root.querySelector("[data-job-list]");
  const connection = root.querySelector("[data-connection]");
  const store = new JobStore();
  const initial = readJSON("progress-job-initial");
  const titles = initial && title ? { [initial.task]: title } : {};
  const announcer = createAnnouncer(document.querySelector("[data-announce]"), titles);
  const logList = root.querySelector("[data-job-log]");
  const logEmpty = root.querySelector("[data-log-empty]");
  const logs = new LogStore();

  const show = (job) => {
    // The embedded state and the socket's answer are often the same seq.
    if (job.id !== jobId || !store.apply(job)) return;
    job = store.get(job.id);
    renderJob(list, job, { titles, jobUrl, heading: "h2", retry: Boolean(retryUrl) });
    announcer.job(job);
  };

  if (initial?.id === jobId) {
    announcer.seed([initial]);
    show(initial);
  }

  // The page's one socket, shared with the tray and any widget (client.js, at the page's
  // data-progress-*-url).
  watch(jobId, {
    // Stays subscribed after the end: the last log lines may follow the final state.
    keepAfterFinish: true,
    onStatus: (status) => showStatus(connection, status),
    onUpdate: show,
    onLog: (frame) => {
      if (!logList) return;
      renderLog(logList, logs, logs.apply(frame.lines));
      if (logEmpty) logEmpty.hidden = logs.size > 0;
    },
    onError: () => showStatus(connection, "unavailable"),
  });
  const parts = root.querySelector("[data-parts]");
  if (parts) {
    // Parts run other tasks than the group's; the tray knows every title.
    const partTitles = { ...(readJSON("progress-tray-titles") ?? {}), ...titles };
    startParts(parts, readJSON("progress-job-parts") ?? [], { groupId: jobId, titles: partTitles, jobUrl });
  }
  wireCancel(list, cancelUrl);
  // The new job has a page of its own, which follows it live.
  wireRetry(list, retryUrl, (job) => location.assign(fillUrl(jobUrl, job.id)));
}

const root = document.querySelector("[data-progress-job]");
if (root) start(root);
