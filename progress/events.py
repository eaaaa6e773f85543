"""The wire format: job states, event and error names, frames, group names and keys."""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NotRequired, Protocol, TypedDict


class State(enum.StrEnum):
    """The states of a job, as the contract names them."""

    PENDING = "PENDING"
    STARTED = "STARTED"
    PROGRESS = "PROGRESS"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({State.SUCCESS, State.FAILURE, State.REVOKED})


class EventType(enum.StrEnum):
    """The `type` of a frame the server sends."""

    SNAPSHOT = "snapshot"
    JOB = "job"
    LOG = "log"
    ERROR = "error"


class Action(enum.StrEnum):
    """The `action` of a frame a client sends."""

    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    CANCEL = "cancel"


class ErrorCode(enum.StrEnum):
    """The `error` of an error frame."""

    NOT_FOUND = "not_found"
    BAD_JSON = "bad_json"
    BAD_FRAME = "bad_frame"
    UNKNOWN_ACTION = "unknown_action"
    TOO_MANY_SOCKETS = "too_many_sockets"
    SESSION_ENDED = "session_ended"
    UNAVAILABLE = "unavailable"


class CloseCode(enum.IntEnum):
    """WebSocket close codes the server uses."""

    # The server is shutting down or restarting; reconnect.
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    # Redis is out of reach for a moment (a restart); reconnect with backoff.
    TRY_AGAIN_LATER = 1013
    # The session was logged out or the user deactivated; reconnecting will not help.
    SESSION_ENDED = 4401
    TOO_MANY_SOCKETS = 4429


# The longest `message` a job carries, live and stored alike.
MAX_MESSAGE_LENGTH = 500

# The channel-layer message type that carries a job state to each web
# process's hub (progress/fanout.py).
LAYER_JOB_MESSAGE = "progress.job"
# The channel-layer message type that tells each hub to close a user's sockets
# of one session (a logout), or of every session when `session` is empty.
LAYER_SESSION_ENDED = "progress.session_ended"

# The channel-layer message type that carries new log lines of a job to the hubs.
LAYER_LOG_MESSAGE = "progress.log"
# The longest log line a job keeps; longer ones are cut.
MAX_LOG_LINE_LENGTH = 1000

# What a job lost with its worker says, whoever notices the loss.
WORKER_LOST_ERROR = "Worker lost: the process running this job stopped before it finished."


class JobDict(TypedDict):
    """A job as the contract shows it, over HTTP and WebSocket alike."""

    id: str
    task: str
    state: str
    current: float
    total: float | None
    percent: float | None
    message: str
    seq: int
    ts: float
    eta: float | None
    rate: float | None
    result: Any
    error: str | None
    created: str
    started: str | None
    finished: str | None
    # Only on a part of a group job: the group's job id, and the part's place in it from 0.
    parent: NotRequired[str]
    part: NotRequired[int]
    # Only on a re-launched job: the id of the job it retried.
    retry_of: NotRequired[str]


class LogLine(TypedDict):
    """One log line of a job, as `log` frames carry it; `n` grows by one per line of the job."""

    n: int
    ts: float
    level: str
    text: str


class LayerLogMessage(TypedDict):
    """What the publisher puts into the channel layer for each batch of a job's log lines."""

    type: str
    group: str
    job_id: str
    # The `n` of the batch's last line.
    last: int
    # The whole `log` frame, encoded once and sent as-is to every watching socket.
    frame: str


class LayerSessionEnded(TypedDict):
    """What a logout puts into the channel layer, for the user's group."""

    type: str
    group: str
    # session_digest() of the ended session; empty for all of the user's sessions.
    session: str


class LayerJobMessage(TypedDict):
    """What the publisher puts into the channel layer for each new state, once per group."""

    type: str
    group: str
    job_id: str
    seq: int
    final: bool
    # The whole `job` frame, encoded once and sent as-is to every socket.
    frame: str
    # The state's ts, so hubs time its trip without decoding the frame; only on
    # messages the publisher sends, not on states re-read from Redis.
    ts: NotRequired[float]


_USER_GROUP_PREFIX = "progress.user."


def user_group(user_id: int) -> str:
    """The group that carries every state of a user's jobs, to their sockets and watchers."""
    return f"{_USER_GROUP_PREFIX}{int(user_id)}"


def owner_of_group(group: str) -> int | None:
    """The user whose group this is, or None for a name user_group() did not make."""
    if not group.startswith(_USER_GROUP_PREFIX):
        return None
    number = group[len(_USER_GROUP_PREFIX) :]
    return int(number) if number.isdigit() else None


def session_digest(session_key: str | None) -> str:
    """Names a session in the layer and in memory without carrying its key, a credential."""
    if not session_key:
        return ""
    return hashlib.sha256(session_key.encode()).hexdigest()[:32]


def state_key(job_id: uuid.UUID | str) -> str:
    """The Redis key that holds a job's latest state and its seq."""
    return f"progress:job:{uuid.UUID(str(job_id)).hex}"


def sockets_key(user_id: int) -> str:
    """The Redis key that counts a user's open sockets."""
    return f"progress:sockets:{int(user_id)}"


def lease_key(job_id: uuid.UUID | str) -> str:
    """The Redis key a worker renews while it runs the job; its absence means the worker is gone."""
    return f"progress:lease:{uuid.UUID(str(job_id)).hex}"


def log_key(job_id: uuid.UUID | str) -> str:
    """The Redis list of a job's latest log lines, each the JSON of a LogLine."""
    return f"progress:log:{uuid.UUID(str(job_id)).hex}"


def log_count_key(job_id: uuid.UUID | str) -> str:
    """The Redis counter of a job's log lines: the `n` of its last one."""
    return f"progress:logn:{uuid.UUID(str(job_id)).hex}"


def group_key(job_id: uuid.UUID | str) -> str:
    """The Redis hash that sums the parts of a group job (progress.groups), O(1) per update."""
    return f"progress:group:{uuid.UUID(str(job_id)).hex}"


def launches_key(user_id: int, window: int) -> str:
    """The Redis key that counts a user's launches in one minute."""
    return f"progress:launches:{int(user_id)}:{int(window)}"


# The Redis key whose value changes whenever Redis loses its data (a restart
# without persistence, a flush): hubs that see it change re-join and resync.
EPOCH_KEY = "progress:epoch"
# The Redis hash of running jobs whose lease was found missing, and since when.
SUSPECTS_KEY = "progress:suspects"
# The Redis key that lets one process at a time sweep for lost jobs.
SWEEP_LOCK_KEY = "progress:sweep-lock"


def _number(value: float | None) -> float | int | None:
    """Whole numbers go out as integers, so that 3.0 reads as 3."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def dumps_compact(value: Any) -> str:
    """JSON as the wire carries it: compact, UTF-8, and no NaN."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


_dumps = dumps_compact


@dataclass(slots=True)
class JobState:
    """One state of a job, everything but its seq, which the state store assigns."""

    id: str
    owner_id: int
    task: str
    state: State
    current: float = 0
    total: float | None = None
    message: str = ""
    ts: float = 0.0
    eta: float | None = None
    rate: float | None = None
    result: Any = None
    error: str | None = None
    created: str = ""
    started: str | None = None
    finished: str | None = None
    parent: str | None = None
    part: int | None = None
    retry_of: str | None = None

    @property
    def percent(self) -> float | None:
        if not self.total or self.total <= 0:
            return None
        return round(min(100.0, max(0.0, self.current * 100.0 / self.total)), 2)

    @property
    def is_final(self) -> bool:
        return self.state.is_final

    def encode(self) -> tuple[str, str]:
        """The job's JSON split where its seq goes, so Redis can number it atomically."""
        head = {
            "id": self.id,
            "task": self.task,
            "state": self.state.value,
            "current": _number(self.current),
            "total": _number(self.total),
            "percent": self.percent,
            "message": self.message[:MAX_MESSAGE_LENGTH],
        }
        tail = {
            "ts": self.ts,
            "eta": None if self.eta is None else round(self.eta, 1),
            "rate": None if self.rate is None else round(self.rate, 3),
            "result": self.result,
            "error": self.error,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
        }
        # Absent rather than null, so plain jobs keep the contract's exact shape.
        if self.parent:
            tail["parent"] = self.parent
            tail["part"] = self.part
        if self.retry_of:
            tail["retry_of"] = self.retry_of
        return _dumps(head)[:-1] + ',"seq":', "," + _dumps(tail)[1:]

    def to_json(self, seq: int) -> str:
        head, tail = self.encode()
        return f"{head}{int(seq)}{tail}"

    @classmethod
    def from_dict(cls, data: dict[str, Any], owner_id: int) -> JobState:
        """Rebuilds a state from its contract JSON, to derive a new state from the latest one."""
        return cls(
            id=data["id"],
            owner_id=owner_id,
            task=data["task"],
            state=State(data["state"]),
            current=data.get("current") or 0,
            total=data.get("total"),
            message=data.get("message") or "",
            ts=data.get("ts") or 0.0,
            eta=data.get("eta"),
            rate=data.get("rate"),
            result=data.get("result"),
            error=data.get("error"),
            created=data.get("created") or "",
            started=data.get("started"),
            finished=data.get("finished"),
            parent=data.get("parent"),
            part=data.get("part"),
            retry_of=data.get("retry_of"),
        )


class PartsSum(Protocol):
    """A group job's sum of its parts (store.GroupSum)."""

    @property
    def parts(self) -> int: ...
    @property
    def current(self) -> float: ...
    @property
    def total(self) -> float | None: ...
    @property
    def done(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def revoked(self) -> int: ...


def group_progress(group: JobState, parts: PartsSum, now: float) -> None:
    """Makes `group` (its newest stored state) the PROGRESS state that `parts` sum up to.

    The rate is the average since the group started: parts run side by side and
    start and stop at random, so any shorter window would make the ETA jump.
    """
    group.state = State.PROGRESS
    group.current, group.total, group.ts = parts.current, parts.total, now
    ended = parts.done + parts.failed + parts.revoked
    message = f"{ended} of {parts.parts} parts done"
    if parts.failed:
        message += f", {parts.failed} failed"
    if parts.revoked:
        message += f", {parts.revoked} cancelled"
    group.message = message
    started = datetime.fromisoformat(group.started).timestamp() if group.started else 0.0
    elapsed = now - started
    if started and elapsed > 0.5 and parts.current > 0:
        group.rate = parts.current / elapsed
        left = None if parts.total is None else max(0.0, parts.total - parts.current)
        group.eta = None if left is None else left / group.rate
    else:
        group.rate = group.eta = None


def job_message(
    group: str, job_id: str, seq: int, final: bool, frame: str, ts: float | None = None
) -> LayerJobMessage:
    """The channel-layer message that carries one job state to the hubs listening on `group`."""
    message: LayerJobMessage = {
        "type": LAYER_JOB_MESSAGE,
        "group": group,
        "job_id": job_id,
        "seq": seq,
        "final": final,
        "frame": frame,
    }
    if ts:
        message["ts"] = ts
    return message


def job_frame(job_json: str) -> str:
    """`{"type": "job", "job": ...}` around a job already encoded once."""
    return f'{{"type":"{EventType.JOB.value}","job":{job_json}}}'


def log_frame(job_id: str, line_jsons: list[str]) -> str:
    """`{"type": "log", "job": id, "lines": [...]}` around lines already encoded once."""
    return (
        f'{{"type":"{EventType.LOG.value}","job":{_dumps(str(job_id))},'
        f'"lines":[{",".join(line_jsons)}]}}'
    )


def log_message(group: str, job_id: str, last: int, frame: str) -> LayerLogMessage:
    """The channel-layer message that carries a batch of log lines to the hubs on `group`."""
    return {"type": LAYER_LOG_MESSAGE, "group": group, "job_id": job_id, "last": last,
            "frame": frame}  # fmt: skip


_JOB_FRAME_HEAD = f'{{"type":"{EventType.JOB.value}","job":'


def frame_job(frame: str) -> str:
    """The job JSON inside a frame job_frame() made, without decoding it."""
    if not frame.startswith(_JOB_FRAME_HEAD) or not frame.endswith("}"):
        raise ValueError("Not a job frame.")
    return frame[len(_JOB_FRAME_HEAD) : -1]


def snapshot_frame(job_jsons: list[str]) -> str:
    """`{"type": "snapshot", "jobs": [...]}` around jobs already encoded once."""
    return f'{{"type":"{EventType.SNAPSHOT.value}","jobs":[{",".join(job_jsons)}]}}'


def error_frame(code: ErrorCode, detail: str) -> str:
    return _dumps({"type": EventType.ERROR.value, "error": code.value, "detail": detail})


# What a socket (or the SSE stream standing in for one) is told before the server
# closes it, where a client can act on it.
_END_REASONS = {
    CloseCode.TOO_MANY_SOCKETS: (ErrorCode.TOO_MANY_SOCKETS, "Too many open tabs."),
    CloseCode.SESSION_ENDED: (ErrorCode.SESSION_ENDED, "You were signed out; log in again."),
    CloseCode.TRY_AGAIN_LATER: (ErrorCode.UNAVAILABLE, "Live updates are briefly unavailable."),
}


def end_frame(code: CloseCode) -> str | None:
    """The error frame sent before closing with `code`; None where the client needs none."""
    reason = _END_REASONS.get(code)
    return None if reason is None else error_frame(*reason)


@dataclass(frozen=True, slots=True)
class ClientFrame:
    """A frame a client sent, parsed and checked."""

    action: Action
    job: str


class FrameError(Exception):
    """A client frame the server cannot take; the socket stays open unless close_code is set."""

    def __init__(self, code: ErrorCode, detail: str, close_code: CloseCode | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.close_code = close_code


def parse_client_frame(text: str | None, data: bytes | None, max_bytes: int) -> ClientFrame:
    """Parses one client frame, raising FrameError for anything the protocol does not allow."""
    if text is None:
        if data is not None and len(data) > max_bytes:
            raise FrameError(ErrorCode.BAD_FRAME, "Frame too large.", CloseCode.MESSAGE_TOO_BIG)
        raise FrameError(ErrorCode.BAD_FRAME, "Binary frames are not supported; send JSON text.")
    if len(text.encode()) > max_bytes:
        raise FrameError(
            ErrorCode.BAD_FRAME, f"Frame over {max_bytes} bytes.", CloseCode.MESSAGE_TOO_BIG
        )
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        raise FrameError(ErrorCode.BAD_JSON, "The frame is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise FrameError(ErrorCode.BAD_FRAME, "The frame must be a JSON object.")
    try:
        action = Action(str(payload.get("action")))
    except ValueError:
        names = ", ".join(a.value for a in Action)
        raise FrameError(ErrorCode.UNKNOWN_ACTION, f"Unknown action; use one of {names}.") from None
    job = payload.get("job")
    if not isinstance(job, str):
        raise FrameError(ErrorCode.BAD_FRAME, 'The frame needs "job": a job id.')
    return ClientFrame(action=action, job=job)


def parse_job_id(value: object) -> uuid.UUID | None:
    """A job id from client input, or None when it cannot be one."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
