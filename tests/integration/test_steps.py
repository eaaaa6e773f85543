"""Steps through Redis: a job in steps reaches its key with the step's label and its share.

How stages() and bar() fill the bar is tested in memory, in
tests/unit/worker/test_steps.py; here, only that the published JSON carries it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from django.test import override_settings

from progress import bar, set_progress, stages
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

    def matches() -> dict[str, object]:
        state = latest(job)
        return state if all(state[k] == v for k, v in expected.items()) else {}

    return wait_for(matches, timeout=5)


@pytest.fixture
def running(job: Job) -> Iterator[JobReporter]:
    with UNTHROTTLED:
        reporter = JobReporter(job)
        token = activate(reporter)
        reporter.start()
        yield reporter
        deactivate(token)


def test_a_step_reaches_redis_as_percent_of_the_whole_with_its_label(
    running: JobReporter, job: Job
) -> None:
    with stages("Downloading", "Parsing") as steps:
        steps.next()
        set_progress(5, 10, "file 5")
        state = settle(job, message="Step 1 of 2: Downloading — file 5 (5 / 10)")
        assert (state["current"], state["total"], state["percent"]) == (25, 100, 25)
        steps.next()
        with bar(total=4, message="rows") as counter:
            counter.update(3)
        settle(job, message="Step 2 of 2: Parsing — rows (3 / 4)", current=87.5)
    state = settle(job, current=100, total=100)
    assert state["percent"] == 100
