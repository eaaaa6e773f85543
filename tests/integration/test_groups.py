"""Group jobs in-process: the whole bar weighted by units, O(1) sums, and how a group ends.

The parts' tasks do not run here (the test transaction never commits, so nothing is
queued); each part's reporter is driven by hand, as its worker would. Runs through a
real worker are in tests/system/test_group_jobs.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from progress import ProgressError, run_group
from progress.core.publisher import get_publisher
from progress.models import Job
from progress.protocol.states import State
from progress.worker.reporter import JobReporter, activate, deactivate
from tests.helpers.inprocess import awaited
from tests.support import wait_for
from workers.demo import count

pytestmark = pytest.mark.django_db

UNTHROTTLED = override_settings(PROGRESS={"REDIS_URL": os.environ["REDIS_URL"], "THROTTLE": 0})


def latest(job_id: object) -> dict[str, Any]:
    publisher = get_publisher()
    found = publisher.call(publisher.store.get_many([str(job_id)]))[str(job_id)]
    state: dict[str, Any] = json.loads(found.json)
    return state


def shows(job_id: object, **expected: object) -> dict[str, Any]:
    """The job's published state once it shows `expected`."""

    def matches() -> dict[str, Any]:
        # Empty (falsy, so wait_for polls on) until it shows them.
        state = latest(job_id)
        return state if all(state.get(k) == v for k, v in expected.items()) else {}

    return wait_for(matches, timeout=5)


@pytest.fixture
def group_job(alice: User) -> Iterator[Job]:
    """A job whose task is running, as a worker would run it."""
    with UNTHROTTLED:
        job = Job.objects.create(owner=alice, task="demo.batch", params={"sizes": [10, 10]})
        reporter = JobReporter(job)
        token = activate(reporter)
        reporter.start()
        yield job
        deactivate(token)


def started(part_id: str) -> JobReporter:
    reporter = JobReporter(Job.objects.get(pk=part_id))
    reporter.start()
    return reporter


def test_the_whole_is_weighted_by_units_not_by_parts(group_job: Job) -> None:
    first, second = run_group([count.s(steps=10), count.s(steps=10)], units=[10, 10])
    shows(group_job.pk, state="PROGRESS", current=0, total=20, message="0 of 2 parts done")
    started(first).update(5, 10, "step 5 of 10")
    finishing = started(second)
    finishing.update(10, 10, "step 10 of 10")
    finishing.finish(State.SUCCESS, result={"counted": 10})
    # celery-progress averages per part, (50 + 100) / 2 or worse; units say 15 of 20.
    whole = shows(group_job.pk, current=15, message="1 of 2 parts done")
    assert (whole["total"], whole["percent"]) == (20, 75.0)
    # Each part is a job of its own, with its own bar, that names its group.
    part = shows(first, current=5)
    assert (part["parent"], part["percent"]) == (str(group_job.pk), 50.0)


def test_unequal_parts_weigh_what_they_hold(group_job: Job) -> None:
    small, big = run_group([count.s(steps=10), count.s(steps=90)], units=[10, 90])
    done = started(small)
    done.update(10, 10, None)
    done.finish(State.SUCCESS, result={"counted": 10})
    started(big).update(45, 90, None)
    whole = shows(group_job.pk, current=55)
    assert whole["percent"] == 55.0


def test_an_undeclared_part_leaves_the_total_unknown_until_it_reports_one(
    group_job: Job,
) -> None:
    first, second = run_group([count.s(steps=4), count.s(steps=6)], units=[4, None])
    assert latest(group_job.pk)["percent"] is None
    started(first).update(2, 4, None)
    shows(group_job.pk, current=2, total=None, percent=None)
    started(second).update(3, 6, None)
    shows(group_job.pk, current=5, total=10, percent=50.0)


def test_an_update_costs_the_same_with_two_parts_or_two_hundred(alice: User) -> None:
    """O(1): a part's update runs as many Redis commands whatever the size of its group."""
    redis = get_publisher().store.redis

    def commands_for_one_update(parts: int) -> int:
        job = Job.objects.create(owner=alice, task="demo.batch")
        reporter = JobReporter(job)
        token = activate(reporter)
        try:
            ids = run_group([count.s(steps=10) for _ in range(parts)], units=[10] * parts)
        finally:
            deactivate(token)
        part = started(ids[0])
        shows(job.pk, message=f"0 of {parts} parts done")
        # Other traffic can only add to a count (a pooled connection opening, the group_send
        # of an earlier state landing late), so the least of a few updates is one's cost.
        counts = []
        for current in range(3, 8):
            get_publisher().call(awaited(redis.config_resetstat()))
            part.update(current, 10, None)
            shows(job.pk, current=current)
            stats = get_publisher().call(awaited(redis.info("commandstats")))
            # Everything but the test's own reads (HMGET of states, INFO) and the reset.
            skip = {"cmdstat_hmget", "cmdstat_info", "cmdstat_config|resetstat"}
            counts.append(sum(int(v["calls"]) for k, v in stats.items() if k not in skip))
        return min(counts)

    with UNTHROTTLED:
        assert commands_for_one_update(2) == commands_for_one_update(200)


def test_a_stale_sum_never_overwrites_a_newer_one(group_job: Job) -> None:
    """Parts in two workers sum in one order and may publish in the other."""
    store = get_publisher().store
    run_group([count.s(steps=10)], units=[10])
    state = shows(group_job.pk, message="0 of 1 parts done")
    newer = Job.objects.get(pk=group_job.pk).to_state()
    newer.current, newer.state = 7, State.PROGRESS
    older = Job.objects.get(pk=group_job.pk).to_state()
    older.current, older.state = 3, State.PROGRESS
    publisher = get_publisher()
    assert publisher.call(store.save(newer, version=5)) is not None
    assert publisher.call(store.save(older, version=4)) is None
    assert latest(group_job.pk)["current"] == 7 and state["seq"] < latest(group_job.pk)["seq"]


def test_the_group_succeeds_with_its_parts_results_in_order(group_job: Job) -> None:
    ids = run_group([count.s(steps=2), count.s(steps=3)], units=[2, 3])
    for part_id, steps in reversed(list(zip(ids, [2, 3], strict=True))):
        reporter = started(part_id)
        reporter.update(steps, steps, None)
        reporter.finish(State.SUCCESS, result={"counted": steps})
    whole = shows(group_job.pk, state="SUCCESS")
    assert whole["result"] == [{"counted": 2}, {"counted": 3}]
    assert (whole["current"], whole["total"], whole["percent"]) == (5, 5, 100.0)
    assert Job.objects.get(pk=group_job.pk).state == State.SUCCESS


def test_a_failed_part_fails_the_group_once_every_part_ended(group_job: Job) -> None:
    bad, good = run_group([count.s(steps=4), count.s(steps=4)], units=[4, 4])
    failing = started(bad)
    failing.update(2, 4, None)
    failing.finish(State.FAILURE, error="Failed at step 2 of 4, as asked.")
    shows(group_job.pk, state="PROGRESS", message="1 of 2 parts done, 1 failed")
    ok = started(good)
    ok.update(4, 4, None)
    ok.finish(State.SUCCESS, result={"counted": 4})
    whole = shows(group_job.pk, state="FAILURE")
    assert whole["error"] == "1 of 2 parts failed. The first said: Failed at step 2 of 4, as asked."
    assert whole["current"] == 6


def test_cancelling_the_group_cancels_its_unfinished_parts(group_job: Job, alice: User) -> None:
    from progress import cancel

    done, running, waiting = run_group([count.s(steps=1)] * 3, units=[1, 1, 1])
    finished = started(done)
    finished.finish(State.SUCCESS, result={"counted": 1})
    started(running).update(0, 1, None)
    cancel(alice, group_job.pk)
    assert latest(group_job.pk)["state"] == "REVOKED"
    assert latest(running)["state"] == latest(waiting)["state"] == "REVOKED"
    assert latest(done)["state"] == "SUCCESS"


def test_run_group_refuses_what_it_cannot_run(group_job: Job) -> None:
    with pytest.raises(ProgressError, match="Celery signature"):
        run_group(["demo.count"])
    with pytest.raises(ProgressError, match="not JSON"):
        run_group([count.s(steps=object())])
    with pytest.raises(ProgressError, match="2 parts but 1 units"):
        run_group([count.s(steps=1), count.s(steps=1)], units=[1])
    with pytest.raises(ProgressError, match="at least one part"):
        run_group([])
    # Nothing was recorded by the refused calls.
    assert not Job.objects.filter(parent=group_job).exists()


def test_run_group_outside_a_job_says_so() -> None:
    with pytest.raises(ProgressError, match="inside the task of a job"):
        run_group([count.s(steps=1)])


def test_parts_do_not_count_against_the_running_jobs_limit(group_job: Job, alice: User) -> None:
    from progress import launch

    run_group([count.s(steps=1)] * 3, units=[1, 1, 1])
    limit = {"REDIS_URL": os.environ["REDIS_URL"], "MAX_RUNNING_JOBS": 2}
    with override_settings(PROGRESS=limit):
        # The group and this one: two, though three parts of the group are unfinished too.
        assert launch(alice, "demo.count", steps=1).parent is None
