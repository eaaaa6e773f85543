"""Job states as the contract has them: State, JobState and its JSON. Pure; any process."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, NamedTuple, NotRequired, TypedDict


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

# The final states a user may launch again (retry); a job that succeeded is done.
RETRYABLE_STATES = frozenset({State.FAILURE, State.REVOKED})


# The longest `message` a job carries, live and stored alike.
MAX_MESSAGE_LENGTH = 500


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
    epoch: str
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


def _number(value: float | None) -> float | int | None:
    """Whole numbers go out as integers, so that 3.0 reads as 3."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class Mark(NamedTuple):
    """Where a state stands in its job's numbering: the numbering's epoch, its seq in it, and
    whether it is final."""

    epoch: str
    seq: int
    final: bool = False

    def replaces(self, held: Mark | None) -> bool:
        """Whether a state at this mark replaces one held at `held` (None: nothing held)."""
        if held is None:
            return True
        if self.epoch == held.epoch:
            return self.seq > held.seq
        return self.final or not held.final


class NewestSeqs(dict[str, Mark]):
    """The newest state held of each job, by the contract's rule, applied the same way in
    protocol.js (tests/conformance/recovery.json holds the cases both pass):

    - within one epoch, only a higher seq replaces the state held;
    - a state of another epoch replaces it whatever its seq (the numbering restarted),
      unless it would un-finish a job: nothing follows a final state.

    A late frame of an old numbering may thus show for a moment; the next state of the new
    one replaces it. Remembering the epochs left instead would go deaf for good to a new
    numbering whose first frame arrived before a late one of the old.

    The one place Python applies it (the socket's Outbox, a reader's Inbox, the hub's
    unfinished jobs, watch())."""

    def newer(self, job_id: str, mark: Mark) -> bool:
        """Whether a state of `job_id` at `mark` would replace the one held."""
        return mark.replaces(self.get(job_id))

    def note(self, job_id: str, mark: Mark) -> bool:
        """Holds `mark` for `job_id` if it is newer; returns whether it was."""
        if not self.newer(job_id, mark):
            return False
        self[job_id] = mark
        return True

    def forget(self, job_id: str) -> None:
        """Runs when a reader stops following a job: nothing of it is held any more."""
        self.pop(job_id, None)


def dumps_compact(value: Any) -> str:
    """JSON as the wire carries it: compact, UTF-8, and no NaN."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


_dumps = dumps_compact


def epoch_json(epoch: str) -> str:
    """What follows a job's seq in its JSON: its epoch (see StateStore for how Redis adds it)."""
    return ',"epoch":' + dumps_compact(str(epoch))


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
        """The job's JSON split where its seq and epoch go, so Redis can number it atomically."""
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
        return dumps_compact(head)[:-1] + ',"seq":', "," + dumps_compact(tail)[1:]

    def to_json(self, seq: int, epoch: str = "") -> str:
        head, tail = self.encode()
        return f"{head}{int(seq)}{epoch_json(epoch)}{tail}"

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
