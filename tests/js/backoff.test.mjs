import { test } from "node:test";
import assert from "node:assert/strict";
import { backoffDelay } from "../../progress/static/progress/backoff.js";

const top = () => 0.999999;

test("the longest possible wait doubles per failed attempt from 500 ms", () => {
  assert.deepEqual([0, 1, 2, 3].map((n) => backoffDelay(n, { random: top })), [499, 999, 1999, 3999]);
});

test("a long outage never waits more than 15 s between tries", () => {
  assert.equal(backoffDelay(5, { random: top }), 14999);
  assert.equal(backoffDelay(500, { random: top }), 14999);
});

test("full jitter: the delay is anywhere from 0 to the ceiling", () => {
  assert.equal(backoffDelay(3, { random: () => 0 }), 0);
  assert.equal(backoffDelay(3, { random: () => 0.5 }), 2000);
  for (let i = 0; i < 200; i++) {
    const delay = backoffDelay(4);
    assert.ok(delay >= 0 && delay < 8000, `delay ${delay} out of range`);
  }
});

test("base and cap are configurable", () => {
  assert.equal(backoffDelay(2, { base: 100, cap: 300, random: () => 0.5 }), 150);
});
