"""A worker's warm shutdown ends its running jobs saying why, keeps their logs, and re-queues
the tasks marked safe to run again; their tasks' next reports are refused. On this process's
Redis and broker (tests/system/test_make_run.py stops a real `make run`)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from celery import current_app
from django.contrib.auth.models import User

from progress.core import machine
from progress.core.publisher import get_publisher
from progress.models import Job
from progress.protocol.messages import JOB_HEADERS
from progress.protocol.states import State, dumps_compact
from progress.worker.shutdown import RERUN_MESSAGE, STOPPED_ERROR, stop_running_jobs
from tests.helpers.inprocess import state_of
from workers.demo import count
from workers.reports import sales_csv

pytestmark = pytest.mark.django_db


def running(alice: User, task: Any, **params: Any) -> tuple[Job, SimpleNamespace]:
    """A STARTED job of `task`, and the worker's request that runs it. The request is a
    stand-in: Celery makes real ones only in a worker's consumer, from a broker message."""
    job = Job.objects.create(id=uuid.uuid4(), owner=alice, task=task.name, params=params)
    machine.commit_state(state_of(job, State.STARTED))
    request = SimpleNamespace(
        id=str(job.pk), task_name=task.name, task=task, args=[], kwargs=params,
        request_dict=dict(JOB_HEADERS),
    )  # fmt: skip
    return job, request


def log_line(job: Job, text: str) -> None:
    line = dumps_compact({"ts": 1.0, "level": "INFO", "text": text})
    get_publisher().publish_log(str(job.pk), job.owner_id, [line]).result(5)


def queued() -> int:
    """Messages waiting in the broker's default queue."""
    with current_app.connection_for_write() as connection:
        return int(connection.default_channel.client.llen("celery"))


def test_a_running_job_ends_failure_saying_the_service_stopped_with_its_log_kept(
    alice: User,
) -> None:
    job, request = running(alice, count, steps=100)
    log_line(job, "Counted 10 of 100")
    assert stop_running_jobs([request]) == 1
    job.refresh_from_db()
    assert (job.state, job.error) == (State.FAILURE, STOPPED_ERROR)
    assert [line["text"] for line in job.log] == ["Counted 10 of 100"]
    # The task's next report is refused: its reporter raises JobEnded there.
    assert get_publisher().publish(state_of(job, State.PROGRESS, 11)).result(5) is None
    # Asked again (a second SIGTERM), nothing changes.
    assert stop_running_jobs([request]) == 0


def test_a_task_safe_to_run_again_goes_retry_and_is_queued_again_under_its_id(
    alice: User,
) -> None:
    job, request = running(alice, sales_csv, rows=10, seconds=0)
    before = queued()
    assert stop_running_jobs([request]) == 1
    job.refresh_from_db()
    assert (job.state, job.message) == (State.RETRY, RERUN_MESSAGE)
    assert queued() == before + 1
    publisher = get_publisher()
    # The old run's reports are refused; the new run's STARTED goes through, and its own.
    assert publisher.publish(state_of(job, State.PROGRESS, 3)).result(5) is None
    assert publisher.publish(state_of(job, State.STARTED, 0)).result(5) is not None
    assert publisher.publish(state_of(job, State.PROGRESS, 1)).result(5) is not None


def test_requests_of_tasks_that_are_not_jobs_cost_no_query(
    alice: User, django_assert_num_queries: Any
) -> None:
    other = SimpleNamespace(id=str(uuid.uuid4()), task_name="other.app.task", request_dict={})
    with django_assert_num_queries(0):
        assert stop_running_jobs([other]) == 0
