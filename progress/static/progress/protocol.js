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

// The seq rule, the one place the client applies it: whether `offered`, a state of a job,
// replaces `held`, the state of that job shown so far (none: it does). Frames arrive out of
// order (a snapshot racing live frames, reconnects, a late watch handed the stored state),
// so only a strictly higher seq replaces, and a repeat is dropped.
export function isNewer(held, offered) {
  if (held === null || held === undefined) return true;
  return Boolean(offered) && offered.seq > held.seq;
}
