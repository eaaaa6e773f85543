// Job page entry: one job's live row, rendered first from the server-embedded state.

import { JobStore } from "./jobs.js";
import { renderJob } from "./bars.js";
import { LogStore, renderLog } from "./logs.js";
import { ProgressSocket, socketUrl } from "./socket.js";
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
    if (job.id !== jobId) return;
    renderJob(list, job, { titles, jobUrl, heading: "h2" });
    announcer.job(job);
  };

  if (initial?.id === jobId && store.apply(initial)) {
    announcer.seed([initial]);
    show(initial);
  }

  const socket = new ProgressSocket(socketUrl(wsUrl, window.location), {
    store,
    onStatus: (status) => showStatus(connection, status),
    onSnapshot: (jobs) => jobs.forEach(show),
    onJob: show,
    onLog: (frame) => {
      if (frame.job !== jobId || !logList) return;
      renderLog(logList, logs, logs.apply(frame.lines));
      if (logEmpty) logEmpty.hidden = logs.size > 0;
    },
    onError: (frame) => {
      if (frame.error === "not_found") showStatus(connection, "unavailable");
      else console.warn("progress socket:", frame.error, frame.detail ?? "");
    },
  });
  socket.subscribe(jobId);
  wireCancel(list, cancelUrl);
  socket.connect();
}

const root = document.querySelector("[data-progress-job]");
if (root) start(root);
