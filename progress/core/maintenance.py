"""Maintenance with no user behind it: the lost-worker sweep and the purge. Any process."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import current_app
from django.utils import timezone

from progress.conf import progress_settings
from progress.core import metrics
from progress.core.machine import record_final, settle
from progress.core.outage import REDIS_UNAVAILABLE
from progress.core.publisher import get_publisher
from progress.jsonlog import about
from progress.models import Job
from progress.protocol.states import (
    WORKER_LOST_ERROR,
    State,
)

logger = logging.getLogger(__name__)


# Running jobs one sweep looks at; the next sweep takes the rest.
SWEEP_BATCH = 1000


def sweep_lost_jobs() -> list[str]:
    """Ends FAILURE the running jobs whose worker stopped renewing their lease.

    Runs every WORKER_LOST_AFTER / 3 seconds in one process at a time (a web
    process's chores, celery beat's progress.sweep_lost_jobs) or from `manage.py
    progress sweep`. A worker child killed mid-task is reported by Celery's main
    process at once; this catches what nobody reports: a whole worker killed, a
    machine gone.
    """
    timeout = float(progress_settings.WORKER_LOST_AFTER)
    if not timeout:
        return []
    settle_stalled()
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
        except REDIS_UNAVAILABLE as exc:  # Their keys expire after STATE_TTL all the same.
            logger.warning("Could not delete the Redis states of %d purged jobs: %r", len(ids), exc)
        purged += len(ids)


def settle_stalled() -> list[str]:
    """Settles the groups whose parts all ended without anyone settling them (Redis was away
    when the last one ended). Runs with the sweep for lost jobs."""
    running = [State.STARTED.value, State.PROGRESS.value]
    stalled = (
        Job.objects.filter(state__in=running, parts__isnull=False)
        .exclude(parts__state__in=[s.value for s in State if not s.is_final])
        .distinct()
    )
    settled: list[str] = []
    publisher = get_publisher()
    for job_id in stalled.values_list("pk", flat=True)[:SWEEP_BATCH]:
        try:
            last = publisher.call(publisher.store.settle_group(str(job_id)))
        except REDIS_UNAVAILABLE as exc:  # The next sweep tries again.
            logger.warning("Could not check stalled group %s: %r", job_id, exc)
            return settled
        if last:
            settle(str(job_id))
            settled.append(str(job_id))
    return settled
