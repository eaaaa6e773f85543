"""Celery signal handlers that turn each task's lifecycle into states. Worker processes.

Task authors write no bookkeeping: STARTED, SUCCESS with the result, FAILURE
with a message, RETRY and REVOKED all come from here. prerun, success,
failure, retry and postrun fire in the worker child that runs the task;
task_revoked fires in the worker's main process.
"""

from __future__ import annotations

import json
import logging
from contextvars import Token
from typing import Any

from billiard.exceptions import WorkerLostError
from celery import Task
from celery.signals import (
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
    task_revoked,
    task_success,
    worker_process_init,
)
from django.core.serializers.json import DjangoJSONEncoder

from progress.core import machine, metrics, registry
from progress.core.publisher import get_publisher
from progress.exceptions import JobError
from progress.models import Job
from progress.protocol.frames import parse_job_id
from progress.protocol.messages import carries_job
from progress.protocol.states import WORKER_LOST_ERROR, State
from progress.worker import logs
from progress.worker.reporter import JobReporter, activate, deactivate

logger = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 500

_running: dict[str, tuple[JobReporter, Token[JobReporter | None]]] = {}


# What a user reads of an exception the task did not mean for them: its text
# may carry internals (paths, queries, hosts), so only staff see it, in the admin.
INTERNAL_ERROR = "The job failed because of an internal error."


def error_message(exc: BaseException) -> str:
    """What a user reads of a failure: a JobError's message, never a traceback or class."""
    if isinstance(exc, WorkerLostError):
        return WORKER_LOST_ERROR
    if not isinstance(exc, JobError):
        return INTERNAL_ERROR
    text = str(exc).strip()
    return text.splitlines()[0][:MAX_ERROR_LENGTH] if text else "The job failed."


def error_detail(exc: BaseException) -> str:
    """What staff read of a failure: the exception's class and message, never shown to users."""
    return f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"


@worker_process_init.connect
def _start_publisher(**kwargs: Any) -> None:
    """Runs in each worker child right after fork: opens its publisher before the first task."""
    get_publisher().store  # noqa: B018 - starting the loop thread is the point.
    logs.install()


@task_prerun.connect
def _on_prerun(task_id: str, task: Task, **kwargs: Any) -> None:
    """Runs before each task body; tasks not launched through progress are left alone, and
    cost nothing: neither a query nor a lookup in Redis."""
    job = _job_of(task_id, task, task.request)
    if job is None:
        return
    reporter = JobReporter(job)
    _running[task_id] = (reporter, activate(reporter))
    # Before STARTED shows: a job seen running always has a lease to check.
    get_publisher().leases.hold(task_id)
    reporter.start()


@task_success.connect
def _on_success(sender: Task, result: Any, **kwargs: Any) -> None:
    """Runs after a task body returns."""
    running = _running.get(sender.request.id)
    if running is None:
        return
    reporter = running[0]
    if reporter.grouped:
        return
    try:
        safe = json.loads(json.dumps(result, cls=DjangoJSONEncoder))
    except (TypeError, ValueError):
        reporter.finish(
            State.FAILURE, error=f"The task returned {type(result).__name__}, which is not JSON."
        )
        return
    reporter.finish(State.SUCCESS, result=safe)


@task_failure.connect
def _on_failure(
    task_id: str, exception: BaseException, sender: Task | None = None, **kwargs: Any
) -> None:
    """Runs after a task body raises, or in the main process when a child died mid-task."""
    error, detail = error_message(exception), error_detail(exception)
    running = _running.get(task_id)
    if running is not None:
        running[0].finish(State.FAILURE, error=error, detail=detail)
        return
    # A lost child's task is known by its id alone: the main process has no request of it.
    lost = isinstance(exception, WorkerLostError)
    task = None if lost else sender
    request = None if task is None else task.request
    ended = _end_unfinished(task_id, State.FAILURE, task, request, error=error, detail=detail)
    if ended and lost:
        metrics.WORKER_LOST.inc()


@task_retry.connect
def _on_retry(sender: Task, request: Any, reason: object, **kwargs: Any) -> None:
    """Runs when a task asks Celery to retry it, or in the main process when Celery re-queues
    a task marked retry_on_worker_lost after its child died."""
    running = _running.get(request.id)
    if running is not None:
        running[0].retry(reason)
        return
    job = _job_of(getattr(request, "id", None), sender, request)
    if job is not None and not job.is_final:
        machine.record_retry(job, "Worker lost; running the job again.")


@task_postrun.connect
def _on_postrun(task_id: str, **kwargs: Any) -> None:
    """Runs after every task, whatever its outcome."""
    running = _running.pop(task_id, None)
    if running is not None:
        deactivate(running[1])
        get_publisher().leases.release(task_id)


@task_revoked.connect
def _on_revoked(request: Any, sender: Task | None = None, **kwargs: Any) -> None:
    """Runs in the worker's main process when a task is revoked, terminated or expired."""
    _end_unfinished(getattr(request, "id", None), State.REVOKED, sender, request)


def _job_of(task_id: object, task: Task | None = None, request: Any = None) -> Job | None:
    """The job launched as this task, or None for tasks not launched through progress.

    Given the task and its request, a call that may not be a job costs no query: one sent
    without JOB_HEADER (as every job is) of a task that is not registered (a registered
    task's message may predate the header, or come from its own .delay())."""
    if task is not None and not (carries_job(request) or registry.is_registered(task.name)):
        return None
    job_uuid = parse_job_id(task_id)
    return Job.objects.filter(pk=job_uuid).first() if job_uuid else None


def _end_unfinished(
    task_id: object,
    final: State,
    task: Task | None = None,
    request: Any = None,
    error: str | None = None,
    detail: str = "",
) -> bool:
    """Ends the task's job from outside its reporter, unless it has already ended; True if
    this call ended it."""
    job = _job_of(task_id, task, request)
    if job is None or job.is_final:
        return False
    return machine.record_final(job, final, error=error, detail=detail) is not None
