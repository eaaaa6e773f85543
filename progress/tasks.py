"""The app's own Celery tasks: the sweep for lost workers and the purge. Worker processes.

Run in worker processes, on celery beat's schedule (CELERY_BEAT_SCHEDULE,
docs/operations.md).
"""

from __future__ import annotations

from celery import shared_task

from progress.core import maintenance


@shared_task(name="progress.purge_finished", ignore_result=True)
def purge_finished() -> int:
    """Runs on celery beat's schedule: deletes jobs past RETENTION."""
    return maintenance.purge_finished()


@shared_task(name="progress.sweep_lost_jobs", ignore_result=True, expires=30)
def sweep_lost_jobs() -> list[str]:
    """Runs on celery beat's schedule, every WORKER_LOST_AFTER / 3: ends FAILURE the jobs
    whose worker stopped renewing their lease, from any worker that is alive. Web
    processes sweep too (progress.web.chores), for when no worker is."""
    return maintenance.sweep_lost_jobs()
