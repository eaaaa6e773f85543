import { test } from "node:test";
import assert from "node:assert/strict";
import { JobStore } from "../../progress/static/progress/jobs.js";

const job = (id, seq, extra = {}) => ({ id, seq, state: "PROGRESS", created: "2025-11-21T10:00:00Z", ...extra });

test("a newer state replaces the shown one, an older or repeated one is ignored", () => {
  const store = new JobStore();
  assert.equal(store.apply(job("a", 5, { message: "step 5" })), true);
  assert.equal(store.apply(job("a", 4, { message: "step 4" })), false);
  assert.equal(store.apply(job("a", 5, { message: "dup" })), false);
  assert.equal(store.get("a").message, "step 5");
  assert.equal(store.apply(job("a", 6, { message: "step 6" })), true);
  assert.equal(store.get("a").message, "step 6");
});

test("snapshot entries obey the same seq rule and only new information is returned", () => {
  const store = new JobStore();
  store.apply(job("a", 9, { state: "SUCCESS" }));
  const accepted = store.applySnapshot([job("a", 3), job("b", 1)]);
  assert.deepEqual(accepted.map((j) => j.id), ["b"]);
  assert.equal(store.get("a").state, "SUCCESS", "a stale snapshot must not un-finish a job");
});

test("jobs are listed newest first", () => {
  const store = new JobStore();
  store.apply(job("old", 1, { created: "2025-11-21T09:00:00.123456+00:00" }));
  store.apply(job("new", 1, { created: "2025-11-21T11:00:00+00:00" }));
  store.apply(job("mid", 1, { created: "2025-11-21T10:00:00Z" }));
  assert.deepEqual(store.all().map((j) => j.id), ["new", "mid", "old"]);
});

test("garbage frames do not become jobs", () => {
  const store = new JobStore();
  assert.equal(store.apply(null), false);
  assert.equal(store.apply({ seq: 1 }), false);
  assert.deepEqual(store.applySnapshot(undefined), []);
  assert.equal(store.size, 0);
});
