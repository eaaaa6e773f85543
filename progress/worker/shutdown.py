"""A worker's warm shutdown: its running jobs end saying why, and stop. Worker processes.

It runs in the worker's main process. Celery's warm shutdown (SIGTERM) waits
for the running tasks to finish, and whatever stops the worker for good after a
grace period (make run's supervisor, compose's stop_grace_period) then kills
them, their jobs left running until the sweep calls them lost, their logs gone
with Redis. Instead, as the shutdown begins, each running job gets its final
state at once, with its log kept: a FAILURE that says the service stopped, or,
for a task marked safe to run again (Celery's retry_on_worker_lost), RETRY and
a new message in the queue under the same job id. The task still running it
has its next report refused (progress.worker.reporter.JobEnded) and stops, so
the shutdown is quick too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from celery.signals import worker_shutting_down
from celery.worker import state as worker_state
from django.db import connections

from progress.core import machine, registry
from progress.core.publisher import get_publisher
from progress.jsonlog import about
from progress.models import Job
from progress.protocol.messages import JOB_HEADER, JOB_HEADERS
from progress.protocol.states import State

logger = logging.getLogger(__name__)

# What a job stopped by a shutdown says, whichever way it ends.
STOPPED_ERROR = "Stopped: the service shut down before this job finished."
RERUN_MESSAGE = "Stopped: the service shut down; the job runs again from the start once it is back."


@worker_shutting_down.connect
def _on_shutting_down(sig: str = "", how: str = "", **kwargs: Any) -> None:
    """Runs in the worker's main process, inside its signal handler, when a shutdown begins.
    The work goes to a thread: a signal handler must not wait on Redis or the database."""
    if how != "Warm":
        return
    requests = list(worker_state.active_requests)
    if requests:
        threading.Thread(target=_stop_in_thread, args=(requests,), name="progress-shutdown").start()


def _stop_in_thread(requests: list[Any]) -> None:
    """Runs in a thread of its own, started by the shutdown's signal handler."""
    try:
        stop_running_jobs(requests)
    finally:
        # The thread's own database connection, which nothing else would close.
        connections.close_all()


def _is_job(request: Any) -> bool:
    """Whether a worker's request is of a job, without a query for tasks that are not."""
    headers = getattr(request, "request_dict", None) or {}
    return bool(headers.get(JOB_HEADER)) or registry.is_registered(str(request.task_name))


def stop_running_jobs(requests: Iterable[Any]) -> int:
    """Ends each running job of these worker requests; returns how many it ended."""
    stopped = 0
    for request in requests:
        if _is_job(request):
            stopped += _stop(request)
    if stopped:
        logger.info("Stopped %d running jobs for the shutdown", stopped)
    return stopped


def _stop(request: Any) -> int:
    job = Job.objects.filter(pk=request.id).first()
    if job is None or job.is_final:
        return 0
    task = request.task
    # acks_late tasks come back from the broker by themselves; the others are sent again.
    rerun = bool(getattr(task, "retry_on_worker_lost", False)) and not task.acks_late
    try:
        if rerun:
            publisher = get_publisher()
            publisher.call(publisher.store.stop(str(job.pk)))
            if machine.record_retry(job, RERUN_MESSAGE) is None:
                return 0
            task.apply_async(
                args=request.args, kwargs=request.kwargs, task_id=str(job.pk), headers=JOB_HEADERS
            )
        elif machine.record_final(job, State.FAILURE, error=STOPPED_ERROR) is None:
            return 0
    except Exception as exc:  # Redis or the broker away: the sweep ends it once its lease is gone.
        logger.warning("Could not stop job %s: %r", job.pk, exc, extra=about(job.pk, job.owner_id))
        return 0
    return 1
