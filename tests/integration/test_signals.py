"""job_started and job_finished fire once each where the state is recorded; receivers that
fail are logged and change nothing."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from progress import job_finished, job_progress, job_started
from progress.core import commands, machine
from progress.models import Job
from progress.protocol.states import State
from progress.worker.reporter import JobReporter
from tests.helpers.inprocess import state_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def heard() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    calls: list[tuple[str, dict[str, Any]]] = []

    def started(**kwargs: Any) -> None:
        calls.append(("started", kwargs))

    def finished(**kwargs: Any) -> None:
        calls.append(("finished", kwargs))

    job_started.connect(started)
    job_finished.connect(finished)
    yield calls
    job_started.disconnect(started)
    job_finished.disconnect(finished)


def test_a_job_is_heard_starting_and_finishing_once(
    heard: list[tuple[str, dict[str, Any]]], job: Job, alice: User
) -> None:
    machine.commit_state(state_of(job, State.STARTED))
    machine.commit_state(state_of(job, State.PROGRESS, 3))
    final = state_of(job, State.SUCCESS, 10)
    final.result = {"rows": 10}
    machine.commit_state(final)
    # A cancel racing the end changes nothing, and is not heard.
    machine.record_final(job, State.REVOKED)

    assert [name for name, _kwargs in heard] == ["started", "finished"]
    finished = heard[1][1]
    assert finished["sender"] is Job
    assert finished["job_id"] == str(job.pk) and finished["task"] == "demo.count"
    assert finished["owner_id"] == alice.pk
    assert finished["state"]["state"] == "SUCCESS" and finished["state"]["result"] == {"rows": 10}
    assert finished["state"]["seq"] > 0
    # The state as sockets get it: numbered in Redis's epoch, which the row keeps too.
    assert finished["state"]["epoch"] and finished["state"]["epoch"] == finished["job"].epoch
    # The row as just written, for receivers that want the model.
    assert finished["job"].state == "SUCCESS"


def test_a_cancel_from_the_web_is_heard_as_finished(
    heard: list[tuple[str, dict[str, Any]]], job: Job, alice: User
) -> None:
    machine.commit_state(state_of(job, State.STARTED))
    commands.cancel(alice, job.pk)
    assert heard[-1][0] == "finished" and heard[-1][1]["state"]["state"] == "REVOKED"


def test_a_failing_receiver_is_logged_and_the_job_still_ends(
    job: Job, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(**kwargs: Any) -> None:
        raise ValueError("receiver bug")

    job_finished.connect(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="progress.signals"):
            machine.commit_state(state_of(job, State.FAILURE))
    finally:
        job_finished.disconnect(broken)
    job.refresh_from_db()
    assert job.state == "FAILURE"
    assert "receiver bug" in caplog.text


def test_progress_is_heard_on_the_tasks_own_thread(job: Job) -> None:
    heard: list[tuple[threading.Thread, dict[str, Any]]] = []

    def progressed(state: dict[str, Any], **kwargs: Any) -> None:
        heard.append((threading.current_thread(), state))

    job_progress.connect(progressed)
    try:
        with override_settings(PROGRESS={"REDIS_URL": os.environ["REDIS_URL"], "THROTTLE": 0}):
            reporter = JobReporter(job)
            reporter.start()
            reporter.update(3, 10, "three")
    finally:
        job_progress.disconnect(progressed)
    [(thread, state)] = heard
    assert thread is threading.current_thread()
    assert (state["state"], state["current"], state["message"]) == ("PROGRESS", 3, "three")
    # Numbered afterwards, on the publisher's thread.
    assert state["seq"] is None and state["epoch"] is None
