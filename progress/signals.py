"""Django signals other apps connect to: a job started, progressed, finished. Any process.

Each fires in the process that records the state, after its row is written:

- `job_started`: in the worker child that runs the task, before its body.
- `job_progress`: in that worker child, on the task's own thread, for each
  progress state it publishes (at most one per THROTTLE seconds). The last state
  of a burst, which the publisher's timer sends after the task went quiet, does
  not fire it: receivers never run on the publisher's event-loop thread.
- `job_finished`: wherever the job ends. SUCCESS and FAILURE fire in the worker
  child; a cancel fires in the web process that took it; a revoke or a lost
  worker child fires in the worker's main process; a whole worker lost fires in
  the process that swept it. It fires exactly once per job.

Every signal is sent with `sender=Job` and the keyword arguments `job_id`
(str), `task` (str), `owner_id` (int) and `state` (the job as the contract's
JSON, a dict; in `job_progress` its `seq` is None, as the publisher numbers the
state afterwards). `job_started` and `job_finished` also pass `job`, the row as
just written. A receiver that raises is logged and does not stop the job or the
other receivers.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.dispatch import Signal

from progress.protocol.states import JobState

logger = logging.getLogger(__name__)

job_started = Signal()
job_progress = Signal()
job_finished = Signal()


def send(signal: Signal, state: JobState, seq: int | None, epoch: str = "", **extra: Any) -> None:
    """Runs after a state is recorded: calls the receivers, logging any that fail. A state
    not numbered yet (`seq` None: job_progress) has no epoch either."""
    if not signal.has_listeners():
        return
    from progress.models import Job

    payload: dict[str, Any] = json.loads(state.to_json(seq or 0, epoch))
    if seq is None:
        payload["seq"] = payload["epoch"] = None
    results = signal.send_robust(
        sender=Job,
        job_id=state.id,
        task=state.task,
        owner_id=state.owner_id,
        state=payload,
        **extra,
    )
    for receiver, result in results:
        if isinstance(result, Exception):
            logger.error(
                "Receiver %r of a progress signal failed on job %s",
                receiver,
                state.id,
                exc_info=result,
            )
