// Live progress connection: WebSocket with backoff reconnects, feeding a JobStore.

import { JobStore } from "./jobs.js";
import { Retrier } from "./backoff.js";
import { Action, CloseCode, EventType, withHeld } from "./protocol.js";

// The client's own close, when the page needs the socket no more.
const NORMAL_CLOSE = 1000;
// The server itself said "later": WebSockets get through, so these never count towards falling back.
const SERVER_REFUSALS = new Set([CloseCode.TOO_MANY_SOCKETS, CloseCode.TRY_AGAIN_LATER]);
const noop = () => {};

// A server frame as an object, or null for anything else: frames are untrusted input.
export function parseFrame(data) {
  try {
    const frame = JSON.parse(data);
    return frame && typeof frame === "object" ? frame : null;
  } catch {
    return null;
  }
}

// Templates give a path; the scheme must follow the page so https pages use wss.
export function socketUrl(path, location) {
  if (/^wss?:\/\//i.test(path)) return path;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

export class ProgressSocket {
  #url;
  #WebSocket;
  #retrier;
  #on;
  #ws = null;
  #open = false;
  #closed = false;
  #status = null;
  #subscriptions = new Set();
  #fallback;
  // Attempts in a row that ended without a snapshot, while no socket ever delivered one.
  #failures = 0;
  #everLive = false;
  #snapshotted = false;

  constructor(url, options = {}) {
    this.#url = url;
    this.store = options.store ?? new JobStore();
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.#retrier = new Retrier(options);
    this.#on = {
      snapshot: options.onSnapshot ?? noop,
      job: options.onJob ?? noop,
      log: options.onLog ?? noop,
      error: options.onError ?? noop,
      status: options.onStatus ?? noop,
    };
    // Once a socket has delivered a snapshot, WebSockets are known to work here: later
    // drops are outages (a deploy, a restart) that reconnecting outlasts.
    this.#fallback = {
      after: options.fallbackAfter ?? Infinity,
      to: options.onFallback ?? null,
    };
  }

  get subscriptions() {
    return [...this.#subscriptions];
  }

  get status() {
    return this.#status;
  }

  connect() {
    if (this.#ws) return;
    this.#retrier.cancel();
    this.#closed = false;
    if (this.#status === null) this.#setStatus("connecting");
    let ws;
    try {
      ws = new this.#WebSocket(withHeld(this.#url, this.store.all()));
    } catch {
      this.#setStatus("reconnecting");
      if (!this.#fellBack()) this.#retry();
      return;
    }
    this.#ws = ws;
    this.#snapshotted = false;
    ws.onopen = () => this.#opened(ws);
    ws.onmessage = (event) => {
      if (ws === this.#ws) this.#receive(event.data);
    };
    ws.onclose = (event) => this.#lost(ws, event);
    ws.onerror = noop; // a close event always follows; reconnecting happens there
  }

  // Remembered so they can be re-sent after every reconnect.
  subscribe(id) {
    this.#subscriptions.add(id);
    this.#send({ action: Action.SUBSCRIBE, job: id });
  }

  unsubscribe(id) {
    if (!this.#subscriptions.delete(id)) return;
    this.#send({ action: Action.UNSUBSCRIBE, job: id });
  }

  isSubscribed(id) {
    return this.#subscriptions.has(id);
  }

  cancel(id) {
    return this.#send({ action: Action.CANCEL, job: id });
  }

  close() {
    this.#closed = true;
    this.#retrier.cancel();
    const ws = this.#ws;
    this.#ws = null;
    this.#open = false;
    this.#status = null;
    ws?.close(NORMAL_CLOSE);
  }

  #setStatus(status) {
    if (status === this.#status) return;
    this.#status = status;
    this.#on.status(status);
  }

  #send(message) {
    if (!this.#open) return false;
    this.#ws.send(JSON.stringify(message));
    return true;
  }

  #opened(ws) {
    if (ws !== this.#ws) return;
    this.#open = true;
    for (const id of this.#subscriptions) this.#send({ action: Action.SUBSCRIBE, job: id });
  }

  #receive(data) {
    const frame = parseFrame(data);
    if (!frame) return;
    if (frame.type === EventType.SNAPSHOT) {
      const accepted = this.store.applySnapshot(frame.jobs);
      // Only a connection that delivered data counts as healthy; one that
      // opens and drops straight away keeps growing the delay.
      this.#retrier.reset();
      this.#everLive = true;
      this.#snapshotted = true;
      this.#setStatus("live");
      this.#on.snapshot(accepted);
    } else if (frame.type === EventType.JOB) {
      if (this.store.apply(frame.job)) this.#on.job(frame.job);
    } else if (frame.type === EventType.LOG) {
      if (typeof frame.job === "string" && Array.isArray(frame.lines)) this.#on.log(frame);
    } else if (frame.type === EventType.ERROR) {
      this.#on.error(frame);
    }
  }

  #lost(ws, event) {
    if (ws !== this.#ws) return;
    this.#ws = null;
    this.#open = false;
    if (this.#closed) return;
    // The session was logged out or the user deactivated: a reconnect would be refused.
    if (event?.code === CloseCode.SESSION_ENDED) {
      this.#closed = true;
      this.#setStatus("signed-out");
      return;
    }
    this.#setStatus("reconnecting");
    if (!this.#snapshotted && !SERVER_REFUSALS.has(event?.code) && this.#fellBack()) return;
    this.#retry(event?.code);
  }

  // Counts an attempt that ended without a snapshot; past the limit, hands over for good.
  #fellBack() {
    if (this.#everLive || this.#fallback.to === null) return false;
    this.#failures += 1;
    if (this.#failures < this.#fallback.after) return false;
    this.#closed = true;
    this.#fallback.to();
    return true;
  }

  #retry(code) {
    this.#retrier.later(() => this.#closed || this.connect(), { longest: code === CloseCode.TOO_MANY_SOCKETS });
  }
}
