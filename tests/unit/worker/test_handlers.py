"""The worker's signal handlers: what users and staff read of a failed job, and which tasks
are jobs at all."""

from __future__ import annotations

import uuid

import pytest
from billiard.exceptions import WorkerLostError
from celery import shared_task
from celery.app.task import Context
from pytest_django import DjangoAssertNumQueries

from progress.exceptions import JobError
from progress.models import Job
from progress.protocol.messages import JOB_HEADER, JOB_HEADERS, carries_job
from progress.protocol.states import WORKER_LOST_ERROR, State
from progress.worker.handlers import INTERNAL_ERROR, error_detail, error_message


def test_a_job_error_is_meant_for_users_and_shows_its_first_line() -> None:
    assert error_message(JobError("Disk full\nat /var/lib/x")) == "Disk full"
    assert error_message(JobError("  ")) == "The job failed."
    assert len(error_message(JobError("x" * 5000))) == 500


def test_any_other_exception_shows_neither_its_class_nor_its_text() -> None:
    exc = RuntimeError("password=hunter2 at postgres://db:5432")
    message = error_message(exc)
    assert message == INTERNAL_ERROR
    assert "RuntimeError" not in message and "hunter2" not in message
    # Staff read it in the admin.
    assert error_detail(exc) == "builtins.RuntimeError: password=hunter2 at postgres://db:5432"


def test_a_lost_worker_says_so_in_words() -> None:
    message = error_message(WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL)."))
    assert message == WORKER_LOST_ERROR and "Error" not in message


@shared_task(name="tests.unit.worker.double")
def double(number: int) -> int:
    """Another app's task: not registered with progress, and not launched as a job."""
    return number * 2


@shared_task(name="tests.unit.worker.broken")
def broken() -> None:
    raise RuntimeError("another app's failure")


@pytest.mark.django_db
def test_a_task_that_is_no_job_costs_no_query(
    job: Job, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    # Even under the id of a job's row: the message alone says whether a task is a job.
    with django_assert_num_queries(0):
        assert double.apply(args=(21,), task_id=str(job.pk)).get() == 42
        assert broken.apply(task_id=str(uuid.uuid4())).failed()
    job.refresh_from_db()
    assert job.state == State.PENDING


def test_the_header_is_read_where_celery_puts_it() -> None:
    assert carries_job(Context({"id": "x", JOB_HEADER: "1"}))  # as a worker sets custom headers
    assert carries_job(Context({"id": "x", "headers": JOB_HEADERS}))  # as Task.apply() keeps them
    assert not carries_job(Context({"id": "x"}))
    assert not carries_job(Context({"id": "x", "headers": {"other": "1"}}))
