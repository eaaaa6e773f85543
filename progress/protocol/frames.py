"""WebSocket and SSE frames: names, builders and the client frame parser. Pure; any process."""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs

from progress.protocol.states import Mark, dumps_compact

# The protocol's version: 2 added `epoch` to every job and the recovery of a reconnect
# (docs/protocol.md, section 6). The snapshot says it.
PROTOCOL_VERSION = 2

# The query parameter of a reconnecting socket (or user stream) that says what it holds.
HELD_PARAMETER = "held"

# The most jobs a `held` parameter may name; more are not looked at. 100 entries of about
# 56 bytes keep the request line under nginx's default 8 KiB header buffer.
MAX_HELD = 100


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


def job_frame(job_json: str) -> str:
    """`{"type": "job", "job": ...}` around a job already encoded once."""
    return f'{{"type":"{EventType.JOB.value}","job":{job_json}}}'


def log_frame(job_id: str, line_jsons: list[str]) -> str:
    """`{"type": "log", "job": id, "lines": [...]}` around lines already encoded once."""
    return (
        f'{{"type":"{EventType.LOG.value}","job":{dumps_compact(str(job_id))},'
        f'"lines":[{",".join(line_jsons)}]}}'
    )


_JOB_FRAME_HEAD = f'{{"type":"{EventType.JOB.value}","job":'


def frame_job(frame: str) -> str:
    """The job JSON inside a frame job_frame() made, without decoding it."""
    if not frame.startswith(_JOB_FRAME_HEAD) or not frame.endswith("}"):
        raise ValueError("Not a job frame.")
    return frame[len(_JOB_FRAME_HEAD) : -1]


def snapshot_frame(job_jsons: list[str], replaced: Sequence[str] | None = None) -> str:
    """`{"type": "snapshot", "jobs": [...], "protocol": 2}` around jobs already encoded once;
    with `replaced` (the client said what it held), also `recovered` and `replaced`."""
    tail = f',"protocol":{PROTOCOL_VERSION}'
    if replaced is not None:
        tail += f',"recovered":{dumps_compact(not replaced)},"replaced":{dumps_compact(replaced)}'
    return f'{{"type":"{EventType.SNAPSHOT.value}","jobs":[{",".join(job_jsons)}]{tail}}}'


def replaced_jobs(held: Mapping[str, Mark], shown: Mapping[str, Mark]) -> list[str]:
    """The jobs the client held whose numbering the snapshot replaces: shown under another
    epoch. A job shown in the epoch held continues it (the client keeps the higher seq)."""
    return [job_id for job_id, mark in held.items() if job_id in shown
            and shown[job_id].epoch != mark.epoch]  # fmt: skip


def parse_held(query: str) -> dict[str, Mark] | None:
    """What a reconnecting client holds, from its query string: `held=<job id>:<epoch>:<seq>`
    entries, comma-separated; None when it sent none. FrameError for a malformed one."""
    values = parse_qs(query, keep_blank_values=True).get(HELD_PARAMETER)
    if values is None:
        return None
    held: dict[str, Mark] = {}
    for entry in ",".join(values).split(",")[:MAX_HELD]:
        if not entry:
            continue
        job, _, rest = entry.partition(":")
        epoch, _, seq = rest.rpartition(":")
        uuid_ = parse_job_id(job)
        if uuid_ is None or not seq.isdigit() or len(epoch) > 64:
            raise FrameError(
                ErrorCode.BAD_FRAME,
                f"Ignored `{HELD_PARAMETER}`: each entry is <job id>:<epoch>:<seq>.",
            )
        held[str(uuid_)] = Mark(epoch, int(seq))
    return held


def error_frame(code: ErrorCode, detail: str) -> str:
    return dumps_compact({"type": EventType.ERROR.value, "error": code.value, "detail": detail})


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
