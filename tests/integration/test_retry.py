"""Retrying a failed or cancelled job, by the service and by POST /api/jobs/<id>/retry/."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

import progress
from progress.core import commands, machine, reads
from progress.exceptions import JobNotFound, NotRetryable, TooManyJobs
from progress.models import Job
from progress.protocol.states import State

pytestmark = pytest.mark.django_db

PARAMS = {"steps": 3, "delay": 0.05, "fail_at": 2}


def ended(owner: User, state: State = State.FAILURE, **fields: Any) -> Job:
    """A demo.count job of `owner` that has ended in `state`."""
    error = "Failed at step 2." if state is State.FAILURE else ""
    return Job.objects.create(
        owner=owner, task="demo.count", params=PARAMS, state=state, error=error, **fields
    )


def limits(**values: Any) -> Any:
    return override_settings(PROGRESS={"REDIS_URL": os.environ["REDIS_URL"], **values})


@pytest.fixture
def client_of(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def retry_url(job: Job | str) -> str:
    return f"/api/jobs/{job.pk if isinstance(job, Job) else job}/retry/"


# The service.


@pytest.mark.parametrize("state", [State.FAILURE, State.REVOKED])
def test_a_failed_or_cancelled_job_runs_again_as_a_new_job_with_the_same_params(
    alice: User, state: State, django_capture_on_commit_callbacks: Any
) -> None:
    old = ended(alice, state)
    with django_capture_on_commit_callbacks() as queued:
        new = commands.retry(alice, str(old.pk))
    assert new.pk != old.pk and new.retry_of_id == old.pk
    assert (new.task, new.params, new.owner_id) == ("demo.count", PARAMS, alice.pk)
    assert new.state == State.PENDING
    # Queued once the row commits, like any launch.
    assert len(queued) == 1
    assert json.loads(reads.job_json(new))["retry_of"] == str(old.pk)
    # The old job is left as it was.
    old.refresh_from_db()
    assert old.state == state and old.retries.get() == new


def test_staff_retry_another_users_job_for_its_owner(alice: User, staff: User) -> None:
    old = ended(alice)
    new = commands.retry(staff, old.pk)
    assert new.owner_id == alice.pk and new.retry_of_id == old.pk


@pytest.mark.parametrize("state", [State.SUCCESS, State.PENDING, State.PROGRESS])
def test_a_job_that_succeeded_or_is_running_is_not_retryable(alice: User, state: State) -> None:
    old = ended(alice, state)
    with pytest.raises(NotRetryable, match="failed or cancelled"):
        commands.retry(alice, old.pk)
    assert Job.objects.count() == 1


def test_the_newest_state_decides_not_a_lagging_row(alice: User) -> None:
    # The row still says FAILURE, but Redis has the job ended SUCCESS: it is not retried.
    old = ended(alice)
    state = old.to_state()
    state.state = State.SUCCESS
    machine.commit_state(state)
    Job.objects.filter(pk=old.pk).update(state=State.FAILURE)
    with pytest.raises(NotRetryable):
        commands.retry(alice, old.pk)


def test_a_part_of_a_group_job_is_not_retryable(alice: User) -> None:
    group = ended(alice)
    part = ended(alice, parent=group, part=1)
    with pytest.raises(NotRetryable, match="group"):
        commands.retry(alice, part.pk)
    assert Job.objects.count() == 2


def test_another_users_job_or_a_bad_id_is_not_found(alice: User, bob: User) -> None:
    theirs = ended(bob)
    for job_id in [theirs.pk, "not-a-uuid", "00000000-0000-0000-0000-000000000000"]:
        with pytest.raises(JobNotFound):
            commands.retry(alice, job_id)
    assert Job.objects.count() == 1


def test_the_owners_limits_apply(alice: User, staff: User) -> None:
    old = ended(alice)
    Job.objects.create(owner=alice, task="demo.count")
    with limits(MAX_RUNNING_JOBS=1), pytest.raises(TooManyJobs):
        # Staff have no running job; the retry is the owner's, and the owner has one.
        commands.retry(staff, old.pk)


def test_retry_and_its_error_are_public_names() -> None:
    assert progress.retry is commands.retry
    assert issubclass(progress.NotRetryable, progress.ProgressError)
    assert {"retry", "NotRetryable"} <= set(progress.__all__)


# The API.


def test_post_retry_answers_201_with_the_new_job(
    client_of: Client, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    old = ended(alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_of.post(retry_url(old))
    assert response.status_code == 201
    job = response.json()
    assert job["retry_of"] == str(old.pk) and job["id"] != str(old.pk)
    assert job["task"] == "demo.count" and job["state"] == "PENDING"
    assert Job.objects.get(pk=job["id"]).params == PARAMS
    # Its own JSON says what it retried, on every read; the old one says nothing of it.
    assert client_of.get(f"/api/jobs/{job['id']}/").json()["retry_of"] == str(old.pk)
    assert "retry_of" not in client_of.get(f"/api/jobs/{old.pk}/").json()


@pytest.mark.parametrize("state", [State.SUCCESS, State.STARTED])
def test_post_retry_of_a_job_that_succeeded_or_runs_is_409(
    client_of: Client, alice: User, state: State
) -> None:
    old = ended(alice, state)
    response = client_of.post(retry_url(old))
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "not_retryable" and state.value in body["detail"]
    assert Job.objects.count() == 1


def test_post_retry_of_a_group_part_is_409(client_of: Client, alice: User) -> None:
    part = ended(alice, parent=ended(alice), part=1)
    response = client_of.post(retry_url(part))
    assert response.status_code == 409 and response.json()["error"] == "not_retryable"
    assert Job.objects.count() == 2


def test_post_retry_of_another_users_or_an_unknown_job_is_404(client_of: Client, bob: User) -> None:
    theirs = ended(bob)
    for job_id in [str(theirs.pk), "not-a-uuid", "00000000-0000-0000-0000-000000000000"]:
        response = client_of.post(retry_url(job_id))
        assert response.status_code == 404 and response.json() == {"error": "Not found."}
    assert Job.objects.count() == 1


def test_post_retry_over_the_limit_is_429(client_of: Client, alice: User) -> None:
    old = ended(alice)
    Job.objects.create(owner=alice, task="demo.count")
    with limits(MAX_RUNNING_JOBS=1):
        response = client_of.post(retry_url(old))
    assert response.status_code == 429 and "unfinished" in response.json()["error"]


def test_post_retry_over_the_launch_rate_is_429_with_retry_after(
    client_of: Client, alice: User
) -> None:
    first, second = ended(alice), ended(alice)
    with limits(MAX_LAUNCHES_PER_MINUTE=1):
        assert client_of.post(retry_url(first)).status_code == 201
        response = client_of.post(retry_url(second))
    assert response.status_code == 429 and int(response["Retry-After"]) > 0


def test_post_retry_needs_the_csrf_token(alice: User) -> None:
    old = ended(alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(retry_url(old))
    assert response.status_code == 403 and "CSRF" in response.json()["error"]
    assert Job.objects.count() == 1
    # The same request with the token goes through.
    client.get("/")
    token = client.cookies["csrftoken"].value
    assert client.post(retry_url(old), HTTP_X_CSRFTOKEN=token).status_code == 201


def test_retry_needs_a_login_and_a_post(client_of: Client, alice: User) -> None:
    old = ended(alice)
    response = Client().post(retry_url(old))
    assert response.status_code == 401 and response.json() == {"error": "Authentication required."}
    response = client_of.get(retry_url(old))
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert Job.objects.count() == 1


# The pages that offer it.


def test_the_dashboard_and_job_page_carry_the_retry_url(client_of: Client, alice: User) -> None:
    old = ended(alice)
    dashboard = client_of.get("/").content.decode()
    assert 'data-retry-url="/api/jobs/{id}/retry/"' in dashboard
    page = client_of.get(f"/jobs/{old.pk}/").content.decode()
    assert f'data-retry-url="/api/jobs/{old.pk}/retry/"' in page


def test_a_retrys_page_links_to_the_job_it_retried(client_of: Client, alice: User) -> None:
    old = ended(alice)
    new = commands.retry(alice, old.pk)
    page = client_of.get(f"/jobs/{new.pk}/").content.decode()
    assert f'Retry of <a href="/jobs/{old.pk}/">' in page
    assert "Retry of" not in client_of.get(f"/jobs/{old.pk}/").content.decode()


def test_a_job_of_a_task_users_may_not_launch_is_not_retryable(
    client_of: Client, alice: User
) -> None:
    # statements.build is registered public=False: only its app launches it.
    old = Job.objects.create(owner=alice, task="statements.build", state=State.FAILURE)
    response = client_of.post(retry_url(old))
    assert response.status_code == 409 and "may launch" in response.json()["detail"]
    assert Job.objects.count() == 1
