// Test doubles shared by the JS unit tests: a WebSocket, an EventSource and fetch the tests drive by hand.

// Each instance made is pushed to `sockets`, so a test can open, feed and drop it.
export function fakeWebSocketClass(sockets) {
  return class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.closedWith = null;
      sockets.push(this);
    }
    send(text) { this.sent.push(JSON.parse(text)); }
    close(code) { this.closedWith = code; }
    open() { this.onopen?.({}); }
    receive(frame) { this.onmessage?.({ data: typeof frame === "string" ? frame : JSON.stringify(frame) }); }
    drop(code = 1006) { this.onclose?.({ code }); }
  };
}

// Each instance made is pushed to `sources`; the test opens, feeds and fails it by hand.
export function fakeEventSourceClass(sources) {
  return class FakeEventSource {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSED = 2;
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.closed = false;
      sources.push(this);
    }
    close() { this.closed = true; this.readyState = 2; }
    open() { this.readyState = 1; this.onopen?.({}); }
    receive(frame) { this.onmessage?.({ data: typeof frame === "string" ? frame : JSON.stringify(frame) }); }
    // A dropped stream the browser retries (CONNECTING), or an error status it gives up on (CLOSED).
    fail(readyState = 0) { this.readyState = readyState; this.onerror?.({}); }
  };
}

// A fetch that records each call and answers `status` with `body` as JSON.
export function fakeFetch(calls, status = 202, body = {}) {
  return async (url, init) => {
    calls.push({ url, init });
    return { status, json: async () => body };
  };
}

// The URLs the server gives a page (progress/live_urls.html), as client.js options.
export const URLS = Object.freeze({
  url: "/ws/progress/",
  eventsUrl: "/api/events/",
  jobEventsUrl: "/api/jobs/{id}/events/",
  cancelUrl: "/api/jobs/{id}/cancel/",
});

// What client.js is given in place of the browser and the page: fake WebSocket, EventSource,
// fetch and timers, the page's location and its URLs. clear() empties the records between tests.
export function fakeConnection() {
  const sockets = [];
  const sources = [];
  const timers = [];
  const fetches = [];
  const options = {
    WebSocket: fakeWebSocketClass(sockets),
    EventSource: fakeEventSourceClass(sources),
    fetch: fakeFetch(fetches),
    schedule: (fn, ms) => { timers.push({ fn, ms }); return timers.length; },
    unschedule: () => {},
    random: () => 0.5,
    location: { protocol: "http:", host: "test" },
    ...URLS,
  };
  const clear = () => {
    for (const list of [sockets, sources, timers, fetches]) list.length = 0;
  };
  return { sockets, sources, timers, fetches, options, clear };
}
