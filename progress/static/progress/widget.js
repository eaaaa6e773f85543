// Progress bar widgets: brings each element of the {% progress_bar %} tag to life through client.js.

import { renderJob } from "./bars.js";
import { isFinal, isNewer } from "./protocol.js";
import { wireCancel } from "./page.js";
import { watch } from "./client.js";

const SELECTOR = "[data-progress-bar]";
const WIRED = "data-progress-wired";
const stops = new WeakMap();
// A list keeps its click listener across unwire(), and a second one would POST twice.
const cancelWired = new WeakSet();

// Looked up inside the widget first: a widget inserted into a detached fragment
// (or a page with a clashing id) must still find its own initial state.
function readInitial(widget, id) {
  if (!id) return null;
  const scripts = [...widget.querySelectorAll('script[type="application/json"]')];
  const node = scripts.find((script) => script.id === id) ?? widget.ownerDocument.getElementById(id);
  if (!node) return null;
  try {
    return JSON.parse(node.textContent);
  } catch {
    return null;
  }
}

function start(widget) {
  const { jobId, wsUrl, title, jobUrl, cancelUrl } = widget.dataset;
  const list = widget.querySelector("[data-job-list]");
  if (!jobId || !list) return;
  let shown = null;

  const render = (job) => {
    if (!job || job.id !== jobId) return;
    // The embedded state and the socket's first answer are often the same seq.
    if (!isNewer(shown, job)) return;
    // The server-rendered fallback stays until there is a live row to replace it.
    if (!shown) list.replaceChildren();
    shown = job;
    renderJob(list, job, { titles: title ? { [job.task]: title } : {}, jobUrl, heading: "h3" });
    widget.setAttribute("data-state", String(job.state));
  };

  render(readInitial(widget, widget.dataset.initial));
  if (cancelUrl && !cancelWired.has(list)) {
    cancelWired.add(list);
    wireCancel(list, cancelUrl);
  }
  // Nothing follows a final state, so a finished job needs no socket.
  if (shown && isFinal(shown.state)) return;
  const stop = watch(
    jobId,
    {
      onUpdate: render,
      onError: (frame) => {
        widget.setAttribute("data-error", String(frame.error));
        const notice = list.querySelector('[data-field="notice"]');
        if (notice) notice.textContent = "Live updates are not available for this job.";
      },
    },
    // The connection's URLs are the page's (data-progress-*-url); a bar's own data-ws-url wins.
    wsUrl ? { url: wsUrl } : {},
  );
  stops.set(widget, stop);
}

function widgetsIn(root) {
  const found = [...root.querySelectorAll(SELECTOR)];
  if (root.matches?.(SELECTOR)) found.unshift(root);
  return found;
}

// Safe to call again after inserting markup: wired widgets are marked and skipped.
export function wire(root = document) {
  const wired = [];
  for (const widget of widgetsIn(root)) {
    if (widget.hasAttribute(WIRED)) continue;
    widget.setAttribute(WIRED, "");
    start(widget);
    wired.push(widget);
  }
  return wired;
}

// For markup about to be removed: its watches would otherwise keep the shared socket open.
export function unwire(root = document) {
  for (const widget of widgetsIn(root)) {
    stops.get(widget)?.();
    stops.delete(widget);
    widget.removeAttribute(WIRED);
  }
}

if (globalThis.document) {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => wire(), { once: true });
  else wire();
}
