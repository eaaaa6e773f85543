// Test doubles shared by the JS unit tests: a WebSocket the test drives by hand.

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
