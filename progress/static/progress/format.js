// Pure text helpers for job rows: numbers, rates, time estimates, titles and URLs.

const numbers = new Intl.NumberFormat("en-US");

function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

// Floor so a bar never reads "100%" before the job has actually finished.
export function formatPercent(percent) {
  if (!isNumber(percent)) return "";
  return `${Math.floor(Math.min(100, Math.max(0, percent)))}%`;
}

export function formatCounts(current, total) {
  if (!isNumber(current)) return "";
  if (!isNumber(total)) return numbers.format(current);
  return `${numbers.format(current)} / ${numbers.format(total)}`;
}

export function formatRate(rate) {
  if (!isNumber(rate) || rate < 0) return "";
  return rate < 100 ? `${rate.toFixed(1)}/s` : `${numbers.format(Math.round(rate))}/s`;
}

// Estimates jitter from update to update; coarse rounding keeps the text calm.
export function formatEta(seconds) {
  if (!isNumber(seconds) || seconds < 0) return "";
  if (seconds < 10) return "a few seconds left";
  const fives = Math.round(seconds / 5) * 5;
  if (fives < 60) return `about ${fives} s left`;
  const minutes = Math.max(1, Math.round(seconds / 60));
  if (minutes < 60) return `about ${minutes} min left`;
  const rounded = Math.round(seconds / 300) * 5;
  const hours = Math.floor(rounded / 60);
  const rest = rounded % 60;
  return rest ? `about ${hours} h ${rest} min left` : `about ${hours} h left`;
}

export function compactJSON(value) {
  if (value === null || value === undefined) return "";
  try {
    return JSON.stringify(value) ?? "";
  } catch {
    return String(value);
  }
}

// Own-property lookup so task names like "constructor" cannot hit Object.prototype.
export function taskTitle(titles, task) {
  return titles && Object.hasOwn(titles, task) ? String(titles[task]) : String(task ?? "");
}

export function fillUrl(template, id) {
  return String(template ?? "").replace("{id}", encodeURIComponent(id));
}

// Only same-origin paths: "//host" and "/\host" are protocol-relative to browsers,
// and tabs/newlines are stripped by URL parsing, which could turn "/\t/host" into "//host".
export function isSafeDownload(path) {
  return typeof path === "string" && /^\/(?![/\\])[^\\\u0000-\u001f\u007f]*$/.test(path);
}

export function downloadPath(result) {
  if (!result || typeof result !== "object" || Array.isArray(result)) return null;
  return isSafeDownload(result.download) ? result.download : null;
}
