// The wire protocol's names for the browser, once: the mirror of progress/protocol/states.py
// and frames.py (tests/unit/test_js_protocol.py fails on any difference), and its seq rule.

// The states of a job (State).
export const State = Object.freeze({
  PENDING: "PENDING",
  STARTED: "STARTED",
  PROGRESS: "PROGRESS",
  RETRY: "RETRY",
  SUCCESS: "SUCCESS",
  FAILURE: "FAILURE",
  REVOKED: "REVOKED",
});

// The states nothing follows (FINAL_STATES).
export const FINAL_STATES = Object.freeze([State.SUCCESS, State.FAILURE, State.REVOKED]);

// The final states a user may launch again (RETRYABLE_STATES).
export const RETRYABLE_STATES = Object.freeze([State.FAILURE, State.REVOKED]);

// The `type` of a frame the server sends (EventType).
export const EventType = Object.freeze({
  SNAPSHOT: "snapshot",
  JOB: "job",
  LOG: "log",
  ERROR: "error",
});

// The `action` of a frame the client sends (Action).
export const Action = Object.freeze({
  SUBSCRIBE: "subscribe",
  UNSUBSCRIBE: "unsubscribe",
  CANCEL: "cancel",
});

// The `error` of an error frame (ErrorCode).
export const ErrorCode = Object.freeze({
  NOT_FOUND: "not_found",
  BAD_JSON: "bad_json",
  BAD_FRAME: "bad_frame",
  UNKNOWN_ACTION: "unknown_action",
  TOO_MANY_SOCKETS: "too_many_sockets",
  SESSION_ENDED: "session_ended",
  UNAVAILABLE: "unavailable",
});

// The WebSocket close codes the server uses (CloseCode).
export const CloseCode = Object.freeze({
  // The server is shutting down or restarting; reconnect.
  GOING_AWAY: 1001,
  MESSAGE_TOO_BIG: 1009,
  // Redis is out of reach for a moment; reconnect with backoff.
  TRY_AGAIN_LATER: 1013,
  // The session was logged out or the user deactivated; reconnecting will not help.
  SESSION_ENDED: 4401,
  TOO_MANY_SOCKETS: 4429,
});

export function isFinal(state) {
  return FINAL_STATES.includes(state);
}

// The protocol's version (PROTOCOL_VERSION): 2 added `epoch` and the recovery of a reconnect.
export const PROTOCOL_VERSION = 2;

// The query parameter a reconnecting socket says what it holds with (HELD_PARAMETER).
export const HELD_PARAMETER = "held";

// The most jobs a `held` parameter names (MAX_HELD).
export const MAX_HELD = 100;

function epochOf(job) {
  return typeof job.epoch === "string" ? job.epoch : "";
}

// The epoch and seq rule, the one place the client applies it (states.py's NewestSeqs
// applies the same; tests/conformance/recovery.json holds the cases both pass): whether
// `offered`, a state of a job, replaces `held`, the state of that job shown so far (none:
// it does). Within one epoch frames arrive out of order (a snapshot racing live frames,
// reconnects, a late watch handed the stored state), so only a strictly higher seq
// replaces, and a repeat is dropped. A state of another epoch replaces it whatever its
// seq: the server's numbering restarted (Redis lost its data); unless it would un-finish
// a job. A late frame of the old numbering may show for a moment, until the next state of
// the new one replaces it: remembering old epochs would go deaf to a new numbering whose
// first frame came before a late one of the old.
export function isNewer(held, offered) {
  if (held === null || held === undefined) return true;
  if (!offered || typeof offered.seq !== "number") return false;
  if (epochOf(offered) === epochOf(held)) return offered.seq > held.seq;
  return isFinal(offered.state) || !isFinal(held.state);
}

// Whether `offered` replaces `held` by a new numbering rather than continuing it: the
// page then shows it without moving a running bar back (jobs.js).
export function isReplacement(held, offered) {
  return Boolean(held && offered) && epochOf(offered) !== epochOf(held);
}

// The `held` parameter's value for what a client holds: `<id>:<epoch>:<seq>`, comma-separated.
function heldParameter(jobs) {
  return jobs
    .filter((job) => job && typeof job.id === "string" && typeof job.seq === "number")
    .slice(0, MAX_HELD)
    .map((job) => `${job.id}:${epochOf(job)}:${job.seq}`)
    .join(",");
}

// `url` with the `held` parameter for the running jobs of `jobs`, when there are any: the
// snapshot then says which of them it replaced (docs/protocol.md, section 6).
export function withHeld(url, jobs) {
  const value = heldParameter(jobs.filter((job) => job && !isFinal(job.state)));
  if (value === "") return url;
  return `${url}${url.includes("?") ? "&" : "?"}${HELD_PARAMETER}=${encodeURIComponent(value)}`;
}
