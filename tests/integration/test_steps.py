"""Reporting from helpers: stages() splits a job into steps, bar() counts like tqdm."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from django.test import override_settings

from progress import bar, set_progress, stages, track
from progress.core.publisher import get_publisher
from progress.models import Job
from progress.worker.reporter import JobReporter, activate, deactivate
from tests.support import wait_for

pytestmark = pytest.mark.django_db

# No throttle: every update is published, so each one can be checked.
UNTHROTTLED = override_settings(PROGRESS={"REDIS_URL": os.environ["REDIS_URL"], "THROTTLE": 0})


def latest(job: Job) -> dict[str, object]:
    publisher = get_publisher()
    found = publisher.call(publisher.store.get_many([str(job.id)]))[str(job.id)]
    state: dict[str, object] = json.loads(found.json)
    return state


def settle(job: Job, **expected: object) -> dict[str, object]:
    """The job's published state once it shows `expected`."""

    def matches() -> dict[str, object] | None:
        state = latest(job)
        return state if all(state[k] == v for k, v in expected.items()) else None

    return wait_for(matches, timeout=5)


@pytest.fixture
def running(job: Job) -> Iterator[JobReporter]:
    with UNTHROTTLED:
        reporter = JobReporter(job)
        token = activate(reporter)
        reporter.start()
        yield reporter
        deactivate(token)


def test_steps_name_the_step_and_fill_only_its_share_of_the_bar(
    running: JobReporter, job: Job
) -> None:
    with stages("Downloading", "Parsing", "Uploading") as steps:
        steps.next()
        set_progress(5, 10, "file 5")
        # The job's numbers are percent of the whole; the step's own counts are in the message.
        state = settle(job, message="Step 1 of 3: Downloading — file 5 (5 / 10)")
        assert (state["current"], state["total"], state["percent"]) == (16.67, 100, 16.67)
        steps.next()
        settle(job, message="Step 2 of 3: Parsing", current=33.33)
        for _ in track(range(4)):
            pass
        state = settle(job, current=66.67)
        assert state["message"] == "Step 2 of 3: Parsing — 4 / 4"
        steps.next()
        set_progress(1, 2)
        settle(job, current=83.33, message="Step 3 of 3: Uploading — 1 / 2")
    # The block ends with its whole share done.
    state = settle(job, current=100, total=100)
    assert state["percent"] == 100


def test_nested_steps_divide_their_step_and_weights_divide_the_whole(
    running: JobReporter, job: Job
) -> None:
    for name in stages("Fetch", "Build", weights=[1, 3]):
        if name == "Fetch":
            settle(job, message="Step 1 of 2: Fetch", current=0, total=100)
            continue
        for inner in stages("Compile", "Link"):
            if inner == "Link":
                set_progress(1, 2, "libfoo")
                state = settle(
                    job, message="Step 2 of 2: Build — Step 2 of 2: Link — libfoo (1 / 2)"
                )
                # Fetch (a quarter) + half of Build (37.5) + half of Link's half (18.75).
                assert state["current"] == 25 + 37.5 + 18.75
    settle(job, current=100, total=100)


def test_a_bar_counts_like_tqdm_inside_a_step(running: JobReporter, job: Job) -> None:
    with stages("One", "Two") as steps:
        steps.next("Counting rows")
        with bar(total=4, message="rows") as counter:
            counter.update()
            counter.update(2)
            state = settle(job, message="Step 1 of 2: Counting rows — rows (3 / 4)")
            assert state["current"] == 0.75 * 50
            counter.set(4, "all rows")
        settle(job, message="Step 1 of 2: Counting rows — all rows (4 / 4)", current=50)


def test_an_exception_inside_steps_leaves_the_job_level_reporting_again(
    running: JobReporter, job: Job
) -> None:
    with pytest.raises(RuntimeError), stages("Only") as steps:
        steps.next()
        raise RuntimeError("boom")
    assert running.scope is None
    set_progress(7, 9, "plain")
    settle(job, current=7, total=9, message="plain")


def test_outside_a_job_steps_and_bars_do_nothing_but_still_run() -> None:
    assert list(stages("a", "b")) == ["a", "b"]
    with bar(total=3) as counter:
        counter.update()
    assert counter.n == 1


@pytest.mark.parametrize(
    ("names", "weights"), [((), None), (("a", "b"), [1]), (("a",), [0]), (("a",), [True])]
)
def test_bad_steps_are_refused(names: tuple[str, ...], weights: list[float] | None) -> None:
    with pytest.raises(ValueError):
        stages(*names, weights=weights)


def test_one_step_too_many_is_an_error() -> None:
    with stages("a") as steps:
        steps.next()
        with pytest.raises(ValueError, match="already started"):
            steps.next()
