"""The task-side API: set_progress() and track() throttle what reaches Redis."""

from __future__ import annotations

import json
import os
import time

import pytest
from django.test import override_settings

from progress import set_progress, track
from progress.events import State
from progress.models import Job
from progress.publisher import get_publisher
from progress.reporter import JobReporter, activate, deactivate
from tests.support import wait_for

pytestmark = pytest.mark.django_db


def latest(job: Job) -> tuple[int, dict[str, object]]:
    publisher = get_publisher()
    found = publisher.call(publisher.store.get_many([str(job.id)])).get(str(job.id))
    assert found is not None
    return found[0], json.loads(found[1])


def test_a_burst_of_calls_publishes_a_few_states_and_never_loses_the_last(job: Job) -> None:
    reporter = JobReporter(job)
    token = activate(reporter)
    try:
        reporter.start()
        for i in range(1, 200_001):
            set_progress(i, 200_000, "crunching")
        # The last numbers go out when the throttle window closes, with no further call.
        wait_for(lambda: latest(job)[1]["current"] == 200_000, timeout=5)
    finally:
        deactivate(token)
    seq, state = latest(job)
    assert state["state"] == "PROGRESS" and state["percent"] == 100
    # STARTED plus a handful of throttled states, not 200,000.
    assert seq < 50


def test_a_change_of_state_goes_out_at_once(job: Job) -> None:
    with override_settings(PROGRESS={"REDIS_URL": os.environ["REDIS_URL"], "THROTTLE": 60}):
        reporter = JobReporter(job)
        reporter.start()
        assert latest(job)[1]["state"] == "STARTED"
        reporter.update(3, 10, "x")
        reporter.update(4, 10, "y")
        reporter.finish(State.SUCCESS, result={"ok": True})
    seq, state = latest(job)
    assert state["state"] == "SUCCESS" and state["result"] == {"ok": True}
    assert state["current"] == 4 and state["message"] == "y"
    job.refresh_from_db()
    assert job.state == "SUCCESS" and job.seq == seq and job.finished is not None


def test_track_reports_one_unit_per_item(job: Job) -> None:
    reporter = JobReporter(job)
    token = activate(reporter)
    try:
        assert list(track(range(50), message="items")) == list(range(50))
        wait_for(lambda: latest(job)[1]["current"] == 50, timeout=5)
    finally:
        deactivate(token)
    assert latest(job)[1]["total"] == 50


def test_outside_a_job_the_calls_do_nothing() -> None:
    set_progress(1, 2, "nobody listens")
    assert list(track([1, 2, 3])) == [1, 2, 3]


def test_the_rate_and_eta_are_estimated(job: Job) -> None:
    reporter = JobReporter(job)
    reporter.start()

    for i in range(1, 6):
        time.sleep(0.12)
        reporter.update(i, 100, None)
    wait_for(lambda: latest(job)[1]["current"] == 5, timeout=5)
    state = latest(job)[1]
    assert state["rate"] is not None and 2 < float(state["rate"]) < 20  # about 8/s
    assert state["eta"] is not None and float(state["eta"]) > 1


def test_seq_keeps_growing_after_redis_loses_the_jobs_key(job: Job) -> None:
    """As after a Redis restart without persistence: clients that saw seq N ignore anything <= N."""
    with override_settings(PROGRESS={"REDIS_URL": os.environ["REDIS_URL"], "THROTTLE": 0}):
        reporter = JobReporter(job)
    reporter.start()
    for i in range(1, 4):
        reporter.update(i, 10, None)
        wait_for(lambda i=i: latest(job)[1]["current"] == i, timeout=5)
    seen, _state = latest(job)
    publisher = get_publisher()
    publisher.call(publisher.store.redis.flushdb())
    reporter.update(4, 10, None)
    wait_for(lambda: publisher.call(publisher.store.get_many([str(job.id)])), timeout=5)
    assert latest(job)[0] > seen
