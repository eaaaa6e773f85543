"""The public API of other apps on real processes: the terminal commands against a real
worker, and a task written for celery-progress reporting here unchanged."""

from __future__ import annotations

import functools
import json
import subprocess
from typing import Any

import httpx
import pytest

from tests.helpers.stack import Stack, csrf, launch
from tests.support import PYTHON, ROOT, manage, wait_for


def progress(stack: Stack, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`manage.py progress ...` as an operator would run it, in the stack's environment."""
    return subprocess.run(
        [PYTHON, "manage.py", "progress", *args],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_launch_then_watch_shows_a_live_bar_and_exits_0_on_success(
    stack: Stack, alice: httpx.Client
) -> None:
    done = progress(stack, "launch", "demo.count", "steps=12", "delay=0.05", "--user", "alice",
                    "--watch")  # fmt: skip
    assert done.returncode == 0, done.stderr
    job_id, outcome = done.stdout.strip().splitlines()
    assert outcome == 'SUCCESS: {"counted": 12}'
    # The bar went to stderr, fed by the channel layer, and ended full.
    assert "Count" in done.stderr and "12/12" in done.stderr
    assert alice.get(f"/api/jobs/{job_id}/").json()["state"] == "SUCCESS"


def test_watch_exits_with_the_jobs_outcome(stack: Stack, alice: httpx.Client) -> None:
    failing = launch(alice, steps=5, delay=0.02, fail_at=2)
    done = progress(stack, "watch", failing["id"])
    assert done.returncode == 1
    assert done.stdout.strip() == "FAILURE: Failed at step 2 of 5, as asked."

    slow = launch(alice, steps=200, delay=0.1)
    assert alice.post(f"/api/jobs/{slow['id']}/cancel/", headers=csrf(alice)).status_code == 202
    assert progress(stack, "watch", slow["id"]).returncode == 3

    missing = progress(stack, "watch", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 2 and "No job" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_watch_json_prints_every_state_in_order(stack: Stack, alice: httpx.Client) -> None:
    job = launch(alice, steps=8, delay=0.1)
    done = progress(stack, "watch", job["id"], "--json")
    assert done.returncode == 0, done.stderr
    states: list[dict[str, Any]] = [json.loads(line) for line in done.stdout.splitlines()]
    seqs = [state["seq"] for state in states]
    assert seqs == sorted(set(seqs))
    assert states[-1]["state"] == "SUCCESS" and states[-1]["current"] == 8


def test_watch_times_out_with_exit_4(stack: Stack, alice: httpx.Client) -> None:
    job = launch(alice, steps=100, delay=0.1)
    try:
        done = progress(stack, "watch", job["id"], "--timeout", "0.5")
        assert done.returncode == 4 and "has not ended" in done.stderr
    finally:
        alice.post(f"/api/jobs/{job['id']}/cancel/", headers=csrf(alice))


def test_a_celery_progress_task_reports_here_unchanged(stack: Stack, alice: httpx.Client) -> None:
    socket = stack.socket(alice)
    socket.recv()
    job = launch(alice, "tests.stack.tasks.my_task", seconds=3)
    states = socket.until_final(job["id"], timeout=30)
    progress_states = [(s["current"], s["total"], s["message"]) for s in states
                       if s["state"] == "PROGRESS"]  # fmt: skip
    assert progress_states[-1] == (3, 3, "On iteration 2")
    assert (1, 3, "On iteration 0") in progress_states
    assert states[-1]["state"] == "SUCCESS" and states[-1]["result"] == 0 + 1 + 2
    socket.close()


def test_the_periodic_purge_runs_on_a_worker_and_keeps_recent_jobs(
    stack: Stack, alice: httpx.Client
) -> None:
    recent = launch(alice, steps=2, delay=0.01)
    old = launch(alice, steps=2, delay=0.01)

    def succeeded(job: dict[str, Any]) -> bool:
        return alice.get(f"/api/jobs/{job['id']}/").json()["state"] == "SUCCESS"

    for job in (recent, old):
        wait_for(functools.partial(succeeded, job))
    # Finished 40 days ago, past the default RETENTION of 30 days; then the task beat sends.
    script = (
        "from datetime import timedelta; from django.utils import timezone;"
        "from progress.models import Job; from progress.tasks import purge_finished;"
        f"Job.objects.filter(pk={old['id']!r}).update("
        "finished=timezone.now() - timedelta(days=40)); purge_finished.delay()"
    )
    manage(stack.env, "shell", "-c", script)
    wait_for(lambda: alice.get(f"/api/jobs/{old['id']}/").status_code == 404, timeout=20)
    assert alice.get(f"/api/jobs/{recent['id']}/").json()["state"] == "SUCCESS"


# The database: Celery's Django fixup runs the system checks as a worker would, and from
# Django 6.1 the model checks ask SQLite whether it has JSON.
@pytest.mark.django_db
def test_beat_schedules_the_purge_as_a_task_the_worker_knows() -> None:
    from tasks_site.celery import app

    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "progress.purge_finished" in scheduled
    assert scheduled <= set(app.tasks)
