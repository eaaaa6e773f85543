import { test } from "node:test";
import assert from "node:assert/strict";
import {
  compactJSON,
  downloadPath,
  fillUrl,
  formatCounts,
  formatEta,
  formatPercent,
  formatRate,
  isSafeDownload,
  taskTitle,
} from "../../progress/static/progress/format.js";

test("percent shows whole numbers and nothing when unknown", () => {
  assert.equal(formatPercent(30.0), "30%");
  assert.equal(formatPercent(99.7), "99%", "never claim 100% early");
  assert.equal(formatPercent(100), "100%");
  assert.equal(formatPercent(null), "");
});

test("counts show 'current / total', or just the count when total is unknown", () => {
  assert.equal(formatCounts(3, 10), "3 / 10");
  assert.equal(formatCounts(3, null), "3");
  assert.equal(formatCounts(45000, 100000), "45,000 / 100,000");
  assert.equal(formatCounts(null, null), "");
});

test("rate reads as units per second", () => {
  assert.equal(formatRate(5), "5.0/s");
  assert.equal(formatRate(0.25), "0.3/s");
  assert.equal(formatRate(1234.4), "1,234/s");
  assert.equal(formatRate(null), "");
});

test("eta is a calm, rounded estimate", () => {
  assert.equal(formatEta(null), "");
  assert.equal(formatEta(1.4), "a few seconds left");
  assert.equal(formatEta(42), "about 40 s left");
  assert.equal(formatEta(58), "about 1 min left");
  assert.equal(formatEta(120), "about 2 min left");
  assert.equal(formatEta(150), "about 3 min left");
  assert.equal(formatEta(3590), "about 1 h left");
  assert.equal(formatEta(3900), "about 1 h 5 min left");
  assert.equal(formatEta(7200), "about 2 h left");
  assert.equal(formatEta(-1), "");
});

test("results are shown as compact JSON", () => {
  assert.equal(compactJSON({ count: 10, ok: true }), '{"count":10,"ok":true}');
  assert.equal(compactJSON(42), "42");
  assert.equal(compactJSON(null), "");
});

test("only same-origin paths become Download links", () => {
  assert.equal(downloadPath({ download: "/media/report.csv" }), "/media/report.csv");
  for (const bad of ["//evil.example/x", "/\\evil.example", "/\t/evil.example", "https://evil.example/", "javascript:alert(1)", "report.csv", 5]) {
    assert.equal(isSafeDownload(bad), false, `accepted ${JSON.stringify(bad)}`);
    assert.equal(downloadPath({ download: bad }), null);
  }
  assert.equal(downloadPath("/media/x"), null);
  assert.equal(downloadPath(null), null);
});

test("task titles come from the lookup with the task name as fallback", () => {
  assert.equal(taskTitle({ "demo.count": "Count" }, "demo.count"), "Count");
  assert.equal(taskTitle({}, "demo.other"), "demo.other");
  assert.equal(taskTitle({}, "constructor"), "constructor");
});

test("job links fill the {id} placeholder", () => {
  assert.equal(fillUrl("/jobs/{id}/", "3f2a"), "/jobs/3f2a/");
  assert.equal(fillUrl("/api/jobs/{id}/cancel/", "a/b"), "/api/jobs/a%2Fb/cancel/");
  assert.equal(fillUrl("/api/jobs/3f2a/cancel/", "3f2a"), "/api/jobs/3f2a/cancel/");
});
