import { test } from "node:test";
import assert from "node:assert/strict";
import { EtaSmoother } from "../../progress/static/progress/eta.js";

const spread = (values) => Math.max(...values) - Math.min(...values);

function smoother(options = {}) {
  const clock = { t: 0 };
  const eta = new EtaSmoother({ now: () => clock.t, ...options });
  return { eta, clock };
}

test("jittery server estimates are calmed: the shown spread is much smaller", () => {
  const { eta, clock } = smoother();
  const inputs = [60, 80, 50, 75, 55, 70];
  const shown = inputs.map((value, i) => {
    clock.t = i;
    return eta.update("a", value);
  });
  assert.ok(spread(shown) < spread(inputs) / 3, `shown ${shown} vs inputs ${inputs}`);
  for (const value of shown) assert.ok(value >= 50 && value <= 80, `${value} left the input range`);
});

test("an honest, steadily falling estimate is followed closely and keeps falling", () => {
  const { eta, clock } = smoother();
  let previous = Infinity;
  for (let i = 0; i < 60; i += 1) {
    clock.t = i;
    // Small jitter around the truth, as a smoothed server rate gives.
    const truth = 120 - i;
    const shown = eta.update("a", truth + (i % 2 ? 1.5 : -1.5));
    assert.ok(Math.abs(shown - truth) < 3, `at ${i}s showed ${shown}, truth ${truth}`);
    assert.ok(shown < previous, `rose from ${previous} to ${shown} at ${i}s`);
    previous = shown;
  }
});

test("between updates the shown value counts down with elapsed time, never below zero", () => {
  const { eta, clock } = smoother();
  assert.equal(eta.update("a", 30), 30);
  clock.t = 10;
  assert.equal(eta.current("a"), 20);
  // Server agrees with the countdown: nothing to blend.
  assert.equal(eta.update("a", 20), 20);
  clock.t = 100;
  assert.equal(eta.current("a"), 0);
  assert.equal(eta.update("b", -5), 0);
});

test("a change of pace beyond resetRatio is taken as-is, either way", () => {
  const { eta, clock } = smoother();
  eta.update("a", 60);
  clock.t = 1;
  assert.equal(eta.update("a", 600), 600, "10x slower");
  clock.t = 2;
  assert.equal(eta.update("a", 30), 30, "20x faster");
  clock.t = 3;
  // Within the ratio: blended, not taken.
  const blended = eta.update("a", 50);
  assert.ok(blended > 29 && blended < 50, `blended to ${blended}`);
  // Counted down to zero while the server still sees work left: believe the server.
  clock.t = 200;
  assert.equal(eta.update("a", 15), 15);
});

test("a null estimate returns null and forgets the job", () => {
  const { eta, clock } = smoother();
  eta.update("a", 60);
  clock.t = 1;
  assert.equal(eta.update("a", null), null);
  assert.equal(eta.current("a"), null);
  clock.t = 2;
  // Starts fresh: no blending with the forgotten 60.
  assert.equal(eta.update("a", 40), 40);
  eta.forget("a");
  assert.equal(eta.current("a"), null);
  assert.equal(eta.update("a", undefined), null);
  assert.equal(eta.update("a", Number.NaN), null);
});

test("each job is smoothed on its own", () => {
  const { eta, clock } = smoother();
  eta.update("a", 60);
  eta.update("b", 300);
  clock.t = 1;
  const a = eta.update("a", 80);
  const b = eta.update("b", 250);
  assert.ok(Math.abs(a - (59 + 0.3 * 21)) < 1e-9, `a=${a}`);
  assert.ok(Math.abs(b - (299 + 0.3 * -49)) < 1e-9, `b=${b}`);
  eta.forget("a");
  assert.equal(eta.current("a"), null);
  assert.ok(eta.current("b") > 0);
});

test("alpha and resetRatio are options; the default clock works without one", () => {
  const { eta, clock } = smoother({ alpha: 1, resetRatio: 100 });
  eta.update("a", 60);
  clock.t = 1;
  assert.equal(eta.update("a", 600), 600);
  const real = new EtaSmoother();
  const first = real.update("x", 42);
  assert.equal(first, 42);
  assert.ok(real.current("x") <= 42 && real.current("x") > 41);
});
