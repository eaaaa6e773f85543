// Public API for other apps: watch one job, or all of the user's jobs, over one shared socket per page.

import { EventStreamSource } from "./fallback.js";
import { Action, ErrorCode, isFinal, isNewer } from "./protocol.js";
import { ProgressSocket, socketUrl } from "./socket.js";

// The URLs of a page's live connection, option -> the page attribute that gives it otherwise.
// They are the server's (progress/live_urls.html sets them from reversed URLs), so none has a
// default here: the WebSocket, the user's event stream, and a job's event stream and cancel
// ("{id}" stands for the job id), the last two for the fallback.
const URL_ATTRIBUTES = Object.freeze({
  url: "data-progress-ws-url",
  eventsUrl: "data-progress-events-url",
  jobEventsUrl: "data-progress-job-events-url",
  cancelUrl: "data-progress-cancel-url",
});
// Attempts in a row that end without a snapshot before the page gives up on WebSockets:
// one can be a blip, two in a row from the start look like a proxy that drops upgrades.
const FALLBACK_AFTER = 2;

// One connection per ws URL, so every widget and app on a page shares one socket
// (the server limits sockets per user, and each socket costs a snapshot).
const connections = new Map();

// One app's failing callback must not cost the others their updates; rethrown
// from a microtask, it still reaches the console and error reporting.
function call(fn, ...args) {
  if (typeof fn !== "function") return;
  try {
    fn(...args);
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}

// querySelector tries documentElement first, then the first element carrying the attribute.
function pageAttribute(name) {
  return globalThis.document?.querySelector?.(`[${name}]`)?.getAttribute(name);
}

// Each from `options`, else from the first element of the page that has its attribute.
function connectionUrls(options) {
  const urls = {};
  for (const [option, attribute] of Object.entries(URL_ATTRIBUTES)) {
    const value = options[option] || pageAttribute(attribute);
    if (!value) throw new Error(`progress: no ${option}; pass options.${option} or put ${attribute} on the page`);
    urls[option] = value;
  }
  return urls;
}

// Each watch applies the seq rule too: one that joins late is handed the stored
// state, which the shared store would not let through a second time.
function newer(seen, job) {
  if (!isNewer(seen.get(job.id), job)) return false;
  seen.set(job.id, job);
  return true;
}

class Connection {
  jobWatches = new Map(); // job id -> Set of watches; insertion order is subscribe order
  userWatches = new Set();
  // Requests sent on the current WebSocket that the server may answer with a
  // not_found. The server answers frames in order and the error names no job,
  // so a not_found belongs to the oldest one whose job has not shown a state.
  #requests = [];
  #snapshotted = false;

  // `url`: the WebSocket's, in full; `options` has the fallback's from connectionUrls().
  constructor(url, options) {
    this.url = url;
    const EventSource = options.EventSource ?? globalThis.EventSource;
    this.socket = new ProgressSocket(url, {
      WebSocket: this.#recording(options.WebSocket ?? globalThis.WebSocket),
      schedule: options.schedule,
      unschedule: options.unschedule,
      random: options.random,
      // Without EventSource there is nothing to fall back to: keep reconnecting.
      fallbackAfter: typeof EventSource === "function" ? FALLBACK_AFTER : Infinity,
      onFallback: () => this.#fallBack(EventSource, options),
      onSnapshot: (jobs) => this.#snapshot(jobs),
      onJob: (job) => this.#job(job),
      onLog: (frame) => this.#log(frame),
      onError: (frame) => this.#error(frame),
      onStatus: (status) => this.#status(status),
    });
    // The socket, or once WebSockets proved blocked, the event streams that stand in for it.
    this.transport = this.socket;
  }

  // For the rest of the page's life: WebSockets that never opened here are not expected to.
  #fallBack(EventSource, options) {
    const source = new EventStreamSource(options.eventsUrl, {
      store: this.socket.store,
      EventSource,
      fetch: options.fetch,
      jobEventsUrl: options.jobEventsUrl,
      cancelUrl: options.cancelUrl,
      schedule: options.schedule,
      unschedule: options.unschedule,
      random: options.random,
      status: this.socket.status,
      onSnapshot: (jobs) => this.#snapshot(jobs),
      onJob: (job) => this.#job(job),
      onStatus: (status) => this.#status(status),
      onJobError: (id, frame) => {
        for (const watch of [...(this.jobWatches.get(id) ?? [])]) watch.error(frame);
      },
    });
    for (const id of this.socket.subscriptions) source.subscribe(id);
    this.socket.close();
    this.transport = source;
    source.connect();
  }

  // ProgressSocket re-sends subscribes by itself on reconnect; recording frames where
  // they leave is the only way to know what the current connection was asked.
  #recording(Base) {
    if (typeof Base !== "function") return Base;
    const connection = this;
    return class extends Base {
      constructor(...args) {
        super(...args);
        connection.#requests = [];
      }

      send(text) {
        connection.#sent(text);
        super.send(text);
      }
    };
  }

  #sent(text) {
    const { action, job } = JSON.parse(text);
    if (action !== Action.SUBSCRIBE && action !== Action.UNSUBSCRIBE) return;
    this.#prune();
    this.#requests.push({ action, job });
  }

  // A job that has shown a state is visible, so its requests cannot be the not_found.
  #prune() {
    this.#requests = this.#requests.filter((request) => !this.socket.store.get(request.job));
  }

  #error(frame) {
    if (frame.error !== ErrorCode.NOT_FOUND) return;
    this.#prune();
    const request = this.#requests.shift();
    // An unsubscribe of a job never seen answers not_found too; nobody is waiting on it.
    if (request?.action !== Action.SUBSCRIBE) return;
    for (const watch of [...(this.jobWatches.get(request.job) ?? [])]) watch.error(frame);
  }

  #snapshot(jobs) {
    this.#snapshotted = true;
    for (const job of jobs) this.#toJobWatches(job);
    for (const watch of [...this.userWatches]) watch.snapshot(jobs);
  }

  #job(job) {
    this.#toJobWatches(job);
    for (const watch of [...this.userWatches]) watch.job(job);
  }

  #status(status) {
    for (const watch of [...this.userWatches]) watch.status(status);
    for (const watches of [...this.jobWatches.values()]) for (const watch of [...watches]) watch.status(status);
  }

  // The server sends a job's log lines only to sockets that subscribed to it, as a watch does.
  #log(frame) {
    for (const watch of [...(this.jobWatches.get(frame.job) ?? [])]) watch.log(frame);
  }

  #toJobWatches(job) {
    for (const watch of [...(this.jobWatches.get(job.id) ?? [])]) watch.update(job);
  }

  addJobWatch(watch) {
    const id = watch.jobId;
    if (!this.jobWatches.has(id)) this.jobWatches.set(id, new Set());
    this.jobWatches.get(id).add(watch);
    // Subscribing even to the user's own jobs: the answer carries the state of a job the
    // snapshot left out (an old finished one), and a not_found tells a watch to give up.
    if (!this.transport.isSubscribed(id)) this.transport.subscribe(id);
    // Deferred so callbacks never run before watch() has returned its stop().
    queueMicrotask(() => {
      if (this.transport.status) watch.status(this.transport.status);
      const known = this.transport.store.get(id);
      if (known) watch.update(known);
    });
    this.transport.connect();
  }

  removeJobWatch(watch) {
    const watches = this.jobWatches.get(watch.jobId);
    if (!watches?.delete(watch)) return;
    if (watches.size === 0) {
      this.jobWatches.delete(watch.jobId);
      this.transport.unsubscribe(watch.jobId);
    }
    this.#closeIfIdle();
  }

  addUserWatch(watch) {
    this.userWatches.add(watch);
    queueMicrotask(() => {
      if (this.transport.status) watch.status(this.transport.status);
      // One that joins after the snapshot is handed what it would have shown.
      if (this.#snapshotted && !watch.snapshotted) watch.snapshot(this.transport.store.all());
    });
    this.transport.connect();
  }

  removeUserWatch(watch) {
    if (this.userWatches.delete(watch)) this.#closeIfIdle();
  }

  #closeIfIdle() {
    if (this.jobWatches.size > 0 || this.userWatches.size > 0) return;
    this.drop();
  }

  drop() {
    for (const watches of this.jobWatches.values()) for (const watch of watches) watch.active = false;
    for (const watch of this.userWatches) watch.active = false;
    this.jobWatches.clear();
    this.userWatches.clear();
    this.transport.close();
    if (connections.get(this.url) === this) connections.delete(this.url);
  }
}

function connectionFor(options) {
  const urls = connectionUrls(options);
  const url = socketUrl(urls.url, options.location ?? globalThis.location);
  let connection = connections.get(url);
  if (!connection) {
    connection = new Connection(url, { ...options, ...urls });
    connections.set(url, connection);
  }
  return connection;
}

export function watch(jobId, callbacks = {}, options = {}) {
  if (typeof jobId !== "string" || jobId === "") throw new TypeError("watch() needs a job id");
  const connection = connectionFor(options);
  const seen = new Map();
  let shownStatus = null;
  const watcher = {
    jobId,
    active: true,
    status(status) {
      if (!watcher.active || status === shownStatus) return;
      shownStatus = status;
      call(callbacks.onStatus, status);
    },
    log(frame) {
      if (watcher.active) call(callbacks.onLog, frame);
    },
    update(job) {
      if (!watcher.active || !newer(seen, job)) return;
      call(callbacks.onUpdate, job);
      if (!isFinal(job.state) || !watcher.active) return;
      call(callbacks.onFinish, job);
      if (!callbacks.keepAfterFinish) stop();
    },
    error(frame) {
      if (watcher.active) call(callbacks.onError, frame);
    },
  };
  const stop = () => {
    if (!watcher.active) return;
    watcher.active = false;
    connection.removeJobWatch(watcher);
  };
  connection.addJobWatch(watcher);
  return stop;
}

export function watchUser(callbacks = {}, options = {}) {
  const connection = connectionFor(options);
  const seen = new Map();
  let shownStatus = null;
  const watcher = {
    active: true,
    snapshotted: false,
    snapshot(jobs) {
      if (!watcher.active) return;
      watcher.snapshotted = true;
      call(callbacks.onSnapshot, jobs.filter((job) => newer(seen, job)));
    },
    job(job) {
      if (watcher.active && newer(seen, job)) call(callbacks.onJob, job);
    },
    status(status) {
      if (!watcher.active || status === shownStatus) return;
      shownStatus = status;
      call(callbacks.onStatus, status);
    },
  };
  const stop = () => {
    if (!watcher.active) return;
    watcher.active = false;
    connection.removeUserWatch(watcher);
  };
  connection.addUserWatch(watcher);
  return stop;
}

// Prefers the socket that watches the job, since only that one will show the REVOKED state.
// In fallback the cancel is an HTTP POST, and true means it was sent, not that it landed.
export function cancel(jobId) {
  const all = [...connections.values()];
  const connection = all.find((candidate) => candidate.jobWatches.has(jobId)) ?? all[0];
  return connection ? connection.transport.cancel(jobId) : false;
}

// For tests: every module-level connection would otherwise outlive the test that made it.
export function _reset() {
  for (const connection of [...connections.values()]) connection.drop();
  connections.clear();
}
