"""The logic the edges call: launch, cancel, read and record jobs for a user."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
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

from . import groups, metrics, permissions, registry, signals
from .conf import progress_settings
from .events import (
    FINAL_STATES,
    MAX_MESSAGE_LENGTH,
    WORKER_LOST_ERROR,
    JobDict,
    JobState,
    State,
    dumps_compact,
    parse_job_id,
)
from .exceptions import (
    InvalidParams,
    JobNotFound,
    NotRetryable,
    TooManyJobs,
    TooManyLaunches,
    UnknownTask,
)
from .jsonlog import about
from .models import Job
from .publisher import get_publisher
from .registry import LaunchableTask
from .store import Latest

logger = logging.getLogger(__name__)

User = AbstractBaseUser | AnonymousUser

# Seconds a sync caller waits for a state change to be numbered and sent.
PUBLISH_TIMEOUT = 10.0

# Running jobs one sweep looks at; the next sweep takes the rest.
SWEEP_BATCH = 1000

MAX_DETAIL_LENGTH = 2000

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
    """The jobs the user may see, by PROGRESS["VISIBILITY"]: by default their own, and
    every job for staff."""
    if not user.is_authenticated:
        return Job.objects.none()
    return permissions.visibility()(user, Job.objects.all())


def job_by_id(job_id: object) -> Job:
    """Any job by id, for trusted code (a terminal, a task); JobNotFound for a bad id."""
    uuid = parse_job_id(job_id)
    if uuid is None:
        raise JobNotFound()
    try:
        return Job.objects.get(pk=uuid)
    except Job.DoesNotExist:
        raise JobNotFound() from None


def get_visible_job(user: User, job_id: object) -> Job:
    """The job if the user may see it; JobNotFound otherwise, whether it exists or not."""
    uuid = parse_job_id(job_id)
    if uuid is None:
        raise JobNotFound()
    try:
        return visible_jobs(user).get(pk=uuid)
    except Job.DoesNotExist:
        raise JobNotFound() from None


def _stored_states(job_ids: list[str]) -> dict[str, Latest]:
    """The states Redis holds of these jobs; none when Redis is out of reach."""
    if not job_ids:
        return {}
    try:
        publisher = get_publisher()
        return publisher.call(publisher.store.get_many(job_ids))
    except _STORE_ERRORS as exc:
        logger.warning("Job states unavailable from Redis, using the database: %r", exc)
        return {}


def _newest(
    row_seqs: Sequence[tuple[str, int]], rows: Callable[[list[str]], Iterable[Job]]
) -> dict[str, Latest]:
    """The newest state of each (job id, its row's seq): Redis's if it is at least as new as
    the row's, else the row's, which `rows` loads for those jobs only."""
    stored = _stored_states([job_id for job_id, _seq in row_seqs])
    behind = [
        job_id for job_id, seq in row_seqs if job_id not in stored or stored[job_id].seq < seq
    ]
    for job in rows(behind) if behind else ():
        stored[str(job.pk)] = Latest(job.seq, job.to_json(), job.is_final)
    return stored


def latest(jobs: Sequence[Job]) -> list[tuple[Job, Latest]]:
    """Each job with its newest state: Redis's if it is newer than the row's."""
    by_id = {str(job.id): job for job in jobs}
    newest = _newest([(job_id, job.seq) for job_id, job in by_id.items()],
                     lambda ids: (by_id[job_id] for job_id in ids))  # fmt: skip
    return [(job, newest[str(job.id)]) for job in jobs]


def latest_of(job: Job) -> Latest:
    """The job's newest seq and contract JSON."""
    return latest([job])[0][1]


def parts_of(job: Job) -> list[str]:
    """The newest JSON of a group job's parts, in order; none for any other job."""
    return [found.json for _part, found in latest(list(job.parts.order_by("part")))]


def job_json(job: Job) -> str:
    """The job's newest state as contract JSON."""
    return latest_of(job).json


def state_of(job: Job) -> JobDict:
    """The job's newest state as the contract's JSON, decoded: for other apps' views."""
    state: JobDict = json.loads(job_json(job))
    return state


def current_state(job: Job) -> tuple[JobState, int]:
    """The job's newest state and its seq."""
    seq, payload, _final = latest_of(job)
    return JobState.from_dict(json.loads(payload), job.owner_id), seq


def list_jobs(user: User) -> list[str]:
    """The user's own jobs, newest first, as contract JSON."""
    jobs = list(Job.objects.filter(owner_id=_user_id(user))[: progress_settings.LIST_LIMIT])
    return [found.json for _job, found in latest(jobs)]


def owner_snapshot(owner_id: int) -> list[tuple[str, Latest]]:
    """A socket's first frame: the user's unfinished jobs and recent finished ones, as
    (id, state), newest first; a hub also reads it to resync a user's sockets.

    Every socket's handshake reads it, all of a storm of reconnects at once: rows
    are read whole only for the jobs whose newest state Redis no longer holds.
    """
    own = Job.objects.filter(owner_id=owner_id)
    fields = ("pk", "seq", "created")
    rows = list(own.unfinished().values_list(*fields))
    rows += own.finished().values_list(*fields)[: progress_settings.SNAPSHOT_FINISHED]
    rows.sort(key=lambda row: row[2], reverse=True)
    row_seqs = [(str(pk), seq) for pk, seq, _created in rows]
    newest = _newest(row_seqs, lambda ids: Job.objects.filter(pk__in=ids))
    return [(job_id, newest[job_id]) for job_id, _seq in row_seqs]


# Launching and cancelling.


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
    spec = registry.get(task_name, public_only=public_only)
    cleaned = spec.validate(params)
    _count_launch(_user_id(user))
    limit = progress_settings.MAX_RUNNING_JOBS
    with transaction.atomic():
        # A group's parts are its work, not launches of the user's: the group counts once.
        mine = Job.objects.filter(owner_id=_user_id(user), parent__isnull=True)
        if limit and mine.unfinished().count() >= limit:
            raise TooManyJobs(limit)
        job = Job.objects.create(
            owner_id=_user_id(user),
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
    except _STORE_ERRORS as exc:  # A limit must not take launching down with Redis.
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
        spec.task.apply_async(kwargs=job.params, task_id=str(job.id))
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
    groups.cancel_parts(job)
    job.refresh_from_db()
    return job


# The final states a user may launch again; a job that succeeded is done.
_RETRYABLE = frozenset({State.FAILURE, State.REVOKED})


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
    if state.state not in _RETRYABLE:
        raise NotRetryable(
            f"Only a failed or cancelled job can be retried; this one is {state.state}."
        )
    try:
        return launch_params(job.owner, job.task, job.params, retry_of=job)
    except UnknownTask:
        raise NotRetryable("This job's task is not one users may launch themselves.") from None
    except InvalidParams:
        raise NotRetryable("This job's parameters are no longer valid; launch it anew.") from None


# Recording states (from workers and from the web alike).


def commit_state(state: JobState, floor: int = 0, detail: str = "") -> int | None:
    """Publishes a change of state and writes it to the row; None if the job had already ended.

    `detail` is what staff may read of a failure (in the admin), never sent to users.
    """
    try:
        seq = get_publisher().publish(state, floor).result(PUBLISH_TIMEOUT)
    except Exception as exc:  # Redis down: the row records the state; the publisher retries.
        logger.warning(
            "Could not publish %s of job %s yet: %r",
            state.state,
            state.id,
            exc,
            extra=about(state.id, state.owner_id),
        )
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
            error_detail=detail[:MAX_DETAIL_LENGTH],
            finished=datetime.fromisoformat(state.finished or _now_iso()),
        )
    if state.is_final:
        fields["log"] = _kept_log(state.id)
    updated = Job.objects.filter(pk=state.id).exclude(state__in=FINAL_STATES).update(**fields)
    if updated:
        _announce(state, seq)
        if state.is_final and state.parent:
            groups.part_ended(state.id, state.parent)
    return seq


def _kept_log(job_id: str) -> list[dict[str, Any]]:
    """The job's log lines Redis keeps, for its row once it ends; none if Redis is away."""
    try:
        publisher = get_publisher()
        lines = publisher.call(publisher.store.get_log(job_id))
    except _STORE_ERRORS as exc:
        logger.warning("Log of job %s unavailable from Redis: %r", job_id, exc, extra=about(job_id))
        return []
    return [json.loads(line) for line in lines]


def job_log(job: Job) -> list[str]:
    """The job's kept log lines, oldest first, as JSON: Redis's while it has them, else the
    row's."""
    try:
        publisher = get_publisher()
        lines = publisher.call(publisher.store.get_log(str(job.pk)))
    except _STORE_ERRORS as exc:
        logger.warning(
            "Log of job %s unavailable from Redis: %r",
            job.pk,
            exc,
            extra=about(job.pk, job.owner_id),
        )
        lines = []
    if lines:
        return lines
    stored = Job.objects.filter(pk=job.pk).values_list("log", flat=True).first() or []
    return [dumps_compact(line) for line in stored]


def _announce(state: JobState, seq: int) -> None:
    """Runs once a change of state is written: sends job_started or job_finished."""
    if state.is_final:
        signal = signals.job_finished
    elif state.state is State.STARTED:
        signal = signals.job_started
    else:
        return
    if signal.has_listeners():
        signals.send(signal, state, seq, job=Job.objects.get(pk=state.id))


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
    job: Job,
    final: State,
    *,
    result: Any = None,
    error: str | None = None,
    detail: str = "",
    **figures: Any,
) -> int | None:
    """Ends a job from outside its task (cancel, revoke, a lost worker, queueing failure, the
    last part of a group); `figures` may set its current, total and message."""
    changes = {"result": result, "error": error, "finished": _now_iso(), **figures}
    return _record(job, final, detail, **changes)


def record_progress(job: Job, **figures: Any) -> int | None:
    """Moves a job on from outside its task: a group whose parts ended, before its callback."""
    return _record(job, State.PROGRESS, **figures)


def record_retry(job: Job, message: str) -> int | None:
    """Marks a job RETRY from outside its task: Celery re-queued it after its worker was lost."""
    return _record(job, State.RETRY, message=message)


def _record(job: Job, new: State, detail: str = "", **changes: Any) -> int | None:
    """Commits the job's newest state moved to `new`; None if the job had already ended."""
    state, seq = current_state(job)
    if state.is_final:
        return None
    moved = dataclasses.replace(state, state=new, eta=None, ts=time.time(), **changes)
    return commit_state(moved, floor=seq, detail=detail)


def sweep_lost_jobs() -> list[str]:
    """Ends FAILURE the running jobs whose worker stopped renewing their lease.

    Runs every WORKER_LOST_AFTER / 3 seconds in one web process at a time (the
    hub's chores) or from `manage.py progress sweep`. A worker child killed
    mid-task is reported by Celery's main process at once; this catches what
    nobody reports: a whole worker killed, a machine gone.
    """
    timeout = float(progress_settings.WORKER_LOST_AFTER)
    if not timeout:
        return []
    groups.settle_stalled()
    # A group job waits for its parts with no worker of its own: its parts have leases.
    running = Job.objects.filter(state__in=[State.STARTED, State.PROGRESS], parts__isnull=True)
    ids = [str(job_id) for job_id in running.values_list("id", flat=True)[:SWEEP_BATCH]]
    if not ids:
        return []
    publisher = get_publisher()
    # Two looks half a lease apart: after a Redis restart, workers need one
    # renewal round (a third of a lease) to put every lease back.
    lost = publisher.call(publisher.store.lost_jobs(ids, timeout / 2))
    ended = []
    for job in Job.objects.unfinished().filter(pk__in=lost):
        logger.warning(
            "Job %s lost its worker: no lease renewal for %.0fs",
            job.pk,
            timeout,
            extra=about(job.pk, job.owner_id),
        )
        if record_final(job, State.FAILURE, error=WORKER_LOST_ERROR, detail="No lease renewal."):
            ended.append(str(job.pk))
            metrics.WORKER_LOST.inc()
        try:
            # Should the broker deliver its task again (acks_late), workers drop it.
            current_app.control.revoke(str(job.pk))
        except Exception as exc:  # The job has ended either way; a rerun would report nothing.
            logger.warning(
                "Could not revoke lost job %s: %r", job.pk, exc, extra=about(job.pk, job.owner_id)
            )
    return ended


# Finished jobs one purge deletes per round trip to the database and Redis.
PURGE_BATCH = 500


def purge_finished(older_than: float | None = None) -> int:
    """Deletes the jobs that finished over `older_than` seconds ago (default: RETENTION),
    with their Redis states and result files; returns how many. RETENTION 0 keeps all.

    Runs from the periodic task progress.purge_finished or `manage.py progress purge`.
    """
    keep = float(progress_settings.RETENTION if older_than is None else older_than)
    if older_than is None and not keep:
        return 0
    cutoff = timezone.now() - timedelta(seconds=keep)
    old = Job.objects.finished().filter(finished__lt=cutoff).order_by("finished")
    purged = 0
    while True:
        batch = list(old.values_list("pk", "result_file")[:PURGE_BATCH])
        if not batch:
            return purged
        ids = [str(pk) for pk, _file in batch]
        storage = Job._meta.get_field("result_file").storage
        for _pk, name in batch:
            if name:
                storage.delete(name)
        Job.objects.filter(pk__in=ids).delete()
        try:
            publisher = get_publisher()
            publisher.call(publisher.store.delete_states(ids))
        except _STORE_ERRORS as exc:  # Their keys expire after STATE_TTL all the same.
            logger.warning("Could not delete the Redis states of %d purged jobs: %r", len(ids), exc)
        purged += len(ids)


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


async def touch_sockets(sockets: list[tuple[str, int]], recount: bool = False) -> None:
    """Marks (socket id, user id) pairs alive, so they are not counted as stale; `recount`
    counts them again after Redis lost its data."""
    if sockets:
        publisher = get_publisher()
        await publisher.acall(publisher.store.touch_sockets(sockets, _stale_after(), recount))


async def redis_epoch() -> str:
    """A value that changes when Redis loses its data; see StateStore.epoch()."""
    publisher = get_publisher()
    return await publisher.acall(publisher.store.epoch())


async def latest_states(job_ids: list[str]) -> dict[str, Latest]:
    """The newest states Redis holds of these jobs."""
    publisher = get_publisher()
    return await publisher.acall(publisher.store.get_many(job_ids))


async def take_sweep_turn(seconds: float) -> bool:
    """True when this process should sweep for lost jobs now; see sweep_lost_jobs()."""
    publisher = get_publisher()
    return await publisher.acall(publisher.store.take_sweep_turn(seconds))


def _stale_after() -> float:
    """Seconds after which an unrenewed socket no longer counts: its server has gone."""
    return 3 * float(progress_settings.HEARTBEAT)


def is_final_json(job_json: str) -> bool:
    """Whether a job's contract JSON is of a final state."""
    return str(json.loads(job_json).get("state")) in FINAL_STATES


async def ajob_by_id(job_id: object) -> Job:
    """Any job by id, for trusted server code; JobNotFound for a bad or unknown id."""
    uuid = parse_job_id(job_id)
    if uuid is None:
        raise JobNotFound()
    try:
        return await Job.objects.aget(pk=uuid)
    except Job.DoesNotExist:
        raise JobNotFound() from None


async def aget_visible_job(user: User, job_id: object) -> Job:
    """get_visible_job() for async views."""
    uuid = parse_job_id(job_id)
    if uuid is None:
        raise JobNotFound()
    try:
        return await visible_jobs(user).aget(pk=uuid)
    except Job.DoesNotExist:
        raise JobNotFound() from None
