// Dashboard page entry: live list of the user's jobs, launch forms and cancel buttons.

import { JobStore } from "./jobs.js";
import { renderJob, wireRetry } from "./bars.js";
import { watchUser } from "./client.js";
import { wireLaunchForm } from "./launch.js";
import { taskTitle } from "./format.js";
import { createAnnouncer, readJSON, showStatus, wireCancel } from "./page.js";

function start(root) {
  const { jobsUrl, jobUrl, cancelUrl, retryUrl } = root.dataset;
  const titles = readJSON("progress-task-titles") ?? {};
  const list = root.querySelector("[data-job-list]");
  const empty = root.querySelector("[data-empty]");
  const connection = root.querySelector("[data-connection]");
  const announcer = createAnnouncer(document.querySelector("[data-announce]"), titles);
  const store = new JobStore();
  let seeded = false;

  const show = (job) => {
    // The launch answer and the socket may bring the same state; only a newer one draws.
    // A group's parts have bars on its page; the list shows the group once.
    if (job.parent || !store.apply(job)) return;
    job = store.get(job.id);
    // The titles are of the tasks users may launch: another app's job is its app's to rerun.
    const retry = Boolean(retryUrl) && Object.hasOwn(titles, job.task);
    renderJob(list, job, { titles, jobUrl, retry, retryOf: true });
    if (empty) empty.hidden = true;
    announcer.job(job);
  };

  // The page's one socket, shared with the tray (client.js, at the page's data-progress-*-url):
  // every state of the user's jobs.
  watchUser({
    onStatus: (status) => showStatus(connection, status),
    onSnapshot: (jobs) => {
      // Jobs already finished when the page opened are history, not news.
      if (!seeded) announcer.seed(jobs);
      seeded = true;
      jobs.forEach(show);
      if (empty) empty.hidden = store.size > 0;
    },
    onJob: show,
  });

  for (const form of root.querySelectorAll("form[data-launch]")) {
    wireLaunchForm(form, {
      jobsUrl,
      onLaunched: (job) => {
        announcer.say(`${taskTitle(titles, job.task)} launched`);
        show(job);
      },
    });
  }
  wireCancel(list, cancelUrl);
  // The new job is drawn at once, at the top; the socket brings its states after.
  wireRetry(list, retryUrl, (job) => {
    announcer.say(`${taskTitle(titles, job.task)} launched again`);
    show(job);
  });
}

const root = document.querySelector("[data-progress-dashboard]");
if (root) start(root);
