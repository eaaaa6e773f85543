"""What users and other apps do to jobs: launch, cancel, retry. Any process."""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

from celery import current_app
from django.db import transaction

from progress.conf import progress_settings
from progress.core import registry
from progress.core.machine import cancel_parts, commit_state, record_final
from progress.core.outage import REDIS_UNAVAILABLE
from progress.core.publisher import get_publisher
from progress.core.reads import User, current_state, get_visible_job, user_id_of
from progress.core.registry import LaunchableTask
from progress.exceptions import (
    InvalidParams,
    NotRetryable,
    ProgressError,
    TooManyJobs,
    TooManyLaunches,
    UnknownTask,
)
from progress.jsonlog import about
from progress.models import Job
from progress.protocol.messages import JOB_HEADERS
from progress.protocol.states import RETRYABLE_STATES, State

logger = logging.getLogger(__name__)


def launch(user: User, task_name: str, /, **params: Any) -> Job:
    """Launches a registered task for `user`: `launch(user, "demo.count", steps=50)`.

    Validates the params with the task's form (InvalidParams), records the job,
    and queues the task once the current transaction commits. Any registered
    task may be launched this way, public or not; the per-user limits apply.
    """
    return launch_params(user, task_name, params, public_only=False)


def launch_params(
    user: User,
    task_name: object,
    params: object,
    public_only: bool = True,
    *,
    retry_of: Job | None = None,
) -> Job:
    """Validates and records a job, then queues its task once the row is committed.

    Takes the task name and params as a client sent them; with `public_only`
    (user input) a task registered with public=False is unknown. `retry_of` is
    the job that retry() re-launches.
    """
    if not getattr(user, "is_authenticated", False):
        raise ProgressError(
            f"A job needs a logged-in user to own it; {user!r} is not one (AnonymousUser?)."
        )
    spec = registry.get(task_name, public_only=public_only)
    cleaned = spec.validate(params)
    _count_launch(user_id_of(user))
    limit = progress_settings.MAX_RUNNING_JOBS
    with transaction.atomic():
        # A group's parts are its work, not launches of the user's: the group counts once.
        mine = Job.objects.filter(owner_id=user_id_of(user), parent__isnull=True)
        if limit and mine.unfinished().count() >= limit:
            raise TooManyJobs(limit)
        job = Job.objects.create(
            owner_id=user_id_of(user),
            task=spec.name,
            params=cleaned,
            ts=time.time(),
            retry_of=retry_of,
        )
        transaction.on_commit(partial(_enqueue, job, spec))
    return job


def _count_launch(user_id: int) -> None:
    """Counts a valid launch against MAX_LAUNCHES_PER_MINUTE; raises TooManyLaunches past it."""
    limit = int(progress_settings.MAX_LAUNCHES_PER_MINUTE)
    if not limit:
        return
    try:
        publisher = get_publisher()
        count = publisher.call(publisher.store.count_launch(user_id))
    except REDIS_UNAVAILABLE as exc:  # A limit must not take launching down with Redis.
        logger.warning("Launch rate unknown, Redis unavailable: %r", exc)
        return
    if count > limit:
        raise TooManyLaunches(limit, retry_after=60 - int(time.time()) % 60)


def _enqueue(job: Job, spec: LaunchableTask) -> None:
    """Runs once the job's row is committed, so the worker always finds it."""
    seq = commit_state(job.to_state())
    if seq is not None:
        job.seq = seq
    try:
        spec.task.apply_async(kwargs=job.params, task_id=str(job.id), headers=JOB_HEADERS)
    except Exception:  # Any broker failure must end the job, not leave it PENDING.
        logger.exception("Could not queue job %s", job.id, extra=about(job.pk, job.owner_id))
        record_final(job, State.FAILURE, error="The job could not be queued; try again later.")


def cancel(user: User, job_id: object) -> Job:
    """Ends a visible job REVOKED and stops its task wherever it runs."""
    job = get_visible_job(user, job_id)
    state, _seq = current_state(job)
    if state.is_final:
        return job
    record_final(job, State.REVOKED)
    # After the REVOKED state is stored, so a task that ends meanwhile cannot overwrite it.
    current_app.control.revoke(str(job.id), terminate=True, signal="SIGTERM")
    cancel_parts(job)
    job.refresh_from_db()
    return job


def retry(user: User, job_id: object) -> Job:
    """Runs when a user retries a job (POST /api/jobs/<id>/retry/, or another app's code):
    launches a visible FAILURE or REVOKED job again, the same task and params for the
    same owner, as a new job whose `retry_of` is the old one.

    NotRetryable for a job still running or that succeeded, a part of a group
    (its group launches its parts), or a task users may not launch themselves; the
    per-user limits of the owner apply as for any launch.
    """
    job = get_visible_job(user, job_id)
    if job.parent_id is not None:
        raise NotRetryable("A part of a group job cannot be retried on its own.")
    state, _seq = current_state(job)
    if state.state not in RETRYABLE_STATES:
        raise NotRetryable(
            f"Only a failed or cancelled job can be retried; this one is {state.state}."
        )
    try:
        return launch_params(job.owner, job.task, job.params, retry_of=job)
    except UnknownTask:
        raise NotRetryable("This job's task is not one users may launch themselves.") from None
    except InvalidParams:
        raise NotRetryable("This job's parameters are no longer valid; launch it anew.") from None
