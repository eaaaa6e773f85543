"""Maintenance on real processes: celery beat's sweep for lost workers, run by a live worker.

A stack of its own, on a Redis of its own, with a real `celery beat` on the project's
schedule. Its web process has WORKER_LOST_AFTER 0, which turns its own sweep off
(progress.web.chores), so that only the beat-scheduled task can end a lost job.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery.schedules import maybe_schedule
from django.conf import settings

from progress.protocol.states import WORKER_LOST_ERROR
from tests.helpers.stack import FINAL, Stack, launch
from tests.support import PYTHON, RedisServer, Service, record_figure, wait_for

WORKER_LOST_AFTER = 3


def beat_interval() -> float:
    """Seconds between two sends of progress.sweep_lost_jobs on the project's schedule."""
    entry = settings.CELERY_BEAT_SCHEDULE["progress-sweep-lost-jobs"]
    seconds: float = maybe_schedule(entry["schedule"]).run_every.total_seconds()
    return seconds


@pytest.fixture
def beat_stack(tmp_path: Path) -> Iterator[tuple[Stack, Service]]:
    """A worker, a web process that does not sweep, and celery beat; Redis of their own."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    (tmp_path / "stack").mkdir()
    stack = Stack(
        tmp_path / "stack",
        redis.url,
        TEST_PROGRESS=json.dumps({"WORKER_LOST_AFTER": WORKER_LOST_AFTER}),
    )
    beat: Service | None = None
    try:
        stack.prepare()
        stack.start_worker()
        stack.start_web(TEST_PROGRESS=json.dumps({"WORKER_LOST_AFTER": 0}))
        beat = Service(
            "beat",
            [PYTHON, "-m", "celery", "-A", "tasks_site", "beat", "-l", "info",
             "--schedule", str(tmp_path / "stack" / "celerybeat-schedule")],
            stack.env, tmp_path / "stack" / "99-beat.log",
        )  # fmt: skip
        started = beat

        def ticking() -> bool:
            started.assert_alive()
            return "beat: Starting..." in started.output()

        # From here on, beat sends the sweep at most its interval apart: the bound holds.
        wait_for(ticking, timeout=30)
        yield stack, beat
    finally:
        if beat is not None:
            beat.stop()
        stack.stop()
        redis.stop()


def test_beats_sweep_ends_a_job_whose_whole_worker_was_killed_from_another_live_worker(
    beat_stack: tuple[Stack, Service],
) -> None:
    """The job's worker is SIGKILLed (main process and children) and a new one starts: beat
    sends progress.sweep_lost_jobs, the new worker runs it, and the job ends FAILURE."""
    stack, beat = beat_stack
    every = beat_interval()
    with closing(stack.login("alice")) as alice:
        job = launch(alice, steps=400, delay=0.05)
        wait_for(lambda: _state(alice, job["id"])["state"] == "PROGRESS", 30, interval=0.1)
        assert stack.worker is not None and stack.web is not None
        stack.worker.signal(signal.SIGKILL, group=True)
        killed = time.monotonic()
        stack.worker.stop()
        worker = stack.start_worker()
        final = wait_for(lambda: _ended(alice, job["id"]), timeout=60, interval=0.1)
        ended_after = time.monotonic() - killed
    assert final["state"] == "FAILURE" and final["error"] == WORKER_LOST_ERROR, final
    # The new worker's task ended it, on beat's schedule; the web process never swept.
    assert "Sending due task progress-sweep-lost-jobs" in beat.output()
    ended_by = rf"Task progress\.sweep_lost_jobs\[\S+\] succeeded in \S+: \['{job['id']}'\]"
    # The job reads FAILURE as soon as the sweep recorded it, a moment before the task's log.
    wait_for(lambda: re.search(ended_by, worker.output()), timeout=10)
    assert "lost its worker" not in stack.web.output()
    # The lease lapses within WORKER_LOST_AFTER; one send suspects the job, the next ends it.
    bound = WORKER_LOST_AFTER + 2 * every
    assert ended_after <= bound + 3, ended_after
    record_figure(
        f"Whole worker SIGKILLed, beat's sweep (every {every:.0f} s) on another worker:"
        " seconds until FAILURE",
        f"{ended_after:.1f} (bound {bound:.1f})",
    )


def _state(client: httpx.Client, job_id: str) -> dict[str, Any]:
    state: dict[str, Any] = client.get(f"/api/jobs/{job_id}/").json()
    return state


def _ended(client: httpx.Client, job_id: str) -> dict[str, Any]:
    state = _state(client, job_id)
    return state if state["state"] in FINAL else {}
