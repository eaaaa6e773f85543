"""Reading jobs: visibility, and each job's newest state from Redis or its row. Any process."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

from progress import permissions
from progress.conf import progress_settings
from progress.core.outage import REDIS_UNAVAILABLE
from progress.core.publisher import get_publisher
from progress.core.store import Latest
from progress.exceptions import (
    JobNotFound,
)
from progress.jsonlog import about
from progress.models import Job
from progress.protocol.frames import parse_job_id
from progress.protocol.states import (
    FINAL_STATES,
    JobDict,
    JobState,
    Mark,
    dumps_compact,
)

logger = logging.getLogger(__name__)


User = AbstractBaseUser | AnonymousUser


def user_id_of(user: User) -> int:
    """The id of a logged-in user; the edges refuse anonymous users before calling here."""
    if not user.is_authenticated or user.pk is None:
        raise JobNotFound()
    return int(user.pk)


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


def _stored_states(job_ids: list[str]) -> dict[str, Latest] | None:
    """The states Redis holds of these jobs; None when Redis is out of reach."""
    if not job_ids:
        return {}
    try:
        publisher = get_publisher()
        return publisher.call(publisher.store.get_many(job_ids))
    except REDIS_UNAVAILABLE as exc:
        logger.warning("Job states unavailable from Redis, using the database: %r", exc)
        return None


def _seed(jobs: list[Job]) -> dict[str, Latest]:
    """Puts the states of unfinished jobs Redis lost back from their rows, each under a new
    epoch, so that every reader learns that their numbering restarted; what Redis held
    instead wins where a worker got there first."""
    try:
        publisher = get_publisher()
        rows = [(job.to_state(), job.seq) for job in jobs]
        seeded = publisher.call(publisher.store.seed_many(rows))
    except REDIS_UNAVAILABLE as exc:
        logger.warning("Could not put job states back into Redis: %r", exc)
        return {str(job.pk): _row_latest(job) for job in jobs}
    for job, found in zip(jobs, seeded, strict=True):
        if found.epoch != job.epoch:
            # Where the row is read next (Redis away), it tells of the new numbering.
            Job.objects.filter(pk=job.pk, seq__lte=found.seq).update(epoch=found.epoch)
    return {str(job.pk): found for job, found in zip(jobs, seeded, strict=True)}


def _row_latest(job: Job) -> Latest:
    return Latest(job.seq, job.to_json(), job.is_final, job.epoch)


def _newest(
    row_marks: Sequence[tuple[str, Mark]], rows: Callable[[list[str]], Iterable[Job]]
) -> dict[str, Latest]:
    """The newest state of each (job id, its row's epoch and seq): Redis's, unless the row's
    is newer in the same epoch; the row's, which `rows` loads for those jobs only, where Redis
    has none. Unfinished jobs Redis lost are seeded back from their rows (see _seed())."""
    reached = _stored_states([job_id for job_id, _mark in row_marks])
    stored = {} if reached is None else reached
    behind = [
        job_id
        for job_id, mark in row_marks
        if job_id not in stored
        or (stored[job_id].epoch == mark.epoch and stored[job_id].seq < mark.seq)
    ]
    lost: list[Job] = []
    for job in rows(behind) if behind else ():
        if reached is not None and str(job.pk) not in stored and job.seq and not job.is_final:
            lost.append(job)
        else:
            stored[str(job.pk)] = _row_latest(job)
    if lost:
        stored.update(_seed(lost))
    return stored


def latest(jobs: Sequence[Job]) -> list[tuple[Job, Latest]]:
    """Each job with its newest state: Redis's if it is newer than the row's."""
    by_id = {str(job.id): job for job in jobs}
    newest = _newest([(job_id, Mark(job.epoch, job.seq)) for job_id, job in by_id.items()],
                     lambda ids: (by_id[job_id] for job_id in ids))  # fmt: skip
    return [(job, newest[str(job.id)]) for job in jobs]


def latest_by_id(job_ids: Sequence[str]) -> dict[str, Latest]:
    """The newest state of each of these jobs that still exists, by id."""
    return {str(job.pk): found for job, found in latest(list(Job.objects.filter(pk__in=job_ids)))}


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
    found = latest_of(job)
    return JobState.from_dict(json.loads(found.json), job.owner_id), found.seq


def list_jobs(user: User) -> list[str]:
    """The user's own jobs, newest first, as contract JSON."""
    jobs = list(Job.objects.filter(owner_id=user_id_of(user))[: progress_settings.LIST_LIMIT])
    return [found.json for _job, found in latest(jobs)]


def owner_snapshot(owner_id: int) -> list[tuple[str, Latest]]:
    """A socket's first frame: the user's unfinished jobs and recent finished ones, as
    (id, state), newest first; a hub also reads it to resync a user's sockets.

    Every socket's handshake reads it, all of a storm of reconnects at once: rows
    are read whole only for the jobs whose newest state Redis no longer holds.
    """
    own = Job.objects.filter(owner_id=owner_id)
    fields = ("pk", "epoch", "seq", "created")
    rows = list(own.unfinished().values_list(*fields))
    rows += own.finished().values_list(*fields)[: progress_settings.SNAPSHOT_FINISHED]
    rows.sort(key=lambda row: row[3], reverse=True)
    row_marks = [(str(pk), Mark(epoch, seq)) for pk, epoch, seq, _created in rows]
    newest = _newest(row_marks, lambda ids: Job.objects.filter(pk__in=ids))
    return [(job_id, newest[job_id]) for job_id, _mark in row_marks]


def job_log(job: Job) -> list[str]:
    """The job's kept log lines, oldest first, as JSON: Redis's while it has them, else the
    row's."""
    try:
        publisher = get_publisher()
        lines = publisher.call(publisher.store.get_log(str(job.pk)))
    except REDIS_UNAVAILABLE as exc:
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
