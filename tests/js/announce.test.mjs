import { test } from "node:test";
import assert from "node:assert/strict";
import { createAnnouncements } from "../../progress/static/progress/announce.js";

// A fake clock: `advance` runs the timers that fall due, in time order.
function setup({ gap = 4000, titles = { count: "Count", report: "Report" } } = {}) {
  const clock = { t: 0 };
  const timers = [];
  const said = [];
  const news = createAnnouncements({
    say: (text) => said.push(text),
    titles,
    gap,
    now: () => clock.t,
    schedule: (fn, ms) => timers.push({ fn, at: clock.t + ms }),
  });
  const advance = (to) => {
    for (;;) {
      timers.sort((a, b) => a.at - b.at);
      if (!timers.length || timers[0].at > to) break;
      const timer = timers.shift();
      clock.t = timer.at;
      timer.fn();
    }
    clock.t = to;
  };
  let seq = 0;
  const job = (id, state, percent = null, task = "count") => ({ id, task, state, percent, seq: ++seq, error: null });
  return { news, said, clock, timers, advance, job };
}

test("jobs seeded from the page are history: their current state is not read out", () => {
  const { news, said, job, advance } = setup();
  const done = job("a", "SUCCESS");
  const running = job("b", "PROGRESS", 60);
  news.seed([done, running]);
  news.job({ ...done, seq: done.seq + 1 });
  news.job({ ...running, seq: running.seq + 1, percent: 70 });
  advance(60_000);
  assert.deepEqual(said, [], "old state or milestone read out");
  // Real news about a seeded job is still heard.
  news.job({ ...running, seq: 99, percent: 80 });
  assert.deepEqual(said, ["Count 75%"]);
});

test("state changes and milestones have their own texts; PENDING and plain PROGRESS are not news", () => {
  const { news, said, job, advance } = setup({ gap: 0 });
  const steps = [
    [job("a", "PENDING"), []],
    [job("a", "STARTED"), ["Count started"]],
    [job("a", "PROGRESS", 10), []],
    [job("a", "PROGRESS", 26), ["Count 25%"]],
    [job("a", "PROGRESS", 49.9), []],
    [job("a", "PROGRESS", 50), ["Count 50%"]],
    [job("a", "RETRY", 50), ["Count retrying"]],
    // The retry starts over: its milestones are news again.
    [job("a", "PROGRESS", 0), []],
    [job("a", "PROGRESS", 30), ["Count 25%"]],
    [job("a", "PROGRESS", 99), ["Count 75%"]],
    [job("a", "SUCCESS", 100), ["Count finished: SUCCESS"]],
    [job("b", "FAILURE", null, "report"), ["Report finished: FAILURE"]],
    [job("c", "REVOKED", null, "untitled"), ["untitled finished: REVOKED"]],
  ];
  for (const [update, expected] of steps) {
    const before = said.length;
    news.job(update);
    advance(update.seq * 10);
    assert.deepEqual(said.slice(before), expected, `${update.state} ${update.percent}`);
  }
});

test("a replayed or older frame raises no news twice", () => {
  const { news, said, job } = setup({ gap: 0 });
  const end = job("a", "SUCCESS");
  news.job(end);
  news.job(end);
  news.job({ ...end, seq: end.seq - 1, state: "STARTED" });
  assert.deepEqual(said, ["Count finished: SUCCESS"]);
});

test("a burst of 50 updates within one gap: said at once, then once with only the newest news", () => {
  const { news, said, job, advance, clock } = setup();
  news.job(job("a", "STARTED", 0));
  for (let i = 1; i <= 50; i += 1) {
    clock.t = i * 40;
    const percent = 25 + (75 * i) / 50;
    news.job(i === 50 ? job("a", "SUCCESS", 100) : job("a", "PROGRESS", percent));
  }
  assert.deepEqual(said, ["Count started"]);
  advance(4000);
  assert.deepEqual(said, ["Count started", "Count finished: SUCCESS"], "the final supersedes the milestones");
  advance(60_000);
  assert.equal(said.length, 2);
});

test("news within the gap is joined in order of arrival, newest item per job", () => {
  const { news, said, job, advance, clock } = setup();
  news.job(job("a", "STARTED"));
  clock.t = 500;
  news.job(job("b", "STARTED", null, "report"));
  clock.t = 1000;
  news.job(job("a", "PROGRESS", 30));
  clock.t = 1500;
  news.job(job("c", "STARTED"));
  clock.t = 2000;
  news.job(job("a", "PROGRESS", 55));
  advance(4000);
  assert.deepEqual(said, ["Count started", "Report started. Count started. Count 50%"]);
});

test("a final is never lost in a burst across many jobs: folding counts it", () => {
  const { news, said, job, advance, clock } = setup();
  news.job(job("first", "STARTED"));
  clock.t = 100;
  news.job(job("m1", "PROGRESS", 30));
  news.job(job("f1", "SUCCESS"));
  news.job(job("m2", "PROGRESS", 60));
  news.job(job("f2", "FAILURE", null, "report"));
  news.job(job("f3", "REVOKED"));
  // A late milestone cannot push out a pending final of the same job.
  news.job(job("f1", "PROGRESS", 80));
  advance(4000);
  assert.deepEqual(said, ["Count started", "Count finished: SUCCESS. 4 more jobs changed, 2 of them finished"]);
});

test("folding words the count by what the other jobs did", () => {
  const { news, said, job, advance } = setup();
  news.job(job("x", "STARTED"));
  for (const id of ["a", "b", "c", "d"]) news.job(job(id, "SUCCESS"));
  advance(4000);
  for (const id of ["e", "f", "g", "h", "i"]) news.job(job(id, "STARTED"));
  advance(8000);
  assert.deepEqual(said, [
    "Count started",
    "Count finished: SUCCESS. 3 more jobs finished",
    "Count started. 4 more jobs changed",
  ]);
});

test("up to three jobs are read in full", () => {
  const { news, said, job, advance } = setup();
  news.job(job("x", "STARTED"));
  news.job(job("a", "SUCCESS"));
  news.job(job("b", "FAILURE", null, "report"));
  news.job(job("c", "PROGRESS", 25));
  advance(4000);
  assert.equal(said[1], "Count finished: SUCCESS. Report finished: FAILURE. Count 25%");
});

test("after a quiet gap the next news is said at once", () => {
  const { news, said, job, advance, timers } = setup();
  news.job(job("a", "STARTED"));
  advance(10_000);
  news.job(job("a", "PROGRESS", 25));
  assert.deepEqual(said, ["Count started", "Count 25%"]);
  assert.equal(timers.length, 0, "waited for nothing");
  // Exactly one gap after the last utterance is quiet enough.
  advance(14_000);
  news.job(job("a", "SUCCESS"));
  assert.equal(said.at(-1), "Count finished: SUCCESS");
});

test("flush says pending news now, and the gap then counts from the flush", () => {
  const { news, said, job, advance, clock } = setup();
  news.job(job("a", "STARTED"));
  clock.t = 1000;
  news.job(job("a", "SUCCESS"));
  news.flush();
  assert.deepEqual(said, ["Count started", "Count finished: SUCCESS"]);
  news.flush();
  assert.equal(said.length, 2, "flushed nothing twice");
  clock.t = 2000;
  news.job(job("b", "STARTED"));
  // The timer set before the flush fires at 4000, but only 3 s have passed since it.
  advance(4999);
  assert.equal(said.length, 2);
  advance(5000);
  assert.deepEqual(said.at(-1), "Count started");
});

test("task names without a title are read as they are, even ones like 'constructor'", () => {
  const { news, said, job } = setup({ gap: 0, titles: undefined });
  news.job(job("a", "SUCCESS", null, "constructor"));
  assert.deepEqual(said, ["constructor finished: SUCCESS"]);
});
