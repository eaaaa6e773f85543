// Dashboard page entry: live list of the user's jobs, launch forms and cancel buttons.

import { isFinal, JobStore } from "./jobs.js";
import { renderJob } from "./bars.js";
import { ProgressSocket, socketUrl } from "./socket.js";
import { wireLaunchForm } from "./launch.js";
import { taskTitle } from "./format.js";
import { createAnnouncer, readJSON, showStatus, wireCancel } from "./page.js";

function start(root) {
  const { wsUrl, jobsUrl, jobUrl, cancelUrl } = root.dataset;
  const titles = readJSON("progress-task-titles") ?? {};
  const list = root.querySelector("[data-job-list]");
  const empty = root.querySelector("[data-empty]");
  const connection = root.querySelector("[data-connection]");
  const announcer = createAnnouncer(document.querySelector("[data-announce]"), titles);
  const store = new JobStore();
  let seeded = false;

  const show = (job) => {
    renderJob(list, job, { titles, jobUrl });
    if (empty) empty.hidden = true;
    announcer.job(job);
    if (isFinal(job.state)) socket.unsubscribe(job.id);
  };

  const socket = new ProgressSocket(socketUrl(wsUrl, window.location), {
    store,
    onStatus: (status) => showStatus(connection, status),
    onSnapshot: (jobs) => {
      // Jobs already finished when the page opened are history, not news.
      if (!seeded) announcer.seed(jobs);
      seeded = true;
      jobs.forEach(show);
      if (empty) empty.hidden = store.size > 0;
    },
    onJob: show,
    onError: (frame) => console.warn("progress socket:", frame.error, frame.detail ?? ""),
  });

  for (const form of root.querySelectorAll("form[data-launch]")) {
    wireLaunchForm(form, {
      jobsUrl,
      onLaunched: (job) => {
        announcer.say(`${taskTitle(titles, job.task)} launched`);
        if (store.apply(job)) show(job);
        // Covers a server that only streams subscribed jobs; dropped again once final.
        if (!isFinal(store.get(job.id)?.state)) socket.subscribe(job.id);
      },
    });
  }
  wireCancel(list, cancelUrl);
  socket.connect();
}

const root = document.querySelector("[data-progress-dashboard]");
if (root) start(root);
