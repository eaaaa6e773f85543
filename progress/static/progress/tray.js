// The per-user tray of every page: running and recent jobs, live across tabs, and notices
// when a job ends (a system notification in a hidden tab the user allowed, a toast otherwise).

import { JobStore } from "./jobs.js";
import { isFinal } from "./protocol.js";
import { watchUser } from "./client.js";
import { fillUrl, formatPercent, taskTitle } from "./format.js";
import { FinishWatch, channelFor, createThrottle } from "./notices.js";
import { readJSON } from "./page.js";

const SHOWN = 8;
const TOAST_MS = 8000;

function item(doc, job, titles, jobUrl) {
  const li = doc.createElement("li");
  li.setAttribute("data-job-id", job.id);
  li.setAttribute("data-state", String(job.state));
  const link = doc.createElement("a");
  link.setAttribute("href", fillUrl(jobUrl, job.id));
  link.textContent = taskTitle(titles, job.task);
  const state = doc.createElement("span");
  state.className = "tray-state";
  const percent = isFinal(job.state) ? "" : formatPercent(job.percent);
  state.textContent = percent ? `${job.state} ${percent}` : String(job.state);
  li.append(link, " ", state);
  return li;
}

function start(tray) {
  const doc = tray.ownerDocument;
  const { jobUrl } = tray.dataset;
  const titles = readJSON(tray.dataset.titles) ?? {};
  const toggle = tray.querySelector("[data-tray-toggle]");
  const panel = tray.querySelector("[data-tray-panel]");
  const list = tray.querySelector("[data-tray-list]");
  const count = tray.querySelector("[data-tray-count]");
  const allow = tray.querySelector("[data-tray-allow]");
  const toasts = tray.querySelector("[data-toasts]");
  // Pages with an announcer of their own already read job ends aloud.
  if (doc.querySelector("[data-announce]")) toasts.setAttribute("aria-live", "off");
  const store = new JobStore();
  const finishes = new FinishWatch();
  let seeded = false;

  const render = () => {
    const jobs = store.all();
    const running = jobs.filter((job) => !isFinal(job.state));
    const shown = [...running, ...jobs.filter((job) => isFinal(job.state))].slice(0, SHOWN);
    list.replaceChildren(...shown.map((job) => item(doc, job, titles, jobUrl)));
    count.textContent = String(running.length);
    count.hidden = running.length === 0;
    toggle.setAttribute("aria-label", `Jobs: ${running.length} running`);
    tray.setAttribute("data-running", String(running.length));
  };

  const toast = (text) => {
    const node = doc.createElement("div");
    node.className = "toast";
    node.setAttribute("data-toast", "");
    node.textContent = text;
    toasts.append(node);
    setTimeout(() => node.remove(), TOAST_MS);
  };
  const sayInPage = createThrottle(toast);

  const tell = (job) => {
    const text = `${taskTitle(titles, job.task)} finished: ${job.state}`;
    const Notice = globalThis.Notification;
    const channel = channelFor({
      hidden: doc.hidden,
      supported: typeof Notice === "function",
      permission: Notice?.permission,
    });
    if (channel === "notification") {
      // The tag folds the same job's notice from the user's other hidden tabs into one.
      new Notice(text, { body: String(job.error || job.message || ""), tag: job.id });
    } else {
      sayInPage(text);
    }
  };

  const take = (job) => {
    // A group's parts show on its page; the tray lists the group once.
    if (job.parent || !store.apply(job)) return;
    job = store.get(job.id);
    if (seeded && finishes.isNews(job)) tell(job);
  };

  // At the page's data-progress-*-url, which tray.html sets too.
  watchUser({
    onSnapshot: (jobs) => {
      if (!seeded) finishes.seed(jobs);
      jobs.forEach(take);
      seeded = true;
      render();
    },
    onJob: (job) => {
      take(job);
      render();
    },
  });

  const open = (opened) => {
    toggle.setAttribute("aria-expanded", String(opened));
    panel.hidden = !opened;
  };
  toggle.addEventListener("click", () => open(panel.hidden));
  tray.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden) {
      open(false);
      toggle.focus();
    }
  });
  doc.addEventListener("click", (event) => {
    if (!panel.hidden && !tray.contains(event.target)) open(false);
  });

  const Notice = globalThis.Notification;
  const offerAllow = () => {
    allow.hidden = typeof Notice !== "function" || Notice.permission !== "default";
  };
  offerAllow();
  allow.addEventListener("click", async () => {
    await Notice.requestPermission();
    offerAllow();
  });
}

const tray = globalThis.document?.querySelector("[data-progress-tray]");
if (tray) start(tray);
