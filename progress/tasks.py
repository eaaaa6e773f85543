"""The app's own Celery tasks: the periodic purge of finished jobs."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="progress.purge_finished", ignore_result=True)
def purge_finished() -> int:
    """Runs on celery beat's schedule (CELERY_BEAT_SCHEDULE): deletes jobs past RETENTION."""
    return services.purge_finished()
