import { test } from "node:test";
import assert from "node:assert/strict";
import { RETRYABLE_STATES, canRetry } from "../../progress/static/progress/jobs.js";
import { State } from "../../progress/static/progress/protocol.js";
import { retryJob } from "../../progress/static/progress/api.js";

const job = (state, extra = {}) => ({ id: "j1", seq: 3, state, created: "2026-12-03T10:00:00Z", ...extra });

test("only a failed or cancelled job that is not a part of a group offers Retry", () => {
  const offered = Object.values(State).filter((state) => canRetry(job(state)));
  assert.deepEqual(offered, ["FAILURE", "REVOKED"]);
  assert.deepEqual([...RETRYABLE_STATES], ["FAILURE", "REVOKED"]);
  assert.equal(canRetry(job("FAILURE", { parent: "g1" })), false);
  assert.equal(canRetry(job("FAILURE", { retry_of: "j0" })), true, "a retry can be retried again");
  assert.equal(canRetry(null), false);
  assert.equal(canRetry({}), false);
});

const reply = (status, data) => async (url, init) => {
  reply.seen = { url, init };
  return { status, json: async () => data };
};

test("a retry POSTs with the CSRF token and no body, and gives back the new job", async () => {
  const result = await retryJob("/api/jobs/j1/retry/", { fetch: reply(201, job("PENDING", { id: "j2", retry_of: "j1" })), token: "tok" });
  assert.equal(result.job.id, "j2");
  assert.equal(result.error, undefined);
  assert.equal(reply.seen.url, "/api/jobs/j1/retry/");
  assert.equal(reply.seen.init.method, "POST");
  assert.equal(reply.seen.init.headers["X-CSRFToken"], "tok");
  assert.equal(reply.seen.init.body, undefined);
});

test("a refused retry explains itself in a sentence", async () => {
  const cases = [
    [409, { error: "not_retryable", detail: "Only a failed or cancelled job can be retried; this one is SUCCESS." },
      "Could not retry this job. Only a failed or cancelled job can be retried; this one is SUCCESS."],
    [429, { error: "You already have 2 unfinished jobs; wait for one to end." },
      "Could not retry this job. You already have 2 unfinished jobs; wait for one to end."],
    [404, { error: "Not found." }, "Could not retry this job. Not found."],
    [403, { error: "CSRF check failed: send the X-CSRFToken header." }, "You are signed out. Reload the page to log in again."],
    [502, null, "Could not retry this job."],
    // A 201 without a job in it is not a success the page can show.
    [201, { oops: true }, "Could not retry this job."],
  ];
  for (const [status, data, expected] of cases) {
    const { job: made, error } = await retryJob("/r", { fetch: reply(status, data), token: "t" });
    assert.equal(made, undefined, String(status));
    assert.equal(error, expected, String(status));
  }
  const offline = await retryJob("/r", { fetch: async () => { throw new TypeError("offline"); }, token: "t" });
  assert.equal(offline.error, "Could not reach the server to retry. Try again.");
});
