"""What a Celery task message of a progress job carries beyond Celery's own fields. Pure.

Every call that queues a job (launch, retry, a group's parts, a chord's callback) sends
JOB_HEADER, so that a worker tells a job from any other task of the project by the
message alone: a task without it costs no query (progress.worker.handlers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The header's name, and what it is set to. A string value: brokers' header tables differ
# in what they keep of other types.
JOB_HEADER = "progress_job"
JOB_HEADERS: dict[str, str] = {JOB_HEADER: "1"}


def carries_job(request: Any) -> bool:
    """Whether a task's request (celery's Context) came with JOB_HEADER.

    A worker sets custom headers as attributes of the request; Task.apply() (eager, and
    tests) keeps them in request.headers.
    """
    if getattr(request, JOB_HEADER, None):
        return True
    headers = getattr(request, "headers", None)
    return isinstance(headers, Mapping) and bool(headers.get(JOB_HEADER))
