"""The JSON API through Django's test client: auth, CSRF, bad bodies and limits."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from progress.models import Job

pytestmark = pytest.mark.django_db


def post(client: Client, body: Any, raw: str | None = None, **extra: Any) -> Any:
    data = raw if raw is not None else json.dumps(body)
    return client.post("/api/jobs/", data=data, content_type="application/json", **extra)


@pytest.fixture
def client_of(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def test_anonymous_requests_get_401_json() -> None:
    for path in ["/api/tasks/", "/api/jobs/", "/api/jobs/x/", "/api/jobs/x/events/"]:
        response = Client().get(path)
        assert response.status_code == 401, path
        assert response.json() == {"error": "Authentication required."}


def test_unsafe_requests_without_a_csrf_token_get_403_json(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = post(client, {"task": "demo.count"})
    assert response.status_code == 403 and "CSRF" in response.json()["error"]
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("[" * 20_000 + "]" * 20_000, "not valid JSON"),
        ('{"task": "demo.count", "params": {"steps": 1' + "0" * 5000 + "}}", "JSON"),
    ],
)
def test_malformed_bodies_get_400_never_500(client_of: Client, raw: str, message: str) -> None:
    response = post(client_of, None, raw=raw)
    assert response.status_code == 400 and message in response.json()["error"]


def test_a_body_over_the_limit_gets_400(client_of: Client) -> None:
    response = post(client_of, {"task": "demo.count", "params": {"pad": "x" * 70_000}})
    assert response.status_code == 400 and "over" in response.json()["error"]


def test_unknown_fields_and_params_name_the_field(client_of: Client) -> None:
    response = post(client_of, {"task": "demo.count", "sudo": True})
    assert response.status_code == 400 and response.json()["fields"] == {"sudo": ["Unknown field."]}
    response = post(client_of, {"task": "demo.count", "params": {"steps": 5, "shell": "rm"}})
    assert response.json()["fields"] == {"shell": ["Unknown parameter."]}
    response = post(client_of, {"task": "demo.count", "params": {"steps": "ten", "delay": 99}})
    assert set(response.json()["fields"]) == {"steps", "delay"}
    assert Job.objects.count() == 0


def test_a_launch_records_the_job_and_answers_201(
    client_of: Client, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client_of, {"task": "demo.count", "params": {"steps": 3}})
    assert response.status_code == 201
    job = response.json()
    assert job["state"] == "PENDING" and job["task"] == "demo.count"
    # Once committed, the job is numbered and queued: its stored state has seq 1.
    assert client_of.get(f"/api/jobs/{job['id']}/").json()["seq"] == 1
    assert Job.objects.get(pk=job["id"]).params == {"steps": 3, "delay": 0.2, "fail_at": None}


def test_too_many_running_jobs_get_429(client_of: Client, alice: User) -> None:
    Job.objects.create(owner=alice, task="demo.count")
    settings = {"REDIS_URL": os.environ["REDIS_URL"], "MAX_RUNNING_JOBS": 1}
    with override_settings(PROGRESS=settings):
        response = post(client_of, {"task": "demo.count"})
    assert response.status_code == 429 and "unfinished" in response.json()["error"]


def test_other_users_jobs_are_404(client_of: Client, bob: User) -> None:
    theirs = Job.objects.create(owner=bob, task="demo.count")
    assert client_of.get(f"/api/jobs/{theirs.pk}/").status_code == 404
    assert client_of.post(f"/api/jobs/{theirs.pk}/cancel/").status_code == 404
    assert client_of.get(f"/jobs/{theirs.pk}/").status_code == 404
    assert client_of.get(f"/jobs/{theirs.pk}/download/").status_code == 404
    assert client_of.get("/api/jobs/not-a-uuid/").json() == {"error": "Not found."}
    Job.objects.get(pk=theirs.pk, state="PENDING")


def test_the_task_list_describes_params(client_of: Client) -> None:
    tasks = {t["name"]: t for t in client_of.get("/api/tasks/").json()["tasks"]}
    assert tasks["demo.count"]["title"] == "Count"
    assert tasks["demo.count"]["params"]["steps"]["max"] == 100_000


def test_a_wrong_method_gets_405_json_naming_the_right_ones(client_of: Client, job: Job) -> None:
    for method, path, allowed in [
        ("get", f"/api/jobs/{job.pk}/cancel/", "POST"),
        ("put", "/api/jobs/", "GET, POST"),
        ("post", f"/api/jobs/{job.pk}/events/", "GET"),
        ("delete", "/api/tasks/", "GET"),
    ]:
        response = getattr(client_of, method)(path)
        assert response.status_code == 405, path
        assert response["Allow"] == allowed and allowed in response.json()["error"]
