// DOM helpers shared by the dashboard and job pages: config, status, announcements, cancel.

import { postJSON } from "./api.js";
import { fillUrl, taskTitle } from "./format.js";
import { isFinal } from "./jobs.js";

const STATUS_TEXT = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  unavailable: "live updates unavailable",
  "signed-out": "signed out: reload the page to log in",
};

export function readJSON(id) {
  const node = document.getElementById(id);
  if (!node) return null;
  try {
    return JSON.parse(node.textContent);
  } catch {
    return null;
  }
}

export function showStatus(node, status) {
  if (!node) return;
  node.textContent = STATUS_TEXT[status] ?? status;
  node.setAttribute("data-status", status);
}

// Announces each job's final state once; states already final when the page
// loaded are seeded so opening the page does not read out old news.
export function createAnnouncer(region, titles) {
  const done = new Set();
  const key = (job) => `${job.id}:${job.state}`;
  const say = (text) => {
    if (!region) return;
    // Clearing first makes screen readers repeat an identical message.
    region.textContent = "";
    setTimeout(() => (region.textContent = text), 50);
  };
  return {
    seed(jobs) {
      for (const job of jobs) if (isFinal(job.state)) done.add(key(job));
    },
    job(job) {
      if (!isFinal(job.state) || done.has(key(job))) return;
      done.add(key(job));
      say(`${taskTitle(titles, job.task)} finished: ${job.state}`);
    },
    say,
  };
}

function cancelFailure(status, data) {
  if (status === 0) return "Could not reach the server to cancel. Try again.";
  if (status === 401 || status === 403) return "You are signed out. Reload the page to log in again.";
  const reason = data && typeof data.error === "string" ? ` ${data.error}` : "";
  return `Could not cancel this job.${reason}`;
}

// One delegated listener covers rows that are rendered later.
export function wireCancel(container, cancelUrl) {
  container.addEventListener("click", async (event) => {
    const button = event.target.closest?.('button[data-action="cancel"]');
    const row = button?.closest("[data-job-id]");
    if (!row || !container.contains(row) || button.disabled) return;
    const notice = row.querySelector('[data-field="notice"]');
    notice.textContent = "";
    row.setAttribute("data-cancelling", "");
    button.disabled = true;
    const { status, data } = await postJSON(fillUrl(cancelUrl, row.getAttribute("data-job-id")));
    // On success the REVOKED state arrives over the socket and hides the button.
    if (status >= 200 && status < 300) return;
    row.removeAttribute("data-cancelling");
    button.disabled = isFinal(row.getAttribute("data-state"));
    notice.textContent = cancelFailure(status, data);
  });
}
