// Live progress over server-sent events, for pages whose proxy lets no WebSocket through.

import { postJSON } from "./api.js";
import { Retrier } from "./backoff.js";
import { fillUrl } from "./format.js";
import { JobStore } from "./jobs.js";
import { ErrorCode, EventType, isFinal, withHeld } from "./protocol.js";
import { parseFrame } from "./socket.js";

// EventSource.CLOSED: the browser gave up on the stream (an error status), so it will not retry.
const CLOSED = 2;
const noop = () => {};

// The same callbacks and methods as ProgressSocket, so the connection can swap one for the other.
// The user's stream is held like a socket: the server ends it, after the socket's error frame,
// on a logout (no reconnect), at the user's limit of sockets or while Redis is away (retry).
// The user's stream carries the socket's frames; a job it never shows (another user's, for
// staff, or an old finished one) gets the contract's per-job stream, which ends with the job.
// Log frames exist only on the WebSocket: in fallback a job page shows no live log.
// `url` is the user's stream; `jobEventsUrl` and `cancelUrl` have "{id}" for the job id. All
// three are the server's (client.js has them from the page), so none has a default.
export class EventStreamSource {
  #url;
  #jobUrl;
  #cancelUrl;
  #EventSource;
  #fetch;
  #retrier;
  #on;
  #user = null;
  #alone = new Map(); // job id -> its own EventSource
  #mine = new Set(); // jobs the user's stream has shown: it will carry their states
  #subscriptions = new Set();
  #snapshotted = false;
  #closed = true;
  #status;

  constructor(url, options = {}) {
    const urls = { url, jobEventsUrl: options.jobEventsUrl, cancelUrl: options.cancelUrl };
    for (const [name, value] of Object.entries(urls)) {
      if (typeof value !== "string" || value === "") throw new TypeError(`EventStreamSource needs ${name}`);
    }
    this.#url = url;
    this.#jobUrl = options.jobEventsUrl;
    this.#cancelUrl = options.cancelUrl;
    this.store = options.store ?? new JobStore();
    this.#EventSource = options.EventSource ?? globalThis.EventSource;
    this.#fetch = options.fetch;
    this.#retrier = new Retrier(options);
    this.#on = {
      snapshot: options.onSnapshot ?? noop,
      job: options.onJob ?? noop,
      status: options.onStatus ?? noop,
      jobError: options.onJobError ?? noop,
    };
    // Taking over from a socket that was already reconnecting: no step back to "connecting".
    this.#status = options.status ?? null;
  }

  get status() {
    return this.#status;
  }

  connect() {
    if (this.#user || this.#retrier.pending) return;
    this.#closed = false;
    if (this.#status === null) this.#setStatus("connecting");
    let source;
    try {
      source = new this.#EventSource(withHeld(this.#url, this.store.all()));
    } catch {
      this.#setStatus("reconnecting");
      this.#retry();
      return;
    }
    this.#user = source;
    source.onmessage = (event) => {
      if (source === this.#user) this.#receive(event.data, null);
    };
    source.onerror = () => this.#userError(source);
  }

  subscribe(id) {
    this.#subscriptions.add(id);
    if (this.#snapshotted) this.#watchAlone(id);
  }

  unsubscribe(id) {
    if (!this.#subscriptions.delete(id)) return;
    this.#closeAlone(id);
  }

  isSubscribed(id) {
    return this.#subscriptions.has(id);
  }

  // The stream is one-way: a cancel goes over HTTP, and its REVOKED state comes back on a stream.
  cancel(id) {
    if (this.#closed) return false;
    const options = this.#fetch ? { fetch: this.#fetch } : {};
    postJSON(fillUrl(this.#cancelUrl, id), undefined, options);
    return true;
  }

  close() {
    this.#closed = true;
    this.#retrier.cancel();
    const source = this.#user;
    this.#user = null;
    source?.close();
    for (const id of [...this.#alone.keys()]) this.#closeAlone(id);
    this.#status = null;
  }

  #setStatus(status) {
    if (status === this.#status) return;
    this.#status = status;
    this.#on.status(status);
  }

  #receive(data, aloneId) {
    const frame = parseFrame(data);
    if (!frame) return;
    if (frame.type === EventType.SNAPSHOT && aloneId === null) {
      const jobs = Array.isArray(frame.jobs) ? frame.jobs : [];
      for (const job of jobs) if (typeof job?.id === "string") this.#mine.add(job.id);
      const accepted = this.store.applySnapshot(jobs);
      this.#retrier.reset();
      this.#snapshotted = true;
      this.#setStatus("live-sse");
      this.#on.snapshot(accepted);
      for (const id of this.#subscriptions) this.#watchAlone(id);
    } else if (frame.type === EventType.ERROR && aloneId === null) {
      this.#ended(frame.error);
    } else if (frame.type === EventType.JOB && frame.job && typeof frame.job === "object") {
      const job = frame.job;
      if (aloneId === null && typeof job.id === "string") this.#mine.add(job.id);
      if (this.store.apply(job)) this.#on.job(job);
      // Its stream ends after the final state, and an EventSource left open would reopen it.
      if (aloneId !== null && job.id === aloneId && isFinal(job.state)) this.#closeAlone(aloneId);
    }
  }

  // The server ends the user's stream after the error frame a socket would get before its
  // close; left open, the EventSource would reconnect at once, whatever the reason.
  #ended(error) {
    const source = this.#user;
    this.#user = null;
    source?.close();
    if (error === ErrorCode.SESSION_ENDED) {
      this.close();
      this.#setStatus("signed-out");
      return;
    }
    this.#setStatus("reconnecting");
    this.#retry(error === ErrorCode.TOO_MANY_SOCKETS);
  }

  #userError(source) {
    if (source !== this.#user || this.#closed) return;
    this.#setStatus("reconnecting");
    // While CONNECTING the EventSource retries by itself; CLOSED means it never will.
    if (source.readyState !== CLOSED) return;
    this.#user = null;
    source.close();
    this.#retry();
  }

  #retry(longest = false) {
    this.#retrier.later(() => this.#closed || this.connect(), { longest });
  }

  // Only a job the user's stream has not shown needs a stream of its own.
  #watchAlone(id) {
    if (this.#closed || this.#mine.has(id) || this.#alone.has(id)) return;
    const known = this.store.get(id);
    if (known && isFinal(known.state)) return;
    let source;
    try {
      source = new this.#EventSource(fillUrl(this.#jobUrl, id));
    } catch {
      return;
    }
    let heard = false;
    this.#alone.set(id, source);
    source.onmessage = (event) => {
      if (this.#alone.get(id) !== source) return;
      heard = true;
      this.#receive(event.data, id);
    };
    source.onerror = () => {
      if (this.#alone.get(id) !== source || source.readyState !== CLOSED) return;
      this.#closeAlone(id);
      // The error status is unreadable here; a 404, the usual one, is what the socket would say.
      if (!heard) this.#on.jobError(id, { type: EventType.ERROR, error: ErrorCode.NOT_FOUND, detail: "No such job." });
    };
  }

  #closeAlone(id) {
    const source = this.#alone.get(id);
    if (!source) return;
    this.#alone.delete(id);
    source.close();
  }
}
