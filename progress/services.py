"""The logic the edges call: launch, cancel, read and record jobs for a user."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from celery import current_app
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.text import get_valid_filename
from redis.exceptions import RedisError

from . import registry
from .conf import progress_settings
from .events import FINAL_STATES, MAX_MESSAGE_LENGTH, JobState, State, parse_job_id
from .exceptions import JobNotFound, TooManyJobs
from .models import Job
from .publisher import get_publisher
from .registry import LaunchableTask

logger = logging.getLogger(__name__)

User = AbstractBaseUser | AnonymousUser

# Seconds a sync caller waits for a state change to be numbered and sent.
PUBLISH_TIMEOUT = 10.0

_STORE_ERRORS = (RedisError, OSError, TimeoutError, RuntimeError)


def _now_iso() -> str:
    return timezone.now().isoformat()


def _user_id(user: User) -> int:
    """The id of a logged-in user; the edges refuse anonymous users before calling here."""
    if not user.is_authenticated or user.pk is None:
        raise JobNotFound()
    return int(user.pk)


# Reading.


def visible_jobs(user: User) -> QuerySet[Job]:
    """Users see their own jobs; staff see every job."""
    if not user.is_authenticated:
        return Job.objects.none()
    if getattr(user, "is_staff", False):
        return Job.objects.all()
    return Job.objects.filter(owner_id=_user_id(user))


def get_visible_job(user: User, job_id: object) -> Job:
    """The job if the user may see it; JobNotFound otherwise, whether it exists or not."""
    uuid = parse_job_id(job_id)
    if uuid is None:
        raise JobNotFound()
    try:
        return visible_jobs(user).get(pk=uuid)
    except Job.DoesNotExist:
        raise JobNotFound() from None


def latest(jobs: Sequence[Job]) -> list[tuple[Job, int, str]]:
    """Each job with its newest (seq, json): Redis's if it is newer than the row's."""
    try:
        store = get_publisher().store
        stored = get_publisher().call(store.get_many([str(job.id) for job in jobs]))
    except _STORE_ERRORS as exc:
        logger.warning("Job states unavailable from Redis, using the database: %r", exc)
        stored = {}
    out = []
    for job in jobs:
        seq_json = stored.get(str(job.id))
        if seq_json is not None and seq_json[0] >= job.seq:
            out.append((job, *seq_json))
        else:
            out.append((job, job.seq, job.to_json()))
    return out


def latest_of(job: Job) -> tuple[int, str]:
    """The job's newest seq and contract JSON."""
    _job, seq, payload = latest([job])[0]
    return seq, payload


def job_json(job: Job) -> str:
    """The job's newest state as contract JSON."""
    return latest_of(job)[1]


def current_state(job: Job) -> tuple[JobState, int]:
    """The job's newest state and its seq."""
    seq, payload = latest_of(job)
    return JobState.from_dict(json.loads(payload), job.owner_id), seq


def list_jobs(user: User) -> list[str]:
    """The user's own jobs, newest first, as contract JSON."""
    jobs = list(Job.objects.filter(owner_id=_user_id(user))[: progress_settings.LIST_LIMIT])
    return [payload for _job, _seq, payload in latest(jobs)]


def snapshot(user: User) -> list[tuple[str, int, str]]:
    """A socket's first frame: unfinished jobs and recent finished ones, as (id, seq, json)."""
    own = Job.objects.filter(owner_id=_user_id(user))
    jobs = list(own.unfinished()) + list(own.finished()[: progress_settings.SNAPSHOT_FINISHED])
    jobs.sort(key=lambda job: job.created, reverse=True)
    return [(str(job.id), seq, payload) for job, seq, payload in latest(jobs)]


# Launching and cancelling.


def launch(user: User, task_name: object, params: object) -> Job:
    """Validates and records a job, then queues its task once the row is committed."""
    spec = registry.get(task_name)
    cleaned = spec.validate(params)
    limit = progress_settings.MAX_RUNNING_JOBS
    with transaction.atomic():
        if limit and Job.objects.filter(owner_id=_user_id(user)).unfinished().count() >= limit:
            raise TooManyJobs(limit)
        job = Job.objects.create(
            owner_id=_user_id(user), task=spec.name, params=cleaned, ts=time.time()
        )
        transaction.on_commit(partial(_enqueue, job, spec))
    return job


def _enqueue(job: Job, spec: LaunchableTask) -> None:
    """Runs once the job's row is committed, so the worker always finds it."""
    seq = commit_state(job.to_state())
    if seq is not None:
        job.seq = seq
    try:
        spec.task.apply_async(kwargs=job.params, task_id=str(job.id))
    except Exception:  # Any broker failure must end the job, not leave it PENDING.
        logger.exception("Could not queue job %s", job.id)
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
    job.refresh_from_db()
    return job


# Recording states (from workers and from the web alike).


def commit_state(state: JobState, floor: int = 0) -> int | None:
    """Publishes a change of state and writes it to the row; None if the job had already ended."""
    try:
        seq = get_publisher().publish(state, floor).result(PUBLISH_TIMEOUT)
    except Exception as exc:  # Redis down: the row still records the state.
        logger.warning("Could not publish %s of job %s: %r", state.state, state.id, exc)
        seq = floor + 1
    if seq is None:
        return None
    fields: dict[str, Any] = {
        "state": state.state.value,
        "current": state.current,
        "total": state.total,
        "message": state.message[:MAX_MESSAGE_LENGTH],
        "ts": state.ts,
        "seq": seq,
    }
    if state.started:
        fields["started"] = datetime.fromisoformat(state.started)
    if state.is_final:
        fields.update(
            result=state.result,
            error=state.error or "",
            finished=datetime.fromisoformat(state.finished or _now_iso()),
        )
    Job.objects.filter(pk=state.id).exclude(state__in=FINAL_STATES).update(**fields)
    return seq


def write_progress(state: JobState) -> None:
    """Writes a running job's numbers to its row, at a low rate; Redis has every state."""
    Job.objects.filter(pk=state.id).exclude(state__in=FINAL_STATES).update(
        state=state.state.value,
        current=state.current,
        total=state.total,
        message=state.message[:MAX_MESSAGE_LENGTH],
        ts=state.ts,
    )


def record_final(
    job: Job, final: State, *, result: Any = None, error: str | None = None
) -> int | None:
    """Ends a job from outside its task (cancel, revoke, queueing failure)."""
    state, seq = current_state(job)
    state.state = final
    state.result = result
    state.error = error
    state.eta = None
    state.ts = time.time()
    state.finished = _now_iso()
    return commit_state(state, floor=seq)


def attach_file(job_id: str, filename: str, content: bytes | str) -> str:
    """Keeps a result file with the job; returns the URL only its owner can download it from."""
    job = Job.objects.get(pk=job_id)
    data = content.encode() if isinstance(content, str) else content
    job.result_file.save(get_valid_filename(filename), ContentFile(data), save=False)
    Job.objects.filter(pk=job.pk).update(result_file=job.result_file.name)
    return reverse("progress:download", args=[job.pk])


# Sockets (called from the consumer's event loop).


async def open_socket(user_id: int, socket_id: str) -> bool:
    """Counts a new socket of the user; False when they already hold MAX_SOCKETS."""
    publisher = get_publisher()
    limit = int(progress_settings.MAX_SOCKETS)
    return await publisher.acall(
        publisher.store.add_socket(user_id, socket_id, limit, _stale_after())
    )


async def close_sockets(sockets: list[tuple[str, int]]) -> None:
    """Uncounts closed sockets, given as (socket id, user id) pairs."""
    publisher = get_publisher()
    await publisher.acall(publisher.store.remove_sockets(sockets))


async def touch_sockets(sockets: list[tuple[str, int]]) -> None:
    """Marks (socket id, user id) pairs alive, so they are not counted as stale."""
    if sockets:
        publisher = get_publisher()
        await publisher.acall(publisher.store.touch_sockets(sockets, _stale_after()))


def _stale_after() -> float:
    """Seconds after which an unrenewed socket no longer counts: its server has gone."""
    return 3 * float(progress_settings.HEARTBEAT)


async def aget_visible_job(user: User, job_id: object) -> Job:
    """get_visible_job() for async views."""
    uuid = parse_job_id(job_id)
    if uuid is None:
        raise JobNotFound()
    try:
        return await visible_jobs(user).aget(pk=uuid)
    except Job.DoesNotExist:
        raise JobNotFound() from None
