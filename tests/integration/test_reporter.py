"""The task-side API through Redis: the states a reporter publishes reach the job's key.

The throttle, rate and ETA themselves are tested on a fake clock, without Redis,
in tests/unit/worker/test_reporter.py; here, what needs the real publisher.
"""

from __future__ import annotations

import json
import os
import time
from functools import partial

import pytest
from django.test import override_settings

from progress import set_progress
from progress.core import machine
from progress.core.publisher import get_publisher
from progress.models import Job
from progress.protocol.states import State
from progress.testing import FakeClock
from progress.worker.reporter import JobReporter, activate, deactivate
from tests.helpers.inprocess import awaited
from tests.support import wait_for

pytestmark = pytest.mark.django_db


def progress_settings(throttle: float) -> override_settings:
    return override_settings(PROGRESS={"REDIS_URL": os.environ["REDIS_URL"], "THROTTLE": throttle})


def latest(job: Job) -> tuple[int, dict[str, object]]:
    publisher = get_publisher()
    found = publisher.call(publisher.store.get_many([str(job.id)])).get(str(job.id))
    assert found is not None
    return found[0], json.loads(found[1])


def reached(job: Job, current: int) -> bool:
    return latest(job)[1]["current"] == current


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


def test_a_fake_clocks_timer_sends_the_last_numbers_through_redis(job: Job) -> None:
    """The reporter's clock is its own: the window ends when the test says, not after a sleep."""
    clock = FakeClock(start=time.time())
    with progress_settings(60):
        reporter = JobReporter(job, clock=clock)
    reporter.start()
    reporter.update(1, 10, "first")
    wait_for(partial(reached, job, 1), timeout=5)
    reporter.update(2, 10, "held")
    reporter.update(3, 10, "last")
    assert latest(job)[1]["current"] == 1 and clock.pending == 1
    clock.advance(60)
    wait_for(partial(reached, job, 3), timeout=5)
    state = latest(job)[1]
    assert state["message"] == "last"
    # The rate and ETA as the contract rounds them: 3 units over 60 s.
    assert state["rate"] == 0.05 and state["eta"] == 140.0
    # Every time the job shows is the clock's.
    assert state["ts"] == clock.time()


def test_seq_keeps_growing_after_redis_loses_the_jobs_key(job: Job) -> None:
    """As after a Redis restart without persistence: clients that saw seq N ignore anything <= N."""
    with override_settings(PROGRESS={"REDIS_URL": os.environ["REDIS_URL"], "THROTTLE": 0}):
        reporter = JobReporter(job)
    reporter.start()
    for i in range(1, 4):
        reporter.update(i, 10, None)
        wait_for(partial(reached, job, i), timeout=5)
    seen, _state = latest(job)
    publisher = get_publisher()
    publisher.call(awaited(publisher.store.redis.flushdb()))
    reporter.update(4, 10, None)
    wait_for(lambda: publisher.call(publisher.store.get_many([str(job.id)])), timeout=5)
    assert latest(job)[0] > seen


def test_a_revoked_job_ends_at_once_whatever_the_throttle(job: Job) -> None:
    with progress_settings(60):
        reporter = JobReporter(job)
        reporter.start()
        reporter.update(1, 10, None)
        reporter.update(2, 10, None)
        machine.record_final(job, State.REVOKED)
    assert latest(job)[1]["state"] == "REVOKED"
