"""PROGRESS["VISIBILITY"] decides who sees whose jobs, on every route that takes a user."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from progress import JobNotFound, get_job, visible_jobs
from progress.models import Job

pytestmark = pytest.mark.django_db


def visibility(path: str) -> override_settings:
    return override_settings(PROGRESS={"REDIS_URL": os.environ["REDIS_URL"], "VISIBILITY": path})


def test_by_default_users_see_their_own_jobs_and_staff_see_all(
    alice: User, bob: User, staff: User, job: Job
) -> None:
    assert list(visible_jobs(alice)) == [job]
    assert list(visible_jobs(bob)) == []
    assert list(visible_jobs(staff)) == [job]


def test_own_only_hides_other_jobs_from_staff_too(staff: User, job: Job) -> None:
    with visibility("progress.permissions.own_only"):
        assert list(visible_jobs(staff)) == []
        with pytest.raises(JobNotFound):
            get_job(staff, job.pk)
        client = Client()
        client.force_login(staff)
        assert client.get(f"/api/jobs/{job.pk}/").status_code == 404


def test_a_rule_of_the_projects_own_widens_it(bob: User, job: Job) -> None:
    with visibility("tests.integration.test_permissions.everyone_sees_everything"):
        assert get_job(bob, job.pk) == job
        client = Client()
        client.force_login(bob)
        assert client.get(f"/api/jobs/{job.pk}/").json()["id"] == str(job.pk)
        # The list stays the user's own: it is "my jobs".
        assert client.get("/api/jobs/").json()["jobs"] == []


def everyone_sees_everything(user: object, jobs: object) -> object:
    return jobs
