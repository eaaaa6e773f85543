"""The Redis key schema: every key the store reads or writes, named once. Any process."""

from __future__ import annotations

import uuid


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
    """The Redis list of a job's latest log lines, each the JSON of {"n", "ts", "level", "text"}."""
    return f"progress:log:{uuid.UUID(str(job_id)).hex}"


def log_count_key(job_id: uuid.UUID | str) -> str:
    """The Redis counter of a job's log lines: the `n` of its last one."""
    return f"progress:logn:{uuid.UUID(str(job_id)).hex}"


def group_key(job_id: uuid.UUID | str) -> str:
    """The Redis hash that sums a group job's parts (progress.worker.groups), O(1) per update."""
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
