"""The task-side API: set_progress() and track() throttle what reaches Redis."""

from __future__ import annotations

import json
import os
import time
from functools import partial

import pytest
from celery import shared_task
from django import forms
from django.contrib.auth.models import User
from django.test import override_settings

from progress import set_progress, track
from progress.core import machine, registry
from progress.core.publisher import get_publisher
from progress.models import Job
from progress.protocol.states import State
from progress.worker.reporter import JobReporter, activate, deactivate
from tests.support import wait_for

pytestmark = pytest.mark.django_db


@shared_task(name="tests.progress.throttled")
def throttled() -> None:
    """A task registered with its own throttle in one test."""


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


def test_the_throttle_bounds_what_a_fast_loop_publishes(job: Job) -> None:
    """However many calls, Redis sees about one state per THROTTLE, and the last one."""
    throttle = 0.1
    with progress_settings(throttle):
        reporter = JobReporter(job)
    token = activate(reporter)
    try:
        reporter.start()
        seq_started = latest(job)[0]
        calls = 0
        begin = time.monotonic()
        end = begin + 1.0
        while time.monotonic() < end:
            calls += 1
            set_progress(calls, None, "spinning")
        duration = time.monotonic() - begin
        wait_for(lambda: latest(job)[1]["current"] == calls, timeout=5)
    finally:
        deactivate(token)
    stored = latest(job)[0] - seq_started
    # One at once, one per window after it, and the last numbers when the loop stopped.
    assert 2 <= stored <= duration / throttle + 2
    assert calls > 100 * stored


@pytest.mark.parametrize("final", [State.SUCCESS, State.FAILURE])
def test_the_first_state_and_each_change_go_out_at_once(job: Job, final: State) -> None:
    with progress_settings(60):
        reporter = JobReporter(job)
        reporter.start()
        assert latest(job)[1]["state"] == "STARTED"
        reporter.update(1, 10, "first")
        # The first progress is not held for the 60 s window.
        wait_for(lambda: latest(job)[1]["current"] == 1, timeout=5)
        reporter.update(2, 10, "held")
        reporter.retry("flaky")
        assert latest(job)[1]["state"] == "RETRY" and latest(job)[1]["current"] == 2
        job.refresh_from_db()
        again = JobReporter(job)
        again.start()
        assert latest(job)[1]["state"] == "STARTED"
        again.update(3, 10, "second attempt")
        again.update(4, 10, "held")
        again.finish(final, error=None if final is State.SUCCESS else "boom")
    state = latest(job)[1]
    assert state["state"] == final.value and state["current"] == 4


def test_a_revoked_job_ends_at_once_whatever_the_throttle(job: Job) -> None:
    with progress_settings(60):
        reporter = JobReporter(job)
        reporter.start()
        reporter.update(1, 10, None)
        reporter.update(2, 10, None)
        machine.record_final(job, State.REVOKED)
    assert latest(job)[1]["state"] == "REVOKED"


def test_the_last_state_of_a_burst_arrives_through_track(job: Job) -> None:
    with progress_settings(0.2):
        reporter = JobReporter(job)
    token = activate(reporter)
    try:
        for _ in track(range(100_000), message="items"):
            continue
        wait_for(lambda: latest(job)[1]["current"] == 100_000, timeout=5)
    finally:
        deactivate(token)
    state = latest(job)[1]
    assert state["total"] == 100_000 and state["message"] == "items"


class NoParams(forms.Form):
    """A task's form without params."""


def test_a_task_can_override_the_throttle(alice: User, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    registry.register(title="Throttled", form=NoParams, throttle=0)(throttled)
    job = Job.objects.create(owner=alice, task=throttled.name, params={})
    with progress_settings(60):
        reporter = JobReporter(job)
        reporter.start()
        # Under THROTTLE 60 s each update after the first would wait; this task's 0 does not.
        for i in range(1, 4):
            reporter.update(i, 3, None)
            wait_for(partial(reached, job, i), timeout=5)


@pytest.mark.parametrize("throttle", [-1, True, "0.1", float("nan")])
def test_a_bad_task_throttle_is_refused(throttle: object) -> None:
    with pytest.raises(ValueError, match="throttle"):
        registry.register(title="Bad", form=NoParams, throttle=throttle)  # type: ignore[arg-type]
