// The fallback to server-sent events when WebSockets never deliver a snapshot (client.js, fallback.js).

import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { _reset, cancel, watch, watchUser } from "../../progress/static/progress/client.js";
import { EventStreamSource } from "../../progress/static/progress/fallback.js";
import { fakeConnection } from "./fakes.mjs";

const { sockets, sources, timers, fetches, options, clear } = fakeConnection();

afterEach(() => {
  _reset();
  clear();
});

const settle = () => new Promise((resolve) => setImmediate(resolve));
const job = (id, seq, state = "PROGRESS") => ({ id, seq, state, task: "t", created: "2025-11-21T10:00:00Z" });

// The first attempt errors before it opens; the reconnect opens and closes before any snapshot.
function blockWebSockets() {
  sockets.at(-1).drop(1006);
  timers.shift().fn();
  const second = sockets.at(-1);
  second.open();
  second.drop(1006);
}

function userRecorder() {
  const events = { statuses: [], snapshots: [], jobs: [] };
  const callbacks = {
    onStatus: (s) => events.statuses.push(s),
    onSnapshot: (jobs) => events.snapshots.push(jobs.map((j) => [j.id, j.seq])),
    onJob: (j) => events.jobs.push([j.id, j.seq, j.state]),
  };
  return { events, callbacks };
}

test("two attempts without a snapshot switch to /api/events/, which feeds both kinds of watch in seq order", async () => {
  const user = userRecorder();
  const updates = [];
  const statuses = [];
  watchUser(user.callbacks, options);
  watch("a", { onUpdate: (j) => updates.push(j.seq), onStatus: (s) => statuses.push(s) }, options);
  assert.equal(sockets.length, 1);
  blockWebSockets();
  assert.equal(sockets.length, 2, "no third WebSocket");
  assert.equal(timers.length, 0, "no reconnect is scheduled");
  assert.equal(sources.length, 1);
  assert.equal(sources[0].url, "/api/events/");

  const stream = sources[0];
  stream.open();
  stream.receive({ type: "snapshot", jobs: [job("a", 2), job("b", 1)] });
  stream.receive({ type: "job", job: job("a", 4) });
  stream.receive({ type: "job", job: job("a", 3) }); // older than what is shown: dropped
  stream.receive({ type: "job", job: job("b", 2, "SUCCESS") });
  stream.receive({ type: "job", job: job("a", 4) });
  stream.receive({ type: "job", job: job("a", 5, "SUCCESS") });
  await settle();
  assert.deepEqual(user.events.snapshots, [[["a", 2], ["b", 1]]]);
  assert.deepEqual(user.events.jobs, [["a", 4, "PROGRESS"], ["b", 2, "SUCCESS"], ["a", 5, "SUCCESS"]]);
  assert.deepEqual(updates, [2, 4, 5]);
  assert.deepEqual(user.events.statuses, ["connecting", "reconnecting", "live-sse"]);
  // The watch joined after "connecting" had gone out; it is handed the status of the moment.
  assert.deepEqual(statuses, ["reconnecting", "live-sse"]);
  assert.equal(sources.length, 1, "the user's own job needs no stream of its own");
});

test("a socket that delivered a snapshot once keeps reconnecting after drops, never falling back", () => {
  const user = userRecorder();
  watchUser(user.callbacks, options);
  sockets[0].open();
  sockets[0].receive({ type: "snapshot", jobs: [] });
  for (let attempt = 0; attempt < 4; attempt += 1) {
    sockets.at(-1).drop(1006);
    assert.equal(timers.length, 1, "a reconnect is scheduled");
    timers.shift().fn();
  }
  assert.equal(sockets.length, 5);
  assert.equal(sources.length, 0);
  sockets.at(-1).open();
  sockets.at(-1).receive({ type: "snapshot", jobs: [job("a", 1)] });
  assert.deepEqual(user.events.statuses, ["connecting", "live", "reconnecting", "live"]);
});

test("the server's own refusals (too many tabs, try again later) do not count towards falling back", () => {
  watchUser({}, options);
  sockets[0].open();
  sockets[0].drop(4429);
  timers.shift().fn();
  sockets[1].open();
  sockets[1].drop(1013);
  timers.shift().fn();
  assert.equal(sources.length, 0);
  sockets[2].drop(1006);
  timers.shift().fn();
  assert.equal(sources.length, 0, "one failure so far");
  sockets[3].drop(1006);
  assert.equal(sources.length, 1);
});

test("without EventSource there is nothing to fall back to, and the socket keeps reconnecting", () => {
  watchUser({}, { ...options, EventSource: undefined });
  for (let attempt = 0; attempt < 3; attempt += 1) {
    sockets.at(-1).drop(1006);
    timers.shift().fn();
  }
  assert.equal(sockets.length, 4);
  assert.equal(sources.length, 0);
});

test("watch() of a job the user's stream never shows opens its own stream and closes it after the final state", async () => {
  const updates = [];
  const finishes = [];
  watchUser({}, options);
  watch("theirs", { onUpdate: (j) => updates.push([j.seq, j.state]), onFinish: (j) => finishes.push(j.seq) }, options);
  blockWebSockets();
  const stream = sources[0];
  assert.equal(sources.length, 1, "its own stream waits for the snapshot, which may hold the job");
  stream.receive({ type: "snapshot", jobs: [job("mine", 1)] });
  assert.equal(sources.length, 2);
  const alone = sources[1];
  assert.equal(alone.url, "/api/jobs/theirs/events/");
  alone.receive({ type: "job", job: job("theirs", 3) });
  alone.receive({ type: "job", job: job("theirs", 2) });
  alone.fail(0); // a dropped connection: the browser retries and the stream starts again
  alone.receive({ type: "job", job: job("theirs", 3) });
  assert.equal(alone.closed, false);
  alone.receive({ type: "job", job: job("theirs", 4, "REVOKED") });
  await settle();
  assert.equal(alone.closed, true, "closed, or the EventSource would reopen it");
  assert.deepEqual(updates, [[3, "PROGRESS"], [4, "REVOKED"]]);
  assert.deepEqual(finishes, [4]);
  assert.equal(stream.closed, false, "the user's stream stays");

  watch("later", {}, options); // after the snapshot: its stream opens at once
  assert.equal(sources.at(-1).url, "/api/jobs/later/events/");
  watch("mine", {}, options);
  assert.equal(sources.at(-1).url, "/api/jobs/later/events/", "the user's stream carries their own job");
});

test("a job stream refused before any state (a 404) tells the watch not_found", async () => {
  const errors = [];
  watch("hidden", { onError: (frame) => errors.push(frame.error) }, options);
  blockWebSockets();
  sources[0].receive({ type: "snapshot", jobs: [] });
  sources[1].fail(2);
  await settle();
  assert.deepEqual(errors, ["not_found"]);
  assert.equal(sources[1].closed, true);
});

test("stop() closes the job's own stream, and the last stop closes the user's stream too", () => {
  const stop = watch("theirs", {}, options);
  blockWebSockets();
  sources[0].receive({ type: "snapshot", jobs: [] });
  stop();
  assert.equal(sources[1].closed, true);
  assert.equal(sources[0].closed, true);
});

test("stream errors show reconnecting; one the browser gave up on is reopened after a backoff", () => {
  const user = userRecorder();
  watchUser(user.callbacks, options);
  blockWebSockets();
  sources[0].receive({ type: "snapshot", jobs: [job("a", 1)] });
  sources[0].fail(0);
  sources[0].receive({ type: "snapshot", jobs: [job("a", 2)] });
  sources[0].fail(2);
  assert.equal(sources[0].closed, true);
  assert.equal(timers.length, 1);
  timers.shift().fn();
  assert.equal(sources.length, 2);
  // Reopened by the page, it says what it holds: the snapshot then tells what it replaced.
  assert.equal(sources[1].url, "/api/events/?held=a%3A%3A2");
  sources[1].receive({ type: "snapshot", jobs: [job("a", 2), job("b", 1)] });
  assert.deepEqual(user.events.statuses, [
    "connecting", "reconnecting", "live-sse", "reconnecting", "live-sse", "reconnecting", "live-sse",
  ]);
  assert.deepEqual(user.events.snapshots, [[["a", 1]], [["a", 2]], [["b", 1]]]);
});

test("cancel in fallback posts to the cancel URL with the CSRF token", async () => {
  globalThis.document = { cookie: "other=1; csrftoken=tok%3D1" };
  try {
    watch("a", {}, options);
    blockWebSockets();
    sources[0].receive({ type: "snapshot", jobs: [job("a", 1)] });
    assert.equal(cancel("a"), true);
  } finally {
    delete globalThis.document;
  }
  await settle();
  assert.equal(fetches.length, 1);
  assert.equal(fetches[0].url, "/api/jobs/a/cancel/");
  assert.equal(fetches[0].init.method, "POST");
  assert.equal(fetches[0].init.headers["X-CSRFToken"], "tok=1");
  assert.equal(sockets.every((ws) => ws.sent.every((frame) => frame.action !== "cancel")), true);
});

test("the fallback's URLs come from options, else from the page's data-progress-*-url attributes", async () => {
  globalThis.document = { cookie: "csrftoken=t" };
  try {
    watch("theirs", {}, { ...options, url: "/one/", eventsUrl: "/o/events/", jobEventsUrl: "/o/{id}/ev/", cancelUrl: "/o/{id}/x/" });
    blockWebSockets();
    sources.at(-1).receive({ type: "snapshot", jobs: [] });
    assert.deepEqual(sources.map((source) => source.url), ["/o/events/", "/o/theirs/ev/"]);
    assert.equal(cancel("theirs"), true);
  } finally {
    delete globalThis.document;
  }
  const page = {
    "data-progress-events-url": "/p/events/",
    "data-progress-job-events-url": "/p/{id}/ev/",
    "data-progress-cancel-url": "/p/{id}/x/",
  };
  const { eventsUrl, jobEventsUrl, cancelUrl, ...rest } = options;
  globalThis.document = {
    cookie: "csrftoken=t",
    querySelector: (selector) => {
      const name = selector.slice(1, -1);
      return Object.hasOwn(page, name) ? { getAttribute: () => page[name] } : null;
    },
  };
  try {
    watch("a b", {}, { ...rest, url: "/two/" });
    blockWebSockets();
    sources.at(-1).receive({ type: "snapshot", jobs: [] });
    assert.deepEqual(sources.slice(2).map((source) => source.url), ["/p/events/", "/p/a%20b/ev/"]);
    assert.equal(cancel("a b"), true);
  } finally {
    delete globalThis.document;
  }
  await settle();
  assert.deepEqual(fetches.map((call) => call.url), ["/o/theirs/x/", "/p/a%20b/x/"]);
});

test("the stream's last frames say what the socket's close would: signed out stops, a limit waits", () => {
  const user = userRecorder();
  watchUser(user.callbacks, options);
  blockWebSockets();
  sources[0].receive({ type: "snapshot", jobs: [] });
  sources[0].receive({ type: "error", error: "too_many_sockets", detail: "Too many open tabs." });
  assert.equal(sources[0].closed, true, "closed before the EventSource reconnects at once");
  assert.deepEqual(timers.map((timer) => timer.ms), [15_000], "the full backoff cap, as after a 4429");
  timers.shift().fn();
  sources[1].receive({ type: "snapshot", jobs: [] });
  sources[1].receive({ type: "error", error: "session_ended", detail: "You were signed out; log in again." });
  assert.equal(sources[1].closed, true);
  assert.equal(timers.length, 0, "a reconnect would be refused");
  assert.deepEqual(user.events.statuses.slice(-3), ["reconnecting", "live-sse", "signed-out"]);
  assert.equal(cancel("a"), false);
});

test("an event stream source is given the server's URLs; it has none of its own", () => {
  const urls = { jobEventsUrl: "/api/jobs/{id}/events/", cancelUrl: "/api/jobs/{id}/cancel/" };
  assert.doesNotThrow(() => new EventStreamSource("/api/events/", urls));
  assert.throws(() => new EventStreamSource("", urls), /needs url/);
  assert.throws(() => new EventStreamSource("/api/events/", { ...urls, jobEventsUrl: undefined }), /needs jobEventsUrl/);
  assert.throws(() => new EventStreamSource("/api/events/", { ...urls, cancelUrl: "" }), /needs cancelUrl/);
});
