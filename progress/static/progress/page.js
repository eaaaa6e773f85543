// DOM helpers shared by the dashboard and job pages: config, status, announcements, cancel.

import { postJSON } from "./api.js";
import { createAnnouncements } from "./announce.js";
import { fillUrl } from "./format.js";
import { isFinal } from "./protocol.js";

const STATUS_TEXT = {
  connecting: "connecting…",
  live: "live",
  // The WebSocket was blocked on the way; server-sent events carry the same states.
  "live-sse": "live (fallback)",
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

// The aria-live region: job news goes through createAnnouncements (what is news,
// how often to speak); `say` is for the page's own messages, which are never held back.
export function createAnnouncer(region, titles) {
  const say = (text) => {
    if (!region) return;
    // Clearing first makes screen readers repeat an identical message.
    region.textContent = "";
    setTimeout(() => (region.textContent = text), 50);
  };
  const news = createAnnouncements({ say, titles: titles ?? {} });
  return {
    seed: (jobs) => news.seed(jobs),
    job: (job) => news.job(job),
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
