"""celery beat's schedule (tasks_site/settings.py): the sweep for lost workers, often enough,
as a task the worker knows, ending a lost job when it runs."""

from __future__ import annotations

import os

import pytest
from celery.schedules import maybe_schedule
from django.contrib.auth.models import User
from django.test import override_settings

from progress.conf import progress_settings
from progress.core import machine
from progress.models import Job
from progress.protocol.states import WORKER_LOST_ERROR, State
from tasks_site.celery import app
from tests.helpers.inprocess import state_of
from tests.support import wait_for


def test_beat_sends_the_sweep_every_third_of_a_lease_or_sooner() -> None:
    """The bound of docs/reliability.md counts a sweep every WORKER_LOST_AFTER / 3."""
    entries = [
        e for e in app.conf.beat_schedule.values() if e["task"] == "progress.sweep_lost_jobs"
    ]
    assert len(entries) == 1, app.conf.beat_schedule
    every = maybe_schedule(entries[0]["schedule"]).run_every.total_seconds()
    assert 0 < every <= float(progress_settings.WORKER_LOST_AFTER) / 3


# The database: Celery's Django fixup runs the system checks as a worker would, and from
# Django 6.1 the model checks ask SQLite whether it has JSON.
@pytest.mark.django_db
def test_the_scheduled_sweep_is_a_task_the_worker_knows_and_expires_unrun() -> None:
    app.loader.import_default_modules()
    task = app.tasks["progress.sweep_lost_jobs"]
    # Sends queued while no worker lives expire, rather than all running once one starts.
    assert task.expires is not None
    assert task.ignore_result


@pytest.mark.django_db
def test_the_scheduled_sweep_ends_a_running_job_whose_lease_is_missing(alice: User) -> None:
    from progress.tasks import sweep_lost_jobs

    job = Job.objects.create(owner=alice, task="demo.count")
    machine.commit_state(state_of(job, State.STARTED))  # Started, and no worker holds a lease.
    with override_settings(
        PROGRESS={"REDIS_URL": os.environ["REDIS_URL"], "WORKER_LOST_AFTER": 0.4}
    ):
        assert sweep_lost_jobs() == []  # The first look only suspects.
        assert wait_for(sweep_lost_jobs, timeout=5) == [str(job.pk)]
    job.refresh_from_db()
    assert job.state == State.FAILURE and job.error == WORKER_LOST_ERROR
