"""Services the edges call: the lost-worker sweep, launch limits, states set from outside."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client, override_settings

from progress.core import machine, maintenance, reads
from progress.core.publisher import get_publisher
from progress.models import Job
from progress.protocol.states import WORKER_LOST_ERROR, State
from tests.helpers.inprocess import awaited, state_of
from tests.support import wait_for

pytestmark = pytest.mark.django_db


def progress(**values: Any) -> override_settings:
    return override_settings(PROGRESS={"REDIS_URL": os.environ["REDIS_URL"], **values})


def running(owner: User) -> Job:
    job = Job.objects.create(owner=owner, task="demo.count")
    machine.commit_state(state_of(job, State.STARTED))
    return job


def test_the_sweep_ends_a_job_whose_lease_lapsed_and_spares_one_renewed(alice: User) -> None:
    lost, alive = running(alice), running(alice)
    publisher = get_publisher()
    with progress(WORKER_LOST_AFTER=0.4):
        publisher.call(publisher.store.renew_leases([str(alive.pk)], 60))
        # The first look only suspects: a Redis restart drops every lease at once.
        assert maintenance.sweep_lost_jobs() == []
        assert wait_for(maintenance.sweep_lost_jobs, timeout=5) == [str(lost.pk)]
    lost.refresh_from_db()
    alive.refresh_from_db()
    assert lost.state == "FAILURE" and lost.error == WORKER_LOST_ERROR
    assert lost.error_detail and "Traceback" not in lost.error
    assert alive.state == "STARTED"


def test_a_lease_seen_again_clears_the_suspicion(alice: User) -> None:
    job = running(alice)
    publisher = get_publisher()
    with progress(WORKER_LOST_AFTER=0.4):
        assert maintenance.sweep_lost_jobs() == []  # Suspected: no lease yet.
        publisher.call(publisher.store.renew_leases([str(job.pk)], 0.4))
        assert maintenance.sweep_lost_jobs() == []  # Seen: cleared.
        # Lapsed again: suspected anew, so only a later look may end it.
        lease = f"progress:lease:{job.pk.hex}"
        wait_for(lambda: not publisher.call(awaited(publisher.store.redis.exists(lease))))
        assert maintenance.sweep_lost_jobs() == []
    job.refresh_from_db()
    assert job.state == "STARTED"


def test_the_sweep_command_ends_lost_jobs(alice: User, capsys: pytest.CaptureFixture[str]) -> None:
    job = running(alice)
    with progress(WORKER_LOST_AFTER=0.2):
        call_command("progress", "sweep")
        wait_for(
            lambda: (
                Job.objects.get(pk=job.pk).state == "FAILURE" or call_command("progress", "sweep")
            )
        )
    assert str(job.pk) in capsys.readouterr().out


def test_a_retry_from_outside_the_task_shows_retry_and_never_follows_the_end(alice: User) -> None:
    job = running(alice)
    assert machine.record_retry(job, "Worker lost; running the job again.") is not None
    assert reads.latest_of(job).json.count('"state":"RETRY"') == 1
    machine.record_final(job, State.SUCCESS)
    assert machine.record_retry(job, "late") is None
    assert json.loads(reads.job_json(job))["state"] == "SUCCESS"


def test_launches_over_the_rate_limit_get_429_with_retry_after(alice: User) -> None:
    client = Client()
    client.force_login(alice)
    body = json.dumps({"task": "demo.count", "params": {"steps": 1}})
    with progress(MAX_LAUNCHES_PER_MINUTE=2):
        codes = [
            client.post("/api/jobs/", data=body, content_type="application/json").status_code
            for _ in range(3)
        ]
        refused = client.post("/api/jobs/", data=body, content_type="application/json")
    assert codes == [201, 201, 429]
    assert refused.status_code == 429 and "a minute" in refused.json()["error"]
    assert 0 < int(refused["Retry-After"]) <= 60
    assert Job.objects.filter(owner=alice).count() == 2


def test_bad_launches_do_not_use_up_the_rate_limit(alice: User) -> None:
    client = Client()
    client.force_login(alice)
    bad = json.dumps({"task": "demo.count", "params": {"steps": 0}})
    good = json.dumps({"task": "demo.count", "params": {"steps": 1}})
    with progress(MAX_LAUNCHES_PER_MINUTE=1):
        for _ in range(3):
            assert (
                client.post("/api/jobs/", data=bad, content_type="application/json").status_code
                == 400
            )
        assert (
            client.post("/api/jobs/", data=good, content_type="application/json").status_code == 201
        )
