import { test } from "node:test";
import assert from "node:assert/strict";
import { LogStore, MAX_LINES } from "../../progress/static/progress/logs.js";

const line = (n, text = `line ${n}`) => ({ n, ts: 1, level: "INFO", text });

test("live lines are kept once each and in order", () => {
  const store = new LogStore();
  assert.deepEqual(store.apply([line(1), line(2)]).added.map((l) => l.n), [1, 2]);
  const again = store.apply([line(2), line(3)]);
  assert.deepEqual(again.added.map((l) => l.n), [3]);
  assert.equal(again.inOrder, true);
  assert.deepEqual(store.lines().map((l) => l.n), [1, 2, 3]);
});

test("a replay after live lines fills the gap before them, without duplicates", () => {
  const store = new LogStore();
  store.apply([line(5)]);
  const replay = store.apply([line(3), line(4), line(5)]);
  assert.deepEqual(replay.added.map((l) => l.n), [3, 4]);
  assert.equal(replay.inOrder, false, "the page must redraw, not append");
  assert.deepEqual(store.lines().map((l) => l.n), [3, 4, 5]);
});

test("a reconnect's replay of lines already shown adds nothing", () => {
  const store = new LogStore();
  store.apply([line(1), line(2), line(3)]);
  const replay = store.apply([line(1), line(2), line(3)]);
  assert.deepEqual(replay.added, []);
  assert.equal(store.size, 3);
});

test("malformed lines are ignored and the store stays bounded", () => {
  const store = new LogStore();
  assert.deepEqual(store.apply(null).added, []);
  store.apply([{ text: "no n" }, { n: "7" }, line(1.5), null]);
  assert.equal(store.size, 0);
  store.apply(Array.from({ length: MAX_LINES + 10 }, (_, i) => line(i + 1)));
  assert.equal(store.size, MAX_LINES);
  assert.equal(store.lines()[0].n, 11, "the oldest lines go first");
});
