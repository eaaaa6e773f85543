import { test } from "node:test";
import assert from "node:assert/strict";
import { FinishWatch, channelFor, createThrottle } from "../../progress/static/progress/notices.js";

const job = (id, state) => ({ id, state, seq: 1 });

test("jobs already over when the page opened are not news; ones that end later are, once", () => {
  const watch = new FinishWatch();
  watch.seed([job("old", "SUCCESS"), job("run", "PROGRESS")]);
  assert.equal(watch.isNews(job("old", "SUCCESS")), false);
  assert.equal(watch.isNews(job("run", "PROGRESS")), false);
  assert.equal(watch.isNews(job("run", "FAILURE")), true);
  assert.equal(watch.isNews(job("run", "FAILURE")), false, "told twice");
  // A job launched in another tab and finished while this one was reconnecting.
  assert.equal(watch.isNews(job("new", "REVOKED")), true);
});

test("the throttle speaks at once, then folds what comes within the gap into one line", () => {
  let clock = 0;
  const timers = [];
  const said = [];
  const notify = createThrottle((text) => said.push(text), {
    gap: 3000,
    now: () => clock,
    schedule: (fn, ms) => timers.push({ fn, at: clock + ms }),
  });
  notify("Count finished: SUCCESS");
  assert.deepEqual(said, ["Count finished: SUCCESS"]);
  clock = 1000;
  notify("Report finished: SUCCESS");
  notify("Count finished: FAILURE");
  assert.equal(said.length, 1, "spoke again inside the gap");
  assert.equal(timers.length, 1);
  assert.equal(timers[0].at, 3000);
  clock = 3000;
  timers.shift().fn();
  assert.deepEqual(said, ["Count finished: SUCCESS", "2 jobs finished"]);
  clock = 10_000;
  notify("Late finished: SUCCESS");
  assert.equal(said.at(-1), "Late finished: SUCCESS");
});

test("a system notification only for a hidden tab whose user allowed it", () => {
  assert.equal(channelFor({ hidden: true, supported: true, permission: "granted" }), "notification");
  assert.equal(channelFor({ hidden: false, supported: true, permission: "granted" }), "toast");
  assert.equal(channelFor({ hidden: true, supported: true, permission: "default" }), "toast");
  assert.equal(channelFor({ hidden: true, supported: false, permission: "granted" }), "toast");
});
