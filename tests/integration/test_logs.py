"""Job logs: task code's logging and progress.log() become numbered lines, kept capped, sent
live to the sockets that subscribed to the job and replayed to them."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.test import override_settings

from progress import log
from progress.conf import progress_settings
from progress.core import maintenance, reads
from progress.core.publisher import get_publisher
from progress.models import Job
from progress.protocol.states import State
from progress.testing import FakeClock
from progress.worker.logs import JobLogHandler
from progress.worker.reporter import LOG_BATCH, JobReporter, activate, deactivate
from tests.helpers.inprocess import connect, frame, send
from tests.support import wait_for


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Polls `condition` without blocking the test's event loop, as wait_for() would."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def kept(job: Job) -> list[dict[str, Any]]:
    publisher = get_publisher()
    return [json.loads(line) for line in publisher.call(publisher.store.get_log(str(job.pk)))]


def settings(**values: Any) -> override_settings:
    return override_settings(PROGRESS={"REDIS_URL": os.environ["REDIS_URL"], **values})


@pytest.fixture
def running(job: Job) -> Iterator[JobReporter]:
    reporter = JobReporter(job)
    token = activate(reporter)
    handler = JobLogHandler(level=logging.INFO)
    logging.getLogger().addHandler(handler)
    yield reporter
    logging.getLogger().removeHandler(handler)
    deactivate(token)


@pytest.mark.django_db
def test_logging_and_log_calls_become_numbered_lines_of_the_job(
    running: JobReporter, job: Job
) -> None:
    log("Starting")
    logging.getLogger("myapp.tasks").warning("Disk at %d%%", 91)
    logging.getLogger("myapp.tasks").debug("below the level")
    logging.getLogger("celery.worker").info("the machinery's own line")
    try:
        raise ValueError("secret internals")
    except ValueError:
        logging.getLogger("myapp.tasks").exception("Step failed")
    lines = wait_for(lambda: found if len(found := kept(job)) == 3 else [])
    assert [(line["n"], line["level"], line["text"]) for line in lines] == [
        (1, "INFO", "Starting"),
        (2, "WARNING", "Disk at 91%"),
        (3, "ERROR", "Step failed"),
    ]
    assert "secret internals" not in json.dumps(lines), "a traceback reached the log"


@pytest.mark.django_db
def test_a_flood_keeps_the_newest_lines_and_says_how_many_were_cut(job: Job) -> None:
    with settings(THROTTLE=60):
        reporter = JobReporter(job)
        reporter.log("first")  # Sent at once: it opens the throttle window.
        wait_for(lambda: len(kept(job)) == 1)
        for i in range(1000):
            reporter.log(f"line {i}")
        reporter.finish(State.SUCCESS)  # Sends what is left, before the final state.
    lines = kept(job)
    texts = [line["text"] for line in lines]
    assert texts[0] == "first" and texts[-1] == "line 999"
    assert texts[1] == f"… {1000 - LOG_BATCH} lines skipped: more than {LOG_BATCH} at once"
    assert len(lines) == 2 + LOG_BATCH
    assert [line["n"] for line in lines] == list(range(1, len(lines) + 1))
    # The row keeps the log once the job has ended.
    job.refresh_from_db()
    assert [line["text"] for line in job.log] == texts
    assert reads.job_log(job)[-1] == json.dumps(lines[-1], separators=(",", ":"))


@pytest.mark.django_db
def test_redis_keeps_the_newest_log_lines_only(job: Job) -> None:
    with settings(THROTTLE=0, LOG_LINES=5):
        reporter = JobReporter(job)
        for i in range(1, 11):
            reporter.log(f"line {i}")
        wait_for(lambda: kept(job) and kept(job)[-1]["text"] == "line 10")
    assert [line["n"] for line in kept(job)] == [6, 7, 8, 9, 10]


@pytest.mark.django_db
def test_a_purge_forgets_the_log(job: Job) -> None:
    reporter = JobReporter(job)
    reporter.log("kept")
    reporter.finish(State.SUCCESS)
    assert kept(job)
    assert maintenance.purge_finished(older_than=0) == 1
    assert kept(job) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_subscribed_socket_gets_the_kept_lines_then_live_ones(
    alice: User, bob: User, job: Job
) -> None:
    clock = FakeClock(start=time.time())
    reporter = await database_sync_to_async(partial(JobReporter, job, clock=clock))()
    await database_sync_to_async(reporter.start)()
    reporter.log("before the page opened")  # The first line of a window goes out at once.
    await until(lambda: len(kept(job)) == 1)
    page = await connect(alice)
    dashboard = await connect(alice)
    stranger = await connect(bob)
    for socket in (page, dashboard, stranger):
        assert (await frame(socket))["type"] == "snapshot"
    assert (await send(page, {"action": "subscribe", "job": str(job.pk)}))["type"] == "job"
    replay = await frame(page)
    assert replay["type"] == "log" and replay["job"] == str(job.pk)
    assert [line["text"] for line in replay["lines"]] == ["before the page opened"]
    assert (await send(stranger, {"action": "subscribe", "job": str(job.pk)}))[
        "error"
    ] == "not_found"

    clock.advance(progress_settings.THROTTLE)  # The window is over: the next line goes at once.
    reporter.log("live")
    live = await frame(page)
    assert live["type"] == "log" and [(x["n"], x["text"]) for x in live["lines"]] == [(2, "live")]
    # Logs go only to sockets that subscribed to the job.
    assert await dashboard.receive_nothing(timeout=0.3)
    assert await stranger.receive_nothing(timeout=0.1)
    for socket in (page, dashboard, stranger):
        await socket.disconnect()
