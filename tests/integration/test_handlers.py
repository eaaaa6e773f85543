"""Which Celery tasks the worker's handlers track: jobs by their message's header, and
registered tasks whatever sent them. The tasks run eagerly, on this process's Redis."""

from __future__ import annotations

import uuid

import pytest
from celery import shared_task
from django.contrib.auth.models import User

from progress import set_progress
from progress.models import Job
from progress.protocol.messages import JOB_HEADERS
from progress.protocol.states import State
from workers.demo import count

pytestmark = pytest.mark.django_db


@shared_task(name="tests.integration.halve")
def halve(number: int) -> float:
    """Another app's task, not registered with progress: a group may still have it as a part."""
    set_progress(1, 2, "halving")
    return number / 2


def job_of(alice: User, task: str) -> Job:
    return Job.objects.create(id=uuid.uuid4(), owner=alice, task=task)


def test_an_unregistered_task_sent_as_a_job_is_tracked_to_its_end(alice: User) -> None:
    job = job_of(alice, halve.name)
    assert halve.apply(args=(3,), task_id=str(job.pk), headers=JOB_HEADERS).get() == 1.5
    job.refresh_from_db()
    assert (job.state, job.result, job.started is not None) == (State.SUCCESS, 1.5, True)


def test_the_same_task_sent_without_the_header_leaves_the_row_alone(alice: User) -> None:
    job = job_of(alice, halve.name)
    halve.apply(args=(3,), task_id=str(job.pk))
    job.refresh_from_db()
    assert job.state == State.PENDING


def test_a_registered_task_needs_no_header(alice: User) -> None:
    # A message queued by a release that sent none, or a registered task's .delay().
    job = job_of(alice, count.name)
    count.apply(kwargs={"steps": 2, "delay": 0}, task_id=str(job.pk))
    job.refresh_from_db()
    assert job.state == State.SUCCESS
