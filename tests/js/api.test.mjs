import { test } from "node:test";
import assert from "node:assert/strict";
import { csrfToken, postJSON } from "../../progress/static/progress/api.js";

test("the CSRF token is read from the csrftoken cookie", () => {
  assert.equal(csrfToken("sessionid=x; csrftoken=abc%3D123; theme=dark"), "abc=123");
  assert.equal(csrfToken("sessionid=x"), "");
});

test("POSTs send JSON with the CSRF header and same-origin credentials", async () => {
  let seen;
  const fetch = async (url, init) => {
    seen = { url, init };
    return { status: 201, json: async () => ({ id: "j1" }) };
  };
  const reply = await postJSON("/api/jobs/", { task: "demo.count", params: { steps: 3 } }, { fetch, token: "tok" });
  assert.deepEqual(reply, { status: 201, data: { id: "j1" } });
  assert.equal(seen.init.method, "POST");
  assert.equal(seen.init.credentials, "same-origin");
  assert.equal(seen.init.headers["X-CSRFToken"], "tok");
  assert.equal(seen.init.headers["Content-Type"], "application/json");
  assert.deepEqual(JSON.parse(seen.init.body), { task: "demo.count", params: { steps: 3 } });
});

test("a network failure or non-JSON reply still resolves so the page can explain it", async () => {
  const down = await postJSON("/x", {}, { fetch: async () => { throw new TypeError("offline"); }, token: "t" });
  assert.deepEqual(down, { status: 0, data: null });
  const html = await postJSON("/x", undefined, { fetch: async () => ({ status: 502, json: async () => { throw new SyntaxError(); } }), token: "t" });
  assert.deepEqual(html, { status: 502, data: null });
});
