import { test } from "node:test";
import assert from "node:assert/strict";
import { ProgressSocket, socketUrl } from "../../progress/static/progress/socket.js";
import { fakeWebSocketClass } from "./fakes.mjs";

function harness(options = {}) {
  const sockets = [];
  const FakeWebSocket = fakeWebSocketClass(sockets);
  const timers = [];
  const events = { snapshots: [], jobs: [], errors: [], statuses: [] };
  const socket = new ProgressSocket("ws://test/ws/progress/", {
    WebSocket: FakeWebSocket,
    schedule: (fn, ms) => { timers.push({ fn, ms }); return timers.length; },
    unschedule: () => {},
    random: () => 0.5,
    onSnapshot: (jobs) => events.snapshots.push(jobs),
    onJob: (job) => events.jobs.push(job),
    onError: (frame) => events.errors.push(frame),
    onStatus: (status) => events.statuses.push(status),
    ...options,
  });
  const runTimer = () => timers.shift().fn();
  return { socket, sockets, timers, events, runTimer };
}

const job = (id, seq, state = "PROGRESS") => ({ id, seq, state, created: "2025-11-21T10:00:00Z" });

test("the ws URL follows the page scheme", () => {
  assert.equal(socketUrl("/ws/progress/", { protocol: "https:", host: "example.com" }), "wss://example.com/ws/progress/");
  assert.equal(socketUrl("/ws/progress/", { protocol: "http:", host: "localhost:8000" }), "ws://localhost:8000/ws/progress/");
});

test("snapshot then live jobs reach the page, stale states are dropped", () => {
  const { socket, sockets, events } = harness();
  socket.connect();
  assert.deepEqual(events.statuses, ["connecting"]);
  const ws = sockets[0];
  ws.open();
  ws.receive({ type: "snapshot", jobs: [job("a", 3), job("b", 1)] });
  assert.deepEqual(events.snapshots[0].map((j) => j.id), ["a", "b"]);
  assert.deepEqual(events.statuses, ["connecting", "live"]);

  ws.receive({ type: "job", job: job("a", 4) });
  ws.receive({ type: "job", job: job("a", 2) });
  ws.receive({ type: "job", job: job("a", 4) });
  ws.receive("not json");
  ws.receive({ type: "job", job: job("a", 5, "SUCCESS") });
  assert.deepEqual(events.jobs.map((j) => [j.id, j.seq]), [["a", 4], ["a", 5]]);
  assert.equal(socket.store.get("a").state, "SUCCESS");
});

test("after a drop it reconnects after a backoff delay, re-subscribes and drops stale snapshot entries", () => {
  const { socket, sockets, timers, events, runTimer } = harness();
  socket.subscribe("a");
  socket.connect();
  sockets[0].open();
  assert.deepEqual(sockets[0].sent, [{ action: "subscribe", job: "a" }]);
  sockets[0].receive({ type: "snapshot", jobs: [job("a", 3)] });

  sockets[0].drop();
  assert.equal(events.statuses.at(-1), "reconnecting");
  assert.equal(sockets.length, 1, "must wait before reconnecting");
  assert.equal(timers.length, 1);
  assert.equal(timers[0].ms, 250, "attempt 0: random(0, 500 ms)");

  runTimer();
  assert.equal(sockets.length, 2);
  sockets[1].open();
  assert.deepEqual(sockets[1].sent, [{ action: "subscribe", job: "a" }]);
  sockets[1].receive({ type: "snapshot", jobs: [job("a", 3), job("b", 1)] });
  assert.deepEqual(events.snapshots.at(-1).map((j) => j.id), ["b"]);
  assert.equal(events.statuses.at(-1), "live");
});

test("failed reconnects wait longer each time and a snapshot resets the delay", () => {
  const { socket, sockets, timers, runTimer } = harness();
  socket.connect();
  sockets[0].drop();
  runTimer();
  sockets[1].drop();
  runTimer();
  sockets[2].drop();
  assert.deepEqual(timers.map((t) => t.ms), [1000]);
  runTimer();
  sockets[3].open();
  sockets[3].receive({ type: "snapshot", jobs: [] });
  sockets[3].drop();
  assert.equal(timers[0].ms, 250);
});

test("too many sockets (4429) waits the full cap", () => {
  const { socket, sockets, timers } = harness();
  socket.connect();
  sockets[0].open();
  sockets[0].drop(4429);
  assert.equal(timers[0].ms, 15000);
});

test("error frames go to onError and keep the connection", () => {
  const { socket, sockets, events, timers } = harness();
  socket.connect();
  sockets[0].open();
  sockets[0].receive({ type: "error", error: "not_found", detail: "No such job." });
  assert.deepEqual(events.errors, [{ type: "error", error: "not_found", detail: "No such job." }]);
  assert.equal(timers.length, 0);
  assert.equal(socket.cancel("a"), true);
  assert.deepEqual(sockets[0].sent.at(-1), { action: "cancel", job: "a" });
});

test("unsubscribe stops re-subscribing after reconnect", () => {
  const { socket, sockets, runTimer } = harness();
  socket.connect();
  sockets[0].open();
  socket.subscribe("a");
  socket.unsubscribe("a");
  assert.deepEqual(sockets[0].sent, [{ action: "subscribe", job: "a" }, { action: "unsubscribe", job: "a" }]);
  sockets[0].drop();
  runTimer();
  sockets[1].open();
  assert.deepEqual(sockets[1].sent, []);
});

test("messages are not sent while disconnected", () => {
  const { socket, sockets } = harness();
  socket.connect();
  assert.equal(socket.cancel("a"), false);
  socket.subscribe("a");
  assert.deepEqual(sockets[0].sent, []);
});

test("a deliberate close does not reconnect", () => {
  const { socket, sockets, timers, events } = harness();
  socket.connect();
  sockets[0].open();
  socket.close();
  assert.equal(sockets[0].closedWith, 1000);
  sockets[0].drop(1000);
  sockets[0].receive({ type: "job", job: job("a", 1) });
  assert.equal(timers.length, 0);
  assert.equal(sockets.length, 1);
  assert.deepEqual(events.jobs, []);
  assert.notEqual(events.statuses.at(-1), "reconnecting");
});

test("close() during a pending reconnect cancels it", () => {
  const { socket, sockets, timers, runTimer } = harness();
  socket.connect();
  sockets[0].drop();
  socket.close();
  runTimer();
  assert.equal(sockets.length, 1);
  assert.equal(timers.length, 0);
});

test("a server going away (1001) is reconnected to, after a jittered delay", () => {
  const { socket, sockets, timers, events, runTimer } = harness();
  socket.connect();
  sockets[0].open();
  sockets[0].receive({ type: "snapshot", jobs: [job("a", 3)] });
  sockets[0].drop(1001);
  assert.equal(events.statuses.at(-1), "reconnecting");
  assert.equal(timers[0].ms, 250);
  runTimer();
  sockets[1].open();
  sockets[1].receive({ type: "snapshot", jobs: [job("a", 7)] });
  assert.equal(socket.store.get("a").seq, 7);
  assert.equal(events.statuses.at(-1), "live");
});

test("a session ended by logout (4401) stops reconnecting and says signed out", () => {
  const { socket, sockets, timers, events } = harness();
  socket.connect();
  sockets[0].open();
  sockets[0].receive({ type: "snapshot", jobs: [] });
  sockets[0].receive({ type: "error", error: "session_ended", detail: "You were signed out; log in again." });
  sockets[0].drop(4401);
  assert.equal(events.statuses.at(-1), "signed-out");
  assert.equal(timers.length, 0, "no reconnect: the handshake would be refused");
  assert.equal(sockets.length, 1);
});

test("log frames reach onLog; malformed ones are dropped", () => {
  const logs = [];
  const { socket, sockets } = harness({ onLog: (frame) => logs.push(frame) });
  socket.connect();
  sockets[0].open();
  sockets[0].receive({ type: "log", job: "a", lines: [{ n: 1, text: "hi" }] });
  sockets[0].receive({ type: "log", job: "a", lines: "nope" });
  sockets[0].receive({ type: "log", lines: [] });
  assert.deepEqual(logs.map((frame) => frame.lines.length), [1]);
});
