"""`manage.py progress launch` and `purge`, in-process (tests/system/test_integration.py runs
`watch` and `launch --watch` against a real worker)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from progress.core import machine, maintenance
from progress.core.publisher import get_publisher
from progress.models import Job
from progress.protocol.states import State
from tests.helpers.inprocess import state_of

pytestmark = pytest.mark.django_db


def test_launch_starts_a_job_for_the_user_with_validated_params(
    alice: User, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("progress", "launch", "demo.count", "steps=50", "delay=0", "--user", "alice")
    job_id = capsys.readouterr().out.strip()
    job = Job.objects.get(pk=job_id)
    assert job.owner == alice and job.task == "demo.count"
    assert job.params == {"steps": 50, "delay": 0.0, "fail_at": None}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo.count", "steps=0", "--user", "alice"], "steps"),
        (["demo.count", "steps", "--user", "alice"], "name=value"),
        (["nope.task", "--user", "alice"], "Unknown task"),
        (["demo.count", "--user", "nobody"], "No user"),
    ],
)
def test_launch_explains_what_is_wrong(alice: User, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message) as raised:
        call_command("progress", "launch", *args)
    assert raised.value.returncode == 2
    assert not Job.objects.exists()


def finished(owner: User, days_ago: float, with_file: bool = False) -> Job:
    job = Job.objects.create(owner=owner, task="demo.count")
    machine.commit_state(state_of(job, State.SUCCESS))
    if with_file:
        job.result_file.save("old.csv", ContentFile(b"a,b\n"), save=False)
    Job.objects.filter(pk=job.pk).update(
        finished=timezone.now() - timedelta(days=days_ago), result_file=job.result_file.name
    )
    job.refresh_from_db()
    return job


def stored(job: Job) -> bool:
    publisher = get_publisher()
    return str(job.pk) in publisher.call(publisher.store.get_many([str(job.pk)]))


def test_purge_deletes_old_finished_jobs_with_their_state_and_file(
    alice: User, capsys: pytest.CaptureFixture[str]
) -> None:
    old, recent = finished(alice, 40, with_file=True), finished(alice, 2)
    running = Job.objects.create(owner=alice, task="demo.count", created=timezone.now())
    path = old.result_file.path
    assert os.path.exists(path) and stored(old)

    call_command("progress", "purge")

    assert "Purged 1 finished jobs." in capsys.readouterr().out
    assert set(Job.objects.values_list("pk", flat=True)) == {recent.pk, running.pk}
    assert not stored(old) and stored(recent)
    assert not os.path.exists(path)


def test_purge_follows_retention_and_zero_keeps_everything(alice: User) -> None:
    finished(alice, 400)
    with override_settings(PROGRESS={"REDIS_URL": os.environ["REDIS_URL"], "RETENTION": 0}):
        assert maintenance.purge_finished() == 0
    assert maintenance.purge_finished(older_than=500 * 86400) == 0
    assert maintenance.purge_finished(older_than=0) == 1


def test_the_periodic_task_purges(alice: User) -> None:
    from progress.tasks import purge_finished

    finished(alice, 40)
    assert purge_finished() == 1
