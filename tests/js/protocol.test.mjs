// protocol.js: the protocol's names, frozen, and the seq rule every module applies through it.
// tests/unit/test_js_protocol.py checks the names against the Python enums.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as protocol from "../../progress/static/progress/protocol.js";
import { FINAL_STATES, State, isFinal, isNewer } from "../../progress/static/progress/protocol.js";

const job = (seq, extra = {}) => ({ id: "a", seq, state: State.PROGRESS, ...extra });

test("every name the module exports is frozen, so no page can change the protocol", () => {
  const names = Object.entries(protocol).filter(([, value]) => typeof value !== "function");
  assert.deepEqual(names.map(([name]) => name).sort(), [
    "Action", "CloseCode", "ErrorCode", "EventType", "FINAL_STATES", "HELD_PARAMETER", "MAX_HELD",
    "PROTOCOL_VERSION", "RETRYABLE_STATES", "State",
  ]);
  for (const [name, value] of names) assert.equal(Object.isFrozen(value), true, name);
  assert.throws(() => {
    State.DONE = "DONE"; // modules are strict: writing to a frozen object throws
  }, TypeError);
});

test("only SUCCESS, FAILURE and REVOKED end a job (they hide the Cancel button)", () => {
  assert.deepEqual(Object.values(State).filter(isFinal), ["SUCCESS", "FAILURE", "REVOKED"]);
  assert.deepEqual([...FINAL_STATES], Object.values(State).filter(isFinal));
  for (const state of ["PENDING", "STARTED", "PROGRESS", "RETRY", "success", undefined, null]) {
    assert.equal(isFinal(state), false, String(state));
  }
});

test("isNewer: with nothing held any state is news; after that only a strictly higher seq", () => {
  assert.equal(isNewer(undefined, job(1)), true);
  assert.equal(isNewer(null, job(0)), true);
  assert.equal(isNewer(job(4), job(5)), true);
  assert.equal(isNewer(job(4), job(40)), true, "seqs compare as numbers, not text");
  assert.equal(isNewer(job(5), job(5)), false, "a repeat is not news");
  assert.equal(isNewer(job(5), job(4)), false, "an older state never replaces a newer one");
  assert.equal(isNewer(job(5, { state: State.SUCCESS }), job(2, { state: State.PROGRESS })), false,
    "a stale frame must not un-finish a job");
});

test("isNewer: a state without a usable seq, or no state at all, never replaces one held", () => {
  assert.equal(isNewer(job(3), job(undefined)), false);
  assert.equal(isNewer(job(3), job(null)), false);
  assert.equal(isNewer(job(3), job(Number.NaN)), false);
  assert.equal(isNewer(job(3), null), false);
  assert.equal(isNewer(job(3), undefined), false);
});

test("withHeld names the running jobs held, at most MAX_HELD, in a URL a proxy's 8 KiB line takes", async () => {
  const { withHeld, MAX_HELD } = await import("../../progress/static/progress/protocol.js");
  const id = (n) => `3f2b8c1e-6d4a-4f0e-9a57-${String(n).padStart(12, "0")}`;
  const jobs = Array.from({ length: 150 }, (_, n) => ({ id: id(n), seq: 99999, epoch: "9f1c2e4ab7d0", state: State.PROGRESS }));
  jobs.push({ id: id(999), seq: 3, epoch: "9f1c2e4ab7d0", state: State.SUCCESS });
  const url = withHeld("/ws/progress/", jobs);
  const held = new URL(url, "ws://h").searchParams.get("held").split(",");
  assert.equal(held.length, MAX_HELD);
  assert.ok(!held.some((entry) => entry.startsWith(id(999))), "an ended job is not held");
  assert.ok(`GET ${url} HTTP/1.1`.length < 8192, String(url.length));
  assert.equal(withHeld("/ws/progress/?x=1", [jobs[0]]), `/ws/progress/?x=1&held=${encodeURIComponent(`${id(0)}:9f1c2e4ab7d0:99999`)}`);
  assert.equal(withHeld("/ws/progress/", []), "/ws/progress/", "nothing held, nothing said");
});
