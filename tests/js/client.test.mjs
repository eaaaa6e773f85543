import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { _reset, cancel, watch, watchUser } from "../../progress/static/progress/client.js";
import { URLS, fakeConnection } from "./fakes.mjs";

const { sockets, timers, options, clear } = fakeConnection();

afterEach(() => {
  _reset();
  clear();
});

// Callbacks for states already known are deferred past watch()'s return.
const settle = () => new Promise((resolve) => setImmediate(resolve));
const job = (id, seq, state = "PROGRESS") => ({ id, seq, state, task: "t", created: "2025-11-21T10:00:00Z" });

function recorder() {
  const events = { updates: [], finishes: [], errors: [] };
  const callbacks = {
    onUpdate: (j) => events.updates.push([j.id, j.seq, j.state]),
    onFinish: (j) => events.finishes.push([j.id, j.seq, j.state]),
    onError: (frame) => events.errors.push(frame.error),
  };
  return { events, callbacks };
}

function live(ws, jobs = []) {
  ws.open();
  ws.receive({ type: "snapshot", jobs });
}

test("a watch gets its job's states in seq order and drops stale and repeated ones", () => {
  const { events, callbacks } = recorder();
  watch("a", callbacks, options);
  assert.equal(sockets.length, 1);
  assert.equal(sockets[0].url, "ws://test/ws/progress/");
  live(sockets[0], [job("a", 2), job("b", 1)]);
  assert.deepEqual(sockets[0].sent, [{ action: "subscribe", job: "a" }]);
  const ws = sockets[0];
  ws.receive({ type: "job", job: job("a", 2) }); // the subscribe answer, already seen
  ws.receive({ type: "job", job: job("a", 3) });
  ws.receive({ type: "job", job: job("a", 1) });
  ws.receive({ type: "job", job: job("b", 5) });
  ws.receive({ type: "job", job: job("a", 3) });
  ws.receive({ type: "job", job: job("a", 7) });
  assert.deepEqual(events.updates.map(([id, seq]) => [id, seq]), [["a", 2], ["a", 3], ["a", 7]]);
  assert.deepEqual(events.finishes, []);
});

test("onFinish fires once, after onUpdate of the final state, and the watch stops itself", async () => {
  const order = [];
  let finishes = 0;
  watch("a", {
    onUpdate: (j) => order.push(`update ${j.state}`),
    onFinish: (j) => { finishes += 1; order.push(`finish ${j.state}`); },
  }, options);
  const ws = sockets[0];
  live(ws, [job("a", 1)]);
  ws.receive({ type: "job", job: job("a", 2, "SUCCESS") });
  ws.receive({ type: "job", job: job("a", 2, "SUCCESS") });
  ws.receive({ type: "job", job: job("a", 3, "SUCCESS") });
  await settle();
  assert.equal(finishes, 1);
  assert.deepEqual(order, ["update PROGRESS", "update SUCCESS", "finish SUCCESS"]);
  assert.deepEqual(ws.sent.at(-1), { action: "unsubscribe", job: "a" });
  assert.equal(ws.closedWith, 1000, "the last watch finished, so the shared socket closes");
});

test("a job already final when watched finishes at once, after watch() returned", async () => {
  const other = recorder();
  watch("other", other.callbacks, options);
  live(sockets[0], [job("done", 4, "FAILURE")]);
  const { events, callbacks } = recorder();
  let stop = null;
  watch("done", { ...callbacks, onFinish: (j) => { callbacks.onFinish(j); assert.equal(typeof stop, "function"); } }, options);
  stop = () => {};
  assert.deepEqual(events.updates, [], "not inside watch()");
  await settle();
  assert.deepEqual(events.updates, [["done", 4, "FAILURE"]]);
  assert.deepEqual(events.finishes, [["done", 4, "FAILURE"]]);
  assert.deepEqual(sockets[0].sent.at(-1), { action: "unsubscribe", job: "done" });
  assert.equal(sockets[0].closedWith, null, "another watch still needs the socket");
});

test("watches share one socket, one subscribe per job, and a late one gets the current state", async () => {
  const first = recorder();
  const second = recorder();
  const late = recorder();
  watch("a", first.callbacks, options);
  watch("a", second.callbacks, options);
  watch("b", recorder().callbacks, options);
  watchUser({}, options);
  assert.equal(sockets.length, 1);
  const ws = sockets[0];
  live(ws, [job("a", 1)]);
  assert.deepEqual(ws.sent, [{ action: "subscribe", job: "a" }, { action: "subscribe", job: "b" }]);
  ws.receive({ type: "job", job: job("a", 2) });

  watch("a", late.callbacks, options);
  assert.equal(sockets.length, 1);
  assert.equal(ws.sent.length, 2, "a job already subscribed is not subscribed again");
  await settle();
  ws.receive({ type: "job", job: job("a", 3) });
  assert.deepEqual(first.events.updates.map(([, seq]) => seq), [1, 2, 3]);
  assert.deepEqual(second.events.updates.map(([, seq]) => seq), [1, 2, 3]);
  assert.deepEqual(late.events.updates.map(([, seq]) => seq), [2, 3]);
});

test("stop() unsubscribes once no watch of the job is left, and the last stop closes the socket", () => {
  const kept = recorder();
  const stopA1 = watch("a", recorder().callbacks, options);
  const stopA2 = watch("a", kept.callbacks, options);
  const stopB = watch("b", recorder().callbacks, options);
  const ws = sockets[0];
  live(ws, [job("a", 1), job("b", 1)]);

  stopA1();
  stopA1();
  assert.deepEqual(ws.sent.filter((m) => m.action === "unsubscribe"), []);
  ws.receive({ type: "job", job: job("a", 2) });
  assert.deepEqual(kept.events.updates.map(([, seq]) => seq), [1, 2], "the other watch of a still gets states");

  stopA2();
  assert.deepEqual(ws.sent.at(-1), { action: "unsubscribe", job: "a" });
  ws.receive({ type: "job", job: job("a", 3) });
  assert.deepEqual(kept.events.updates.map(([, seq]) => seq), [1, 2], "a stopped watch gets nothing");
  assert.equal(ws.closedWith, null);

  stopB();
  assert.deepEqual(ws.sent.at(-1), { action: "unsubscribe", job: "b" });
  assert.equal(ws.closedWith, 1000);
  assert.equal(cancel("b"), false, "no shared socket is left");

  watch("c", recorder().callbacks, options);
  assert.equal(sockets.length, 2, "a watch after the last stop opens a new socket");
});

test("after a drop the socket reconnects, re-subscribes and does not replay states already seen", async () => {
  const { events, callbacks } = recorder();
  const user = [];
  watch("a", callbacks, options);
  watch("x", recorder().callbacks, options);
  watchUser({ onJob: (j) => user.push(j.seq), onSnapshot: (jobs) => user.push(jobs.map((j) => j.seq)) }, options);
  live(sockets[0], [job("a", 3)]);
  sockets[0].receive({ type: "job", job: job("a", 4) });

  sockets[0].drop(1001);
  assert.equal(timers.length, 1, "reconnects after a backoff delay");
  timers.shift().fn();
  assert.equal(sockets.length, 2);
  const ws = sockets[1];
  ws.open();
  assert.deepEqual(ws.sent, [{ action: "subscribe", job: "a" }, { action: "subscribe", job: "x" }]);
  ws.receive({ type: "snapshot", jobs: [job("a", 4)] });
  ws.receive({ type: "job", job: job("a", 4) });
  ws.receive({ type: "job", job: job("a", 5) });
  await settle();
  assert.deepEqual(events.updates.map(([, seq]) => seq), [3, 4, 5]);
  assert.deepEqual(user, [[3], 4, [], 5]);
});

test("not_found reaches onError of the watch still waiting for a state, not of the others", () => {
  const shown = recorder();
  const hidden = recorder();
  const waiting = recorder();
  watch("a", shown.callbacks, options);
  watch("hidden", hidden.callbacks, options);
  watch("waiting", waiting.callbacks, options);
  const ws = sockets[0];
  live(ws, [job("a", 1)]);
  // Answers follow the subscribes in order: a (already shown), hidden, waiting.
  ws.receive({ type: "job", job: job("a", 1) });
  ws.receive({ type: "error", error: "not_found", detail: "No such job." });
  ws.receive({ type: "job", job: job("waiting", 2) });
  assert.deepEqual(hidden.events.errors, ["not_found"]);
  assert.deepEqual(shown.events.errors, []);
  assert.deepEqual(waiting.events.errors, []);
  assert.deepEqual(waiting.events.updates, [["waiting", 2, "PROGRESS"]]);
  assert.deepEqual(hidden.events.updates, []);
});

test("the not_found answering an unsubscribe of a hidden job is nobody's error", () => {
  watchUser({}, options); // keeps the socket open across the stop below
  const hidden = recorder();
  const stopHidden = watch("hidden", hidden.callbacks, options);
  const ws = sockets[0];
  live(ws);
  ws.receive({ type: "error", error: "not_found", detail: "No such job." });
  assert.deepEqual(hidden.events.errors, ["not_found"]);
  stopHidden();
  const later = recorder();
  watch("later", later.callbacks, options);
  assert.deepEqual(ws.sent.slice(-2), [{ action: "unsubscribe", job: "hidden" }, { action: "subscribe", job: "later" }]);
  ws.receive({ type: "error", error: "not_found", detail: "No such job." }); // for the unsubscribe
  assert.deepEqual(later.events.errors, []);
  ws.receive({ type: "error", error: "bad_frame", detail: "whatever" });
  assert.deepEqual(later.events.errors, [], "only not_found is a watch's error");
  ws.receive({ type: "error", error: "not_found", detail: "No such job." }); // for the subscribe
  assert.deepEqual(later.events.errors, ["not_found"]);
});

test("watchUser gets the status, the snapshot and every newer state of any job", async () => {
  const events = { statuses: [], snapshots: [], jobs: [] };
  watchUser({
    onStatus: (s) => events.statuses.push(s),
    onSnapshot: (jobs) => events.snapshots.push(jobs.map((j) => [j.id, j.seq])),
    onJob: (j) => events.jobs.push([j.id, j.seq]),
  }, options);
  const ws = sockets[0];
  live(ws, [job("a", 2), job("b", 1)]);
  ws.receive({ type: "job", job: job("a", 3) });
  ws.receive({ type: "job", job: job("a", 3) });
  ws.receive({ type: "job", job: job("b", 2, "SUCCESS") });
  ws.receive({ type: "job", job: job("c", 1) });
  await settle();
  assert.deepEqual(events.statuses, ["connecting", "live"]);
  assert.deepEqual(events.snapshots, [[["a", 2], ["b", 1]]]);
  assert.deepEqual(events.jobs, [["a", 3], ["b", 2], ["c", 1]]);

  const late = { statuses: [], snapshots: [] };
  watchUser({ onStatus: (s) => late.statuses.push(s), onSnapshot: (jobs) => late.snapshots.push(jobs.length) }, options);
  await settle();
  assert.equal(sockets.length, 1);
  assert.deepEqual(late.statuses, ["live"]);
  assert.deepEqual(late.snapshots, [3], "one joining later is handed the jobs known so far");
});

test("cancel goes through the shared socket and says false while it is not connected", () => {
  assert.equal(cancel("a"), false);
  watch("a", recorder().callbacks, options);
  assert.equal(cancel("a"), false, "not open yet");
  live(sockets[0]);
  assert.equal(cancel("a"), true);
  assert.deepEqual(sockets[0].sent.at(-1), { action: "cancel", job: "a" });
});

// A page whose elements carry `attributes` (name -> value), as the templates set them.
function withPage(attributes, fn) {
  globalThis.document = {
    querySelector: (selector) => {
      const name = selector.slice(1, -1);
      return Object.hasOwn(attributes, name) ? { getAttribute: () => attributes[name] } : null;
    },
  };
  try {
    return fn();
  } finally {
    delete globalThis.document;
  }
}

test("the ws URL comes from options, else the page's data-progress-ws-url, the scheme following the page", () => {
  const { url, ...https } = { ...options, location: { protocol: "https:", host: "example.com" } };
  watch("a", {}, { ...https, url: "/other/ws/" });
  assert.equal(sockets.at(-1).url, "wss://example.com/other/ws/");
  withPage({ "data-progress-ws-url": "/page/ws/" }, () => watch("a", {}, https));
  assert.equal(sockets.at(-1).url, "wss://example.com/page/ws/");
  withPage({ "data-progress-ws-url": "/page/ws/" }, () => watch("a", {}, { ...https, url: "ws://elsewhere/ws/" }));
  assert.equal(sockets.at(-1).url, "ws://elsewhere/ws/", "a full URL is taken as it is");
  assert.equal(sockets.length, 3, "one socket per URL");
});

test("a URL neither the options nor the page give is an error naming its attribute, not a guess", () => {
  for (const [option, attribute] of [
    ["url", "data-progress-ws-url"],
    ["eventsUrl", "data-progress-events-url"],
    ["jobEventsUrl", "data-progress-job-events-url"],
    ["cancelUrl", "data-progress-cancel-url"],
  ]) {
    const { [option]: _, ...rest } = options;
    assert.throws(() => watch("a", {}, rest), new RegExp(attribute), option);
    assert.throws(() => watchUser({}, rest), new RegExp(attribute), option);
    withPage({ [attribute]: URLS[option] }, () => watch("a", {}, rest));
  }
  assert.equal(sockets.length, 1, "the page's URLs are the same connection's");
  assert.equal(sockets[0].url, "ws://test/ws/progress/");
});

test("a watch without a job id is a mistake reported at once", () => {
  assert.throws(() => watch("", {}, options), TypeError);
  assert.throws(() => watch(undefined, {}, options), TypeError);
  assert.equal(sockets.length, 0);
});

test("requests left unanswered by a dropped connection do not take the new one's not_found", () => {
  watchUser({}, options);
  const stopGone = watch("gone", recorder().callbacks, options);
  live(sockets[0]);
  sockets[0].drop();
  stopGone(); // while disconnected: nothing to send
  const hidden = recorder();
  watch("hidden", hidden.callbacks, options);
  timers.shift().fn();
  live(sockets[1]);
  assert.deepEqual(sockets[1].sent, [{ action: "subscribe", job: "hidden" }]);
  sockets[1].receive({ type: "error", error: "not_found", detail: "No such job." });
  assert.deepEqual(hidden.events.errors, ["not_found"]);
});

test("a watch gets its job's log frames and the connection status, not other jobs' logs", async () => {
  const logs = [];
  const statuses = [];
  watch("a", { onLog: (frame) => logs.push(frame.lines.length), onStatus: (s) => statuses.push(s) }, options);
  const ws = sockets[0];
  live(ws, [job("a", 1)]);
  ws.receive({ type: "log", job: "a", lines: [{ n: 1, text: "x" }, { n: 2, text: "y" }] });
  ws.receive({ type: "log", job: "b", lines: [{ n: 1, text: "not mine" }] });
  await settle();
  assert.deepEqual(logs, [2]);
  assert.deepEqual(statuses, ["connecting", "live"]);
});

test("keepAfterFinish keeps the watch subscribed after the final state, for late log lines", async () => {
  const logs = [];
  let finishes = 0;
  watch("a", { keepAfterFinish: true, onFinish: () => (finishes += 1), onLog: (f) => logs.push(f) }, options);
  const ws = sockets[0];
  live(ws, [job("a", 1)]);
  ws.receive({ type: "job", job: job("a", 2, "FAILURE") });
  ws.receive({ type: "log", job: "a", lines: [{ n: 9, text: "last words" }] });
  await settle();
  assert.equal(finishes, 1);
  assert.equal(logs.length, 1);
  assert.equal(ws.sent.filter((frame) => frame.action === "unsubscribe").length, 0);
  assert.equal(ws.closedWith, null);
});
