"""Channel-layer messages between publishers and hubs, and their groups. Pure; any process."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

from progress.protocol.states import Mark

# The channel-layer message type that carries a job state to each web
# process's hub (progress/web/hub.py).
LAYER_JOB_MESSAGE = "progress.job"


# The channel-layer message type that tells each hub to close a user's sockets
# of one session (a logout), or of every session when `session` is empty.
LAYER_SESSION_ENDED = "progress.session_ended"


# The channel-layer message type that carries new log lines of a job to the hubs.
LAYER_LOG_MESSAGE = "progress.log"


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
    # The epoch of the seq's numbering; absent from messages of a publisher before it.
    epoch: NotRequired[str]
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


def job_message(
    group: str, job_id: str, mark: Mark, final: bool, frame: str, ts: float | None = None
) -> LayerJobMessage:
    """The channel-layer message that carries one job state to the hubs listening on `group`."""
    message: LayerJobMessage = {
        "type": LAYER_JOB_MESSAGE,
        "group": group,
        "job_id": job_id,
        "seq": mark.seq,
        "epoch": mark.epoch,
        "final": final,
        "frame": frame,
    }
    if ts:
        message["ts"] = ts
    return message


def message_mark(message: Mapping[str, Any]) -> Mark:
    """The epoch and seq of the state a job message carries."""
    return Mark(message.get("epoch", ""), message["seq"], bool(message.get("final")))


def log_message(group: str, job_id: str, last: int, frame: str) -> LayerLogMessage:
    """The channel-layer message that carries a batch of log lines to the hubs on `group`."""
    return {"type": LAYER_LOG_MESSAGE, "group": group, "job_id": job_id, "last": last,
            "frame": frame}  # fmt: skip
