// Job rows: builds and updates one job's row, and wires its Retry button. Job data is
// untrusted, so text only.

import { retryJob } from "./api.js";
import { EtaSmoother } from "./eta.js";
import { canRetry } from "./jobs.js";
import { isFinal, State } from "./protocol.js";
import {
  compactJSON,
  downloadPath,
  fillUrl,
  formatCounts,
  formatEta,
  formatPercent,
  formatRate,
  taskTitle,
} from "./format.js";

const RESULT_MAX = 500;

// One per page: the shown "time left" of each job counts down between frames and blends
// new estimates in, so it reads steadily (eta.js).
const etas = new EtaSmoother();

function el(doc, tag, attrs = {}) {
  const node = doc.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function buildRow(doc, heading) {
  const row = el(doc, "article", { class: "job" });
  const head = el(doc, "div", { class: "job-head" });
  const title = el(doc, heading, { class: "job-title" });
  title.append(el(doc, "a", { "data-field": "link" }));
  head.append(title, el(doc, "span", { class: "job-state", "data-field": "state" }));

  const numbers = el(doc, "p", { class: "job-numbers" });
  for (const name of ["percent", "counts", "rate", "eta"]) numbers.append(el(doc, "span", { "data-field": name }));

  const cancel = el(doc, "button", { type: "button", "data-action": "cancel", class: "job-cancel" });
  cancel.textContent = "Cancel";
  const retry = el(doc, "button", { type: "button", "data-action": "retry", class: "job-retry", hidden: "" });
  retry.textContent = "Retry";

  const retryOf = el(doc, "p", { class: "job-retry-of", "data-field": "retry-of", hidden: "" });
  retryOf.append("Retry of ", el(doc, "a", {}));

  row.append(
    head,
    retryOf,
    el(doc, "progress", { max: "100" }),
    numbers,
    el(doc, "p", { class: "job-message", "data-field": "message" }),
    el(doc, "p", { class: "job-result", "data-field": "result", hidden: "" }),
    el(doc, "p", { class: "job-error", "data-field": "error", hidden: "" }),
    el(doc, "p", { class: "job-notice", "data-field": "notice", role: "status" }),
    cancel,
    retry,
  );
  return row;
}

function findRow(container, id) {
  for (const child of container.children) {
    if (child.getAttribute("data-job-id") === id) return child;
  }
  return null;
}

// Rows are placed once, newest first, and never moved afterwards:
// moving a node would steal focus from a Cancel button mid-click.
function insertRow(container, row, created) {
  const time = Date.parse(created);
  for (const child of container.children) {
    const other = Date.parse(child.getAttribute("data-created"));
    if (!(other >= time)) {
      container.insertBefore(row, child);
      return;
    }
  }
  container.append(row);
}

function setText(row, name, text) {
  const node = row.querySelector(`[data-field="${name}"]`);
  if (node.textContent !== text) node.textContent = text;
  return node;
}

function updateBar(bar, job, title) {
  bar.setAttribute("aria-label", `${title} progress`);
  let percent = job.percent;
  // A finished job should not keep animating as indeterminate.
  if (typeof percent !== "number" && isFinal(job.state)) percent = job.state === State.SUCCESS ? 100 : 0;
  if (typeof percent === "number" && Number.isFinite(percent)) {
    bar.setAttribute("value", String(Math.min(100, Math.max(0, percent))));
  } else {
    bar.removeAttribute("value");
  }
}

function updateResult(node, job) {
  const show = job.state === State.SUCCESS;
  const download = show ? downloadPath(job.result) : null;
  const text = show && !download ? compactJSON(job.result) : "";
  node.replaceChildren();
  node.removeAttribute("data-kind");
  if (download) {
    const link = node.ownerDocument.createElement("a");
    link.setAttribute("href", download);
    link.textContent = "Download";
    node.append(link);
  } else if (text) {
    node.setAttribute("data-kind", "text");
    node.textContent = text.length > RESULT_MAX ? `${text.slice(0, RESULT_MAX)}…` : text;
  }
  node.hidden = !download && !text;
}

function updateRetryOf(node, job, jobUrl) {
  const id = typeof job.retry_of === "string" && jobUrl ? job.retry_of : "";
  node.hidden = !id;
  if (!id) return;
  const link = node.querySelector("a");
  link.setAttribute("href", fillUrl(jobUrl, id));
  link.textContent = `job ${id.slice(0, 8)}`;
}

// `retry` offers a Retry button on the rows that can run again (wireRetry sends it);
// `retryOf` links a re-launched job's row to the job it retried.
export function renderJob(
  container,
  job,
  { titles = {}, jobUrl = "", heading = "h3", retry = false, retryOf = false } = {},
) {
  let row = findRow(container, job.id);
  if (!row) {
    row = buildRow(container.ownerDocument, heading);
    row.setAttribute("data-job-id", job.id);
    row.setAttribute("data-created", String(job.created ?? ""));
    insertRow(container, row, job.created);
  }
  const final = isFinal(job.state);
  const title = taskTitle(titles, job.task);
  row.setAttribute("data-state", String(job.state));
  row.setAttribute("data-seq", String(job.seq));

  const link = setText(row, "link", title);
  if (jobUrl) link.setAttribute("href", fillUrl(jobUrl, job.id));
  setText(row, "state", String(job.state));
  updateBar(row.querySelector("progress"), job, title);
  setText(row, "percent", formatPercent(job.percent));
  setText(row, "counts", formatCounts(job.current, job.total));
  setText(row, "rate", final ? "" : formatRate(job.rate));
  if (final) etas.forget(job.id);
  setText(row, "eta", final ? "" : formatEta(etas.update(job.id, job.eta)));
  setText(row, "message", String(job.message ?? ""));
  updateResult(row.querySelector('[data-field="result"]'), job);

  const error = setText(row, "error", job.state === State.FAILURE ? String(job.error || "The job failed.") : "");
  error.hidden = job.state !== State.FAILURE;

  const cancel = row.querySelector('[data-action="cancel"]');
  cancel.hidden = final;
  cancel.disabled = final || row.hasAttribute("data-cancelling");

  const again = row.querySelector('[data-action="retry"]');
  again.hidden = !retry || !canRetry(job);
  again.disabled = again.hidden || row.hasAttribute("data-retrying");
  again.setAttribute("aria-label", `Retry ${title}`);
  updateRetryOf(row.querySelector('[data-field="retry-of"]'), retryOf ? job : {}, jobUrl);
  return row;
}

// One delegated listener covers rows rendered later; `onRetried` gets the new job.
export function wireRetry(container, retryUrl, onRetried) {
  container.addEventListener("click", async (event) => {
    const button = event.target.closest?.('button[data-action="retry"]');
    const row = button?.closest("[data-job-id]");
    if (!row || !container.contains(row) || button.disabled) return;
    const notice = row.querySelector('[data-field="notice"]');
    notice.textContent = "";
    row.setAttribute("data-retrying", "");
    button.disabled = true;
    const { job, error } = await retryJob(fillUrl(retryUrl, row.getAttribute("data-job-id")));
    row.removeAttribute("data-retrying");
    button.disabled = false;
    if (job) onRetried(job);
    else notice.textContent = error;
  });
}
