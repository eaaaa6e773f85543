// The recovery table (tests/conformance/recovery.json) against the browser's JobStore and
// ProgressSocket: what a page ends up showing after each case. Python's NewestSeqs runs the
// same table in tests/unit/protocol/test_conformance.py, and the server its reconnect cases
// in tests/integration/test_recovery.py.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { JobStore } from "../../progress/static/progress/jobs.js";
import { ProgressSocket } from "../../progress/static/progress/socket.js";
import { fakeWebSocketClass } from "./fakes.mjs";

const TABLE = JSON.parse(readFileSync(new URL("../conformance/recovery.json", import.meta.url), "utf8"));
const TOTAL = 300;

const state = ([epoch, seq, name, current], id = "j") => ({
  id, epoch, seq, state: name, current, total: TOTAL, percent: (current * 100) / TOTAL,
  created: "2026-12-07T10:00:00Z",
});

for (const row of TABLE.offers) {
  test(`offers: ${row.name}`, () => {
    const store = new JobStore();
    const applied = row.offers.map((offer) => store.apply(state(offer)));
    assert.deepEqual(applied, row.applied);
    const shown = store.get("j");
    assert.deepEqual([shown.epoch, shown.seq, shown.state], row.shows);
    assert.equal(shown.current, row.bar, "the bar's figure");
  });
}

const JOB = "3f2b8c1e-6d4a-4f0e-9a57-2c8e1b7d9a10";

// What the case's client holds, relative to `current`, the server's [epoch, seq].
function heldOf(row, [epoch, seq]) {
  if (row.held === null) return null;
  return [
    row.held.epoch === "same" ? epoch : "an-older-epoch",
    seq + { current: 0, older: -2, future: 5 }[row.held.seq],
  ];
}

for (const row of TABLE.reconnects) {
  test(`reconnects: ${row.name}`, () => {
    const sockets = [];
    const timers = [];
    const socket = new ProgressSocket("ws://test/ws/progress/", {
      WebSocket: fakeWebSocketClass(sockets),
      schedule: (fn) => timers.push(fn),
      unschedule: () => {},
      random: () => 0,
    });
    const server = ["e1", 7];
    const held = heldOf(row, server);
    socket.connect();
    sockets[0].open();
    sockets[0].receive({ type: "snapshot", jobs: held ? [state([...held, "PROGRESS", 10], JOB)] : [] });
    sockets[0].drop(1001);
    timers.shift()();
    const url = new URL(sockets[1].url);
    // The reconnect says what the page holds, and nothing when it holds nothing.
    assert.equal(url.searchParams.get("held"), held ? `${JOB}:${held[0]}:${held[1]}` : null);
    sockets[1].open();
    const recovery = held ? { recovered: row.recovered, replaced: row.replaced ? [JOB] : [] } : {};
    sockets[1].receive({ type: "snapshot", jobs: [state([...server, "PROGRESS", 20], JOB)], protocol: 2, ...recovery });
    const shown = socket.store.get(JOB);
    // Continuous: the higher seq of the one epoch; replaced, or nothing held: the server's.
    const expected = held && !row.replaced && held[1] > server[1] ? held : server;
    assert.deepEqual([shown.epoch, shown.seq], expected);
  });
}
