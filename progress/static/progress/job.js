// Job page entry: one job's live row and log, rendered first from the server-embedded state.

import { JobStore } from "./jobs.js";
import { renderJob } from "./bars.js";
import { LogStore, renderLog } from "./logs.js";
import { watch } from "./client.js";
import { createAnnouncer, readJSON, showStatus, wireCancel } from "./page.js";

function start(root) {
  const { jobId, wsUrl, cancelUrl, jobUrl, title } = root.dataset;
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
    renderJob(list, job, { titles, jobUrl, heading: "h2" });
    announcer.job(job);
  };

  if (initial?.id === jobId) {
    announcer.seed([initial]);
    show(initial);
  }

  // The page's one socket, shared with the tray and any widget (client.js).
  watch(
    jobId,
    {
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
    },
    { url: wsUrl },
  );
  wireCancel(list, cancelUrl);
}

const root = document.querySelector("[data-progress-job]");
if (root) start(root);
