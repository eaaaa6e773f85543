"""Security matrix: IDOR on every route and socket action, CSRF, hidden errors, HTTP fuzz."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from hypothesis import given
from hypothesis import strategies as st

from progress.models import Job
from progress.protocol.frames import Action
from progress.protocol.states import State
from tests.helpers.inprocess import FUZZ, connect, frame, publish, send
from tests.support import FUZZED

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

# Stands for the job id when a route is reversed; a UUID, so <uuid:> routes reverse too.
PLACEHOLDER = "00000000-0000-0000-0000-000000000000"

# How a user calls each route of the progress app. A route missing here fails
# test_another_user_reaches_none_of_a_jobs_routes: a new endpoint needs its IDOR check.
ROUTE_METHODS = {
    "dashboard": "get",
    "job": "get",
    "download": "get",
    "api-tasks": "get",
    "api-jobs": "get",
    "api-job": "get",
    "api-job-cancel": "post",
    "api-job-events": "get",
    "api-job-retry": "post",
    "result-json": "get",
    "history": "get",
    # Answered 404 until PROGRESS["METRICS_TOKEN"] is set (tests/integration/test_metrics.py).
    "metrics": "get",
    # Never ends: tests/integration/test_streams.py reads it; only the user's jobs go in it.
    "api-events": "stream",
}

# Routes whose answer to a user other than the owner is not a page to search for the job id.
NOT_PAGES = {"metrics", "api-events"}

UNSAFE_METHODS = ("post", "put", "patch", "delete")

NOT_FOUND = {"type": "error", "error": "not_found", "detail": "No such job."}


def progress_routes() -> dict[str, URLPattern]:
    """Every route of the progress namespace, by name, read from the live URLconf."""
    _prefix, resolver = get_resolver().namespace_dict["progress"]
    # A nested include or an unnamed route would escape the matrix below.
    assert not any(isinstance(p, URLResolver) for p in resolver.url_patterns)
    patterns = [p for p in resolver.url_patterns if isinstance(p, URLPattern)]
    assert all(p.name for p in patterns), patterns
    return {str(p.name): p for p in patterns}


def job_scoped(name: str) -> bool:
    return "job_id" in progress_routes()[name].pattern.regex.groupindex


def path_of(name: str, job_id: object = PLACEHOLDER) -> str:
    """The route's path; job_id goes in percent-encoded, whatever it is."""
    if not job_scoped(name):
        return reverse(f"progress:{name}")
    path = reverse(f"progress:{name}", kwargs={"job_id": PLACEHOLDER})
    return path.replace(PLACEHOLDER, quote(str(job_id), safe=""))


def call(client: Client, name: str, job_id: object = PLACEHOLDER) -> Response:
    response: Response = getattr(client, ROUTE_METHODS[name])(path_of(name, job_id))
    return response


def logged_in(user: User, **options: Any) -> Client:
    client = Client(**options)
    client.force_login(user)
    return client


def text_of(response: Response) -> str:
    # getvalue() reads a streaming body (a download) as well as a plain one.
    return response.getvalue().decode()


def assert_untouched(alice: User, job: Job) -> None:
    """The owner still sees the job as it was: pending, never cancelled."""
    row = Job.objects.get(pk=job.pk)
    assert (row.state, row.finished) == ("PENDING", None)
    seen = logged_in(alice).get(path_of("api-job", job.pk)).json()
    assert (seen["state"], seen["finished"]) == ("PENDING", None)


@pytest.fixture
def with_file(job: Job) -> Job:
    """Alice's job with a result file, so a 404 on download means refused, not missing."""
    job.result_file.save("result.csv", ContentFile(b"total\n10\n"))
    return job


# 1. IDOR.


@pytest.mark.django_db
def test_another_user_reaches_none_of_a_jobs_routes(alice: User, bob: User, with_file: Job) -> None:
    job = with_file
    assert set(ROUTE_METHODS) == set(progress_routes())
    client = logged_in(bob)
    for name in ROUTE_METHODS.keys() - NOT_PAGES:
        response = call(client, name, job.pk)
        if job_scoped(name):
            assert response.status_code == 404, name
        else:
            assert response.status_code == 200, name
            assert str(job.pk) not in text_of(response), name
    assert client.get(path_of("api-jobs")).json() == {"jobs": []}
    assert_untouched(alice, job)


@pytest.mark.django_db
def test_staff_see_any_job_but_download_only_their_own(
    alice: User, staff: User, with_file: Job
) -> None:
    job = with_file
    client = logged_in(staff)
    response = call(client, "api-job", job.pk)
    assert response.status_code == 200 and response.json()["id"] == str(job.pk)
    response = call(client, "job", job.pk)
    assert response.status_code == 200 and str(job.pk) in text_of(response)
    # views.download filters on the owner, not on visibility: staff are refused too.
    assert call(client, "download", job.pk).status_code == 404
    response = call(logged_in(alice), "download", job.pk)
    assert response.status_code == 200 and text_of(response) == "total\n10\n"
    response.close()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "other_id",
    [uuid.uuid4(), "not-a-uuid", "", "1", "../../etc/passwd", "%2e%2e", "a/b", "x" * 300],
    ids=["nobodys", "not-a-uuid", "empty", "int", "dotdot", "escaped", "slash", "long"],
)
def test_unknown_and_malformed_ids_answer_like_a_foreign_job(
    bob: User, with_file: Job, other_id: object
) -> None:
    client = logged_in(bob)
    for name in filter(job_scoped, ROUTE_METHODS):
        foreign = call(client, name, with_file.pk)
        other = call(client, name, other_id)
        assert foreign.status_code == 404, name
        assert (other.status_code, other["Content-Type"], other.content) == (
            foreign.status_code,
            foreign["Content-Type"],
            foreign.content,
        ), name


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_another_users_socket_can_neither_act_on_nor_hear_a_job(
    alice: User, bob: User, job: Job
) -> None:
    bobs, alices = await connect(bob), await connect(alice)
    assert (await frame(bobs))["jobs"] == []
    await frame(alices)
    for action in Action:
        assert await send(bobs, {"action": action.value, "job": str(job.id)}) == NOT_FOUND
    row = await database_sync_to_async(Job.objects.get)(pk=job.pk)
    assert (row.state, row.finished) == ("PENDING", None)
    await publish(job, State.PROGRESS, 2)
    update = await frame(alices)
    assert (update["job"]["id"], update["job"]["state"]) == (str(job.id), "PROGRESS")
    # Alice's socket has had it: the state reached this process, and Bob's socket stays silent.
    assert await bobs.receive_nothing(timeout=0.5)
    await bobs.disconnect()
    await alices.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_socket_ids_cannot_be_probed(bob: User, job: Job) -> None:
    communicator = await connect(bob)
    await frame(communicator)
    for action in Action:
        for job_id in [str(job.id), str(uuid.uuid4()), "not-a-uuid", "", "../x"]:
            reply = await send(communicator, {"action": action.value, "job": job_id})
            assert reply == NOT_FOUND, (action, job_id)
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_staff_subscribe_to_another_users_job(staff: User, job: Job) -> None:
    communicator = await connect(staff)
    await frame(communicator)
    reply = await send(communicator, {"action": "subscribe", "job": str(job.id)})
    assert reply["type"] == "job" and reply["job"]["id"] == str(job.id)
    await communicator.disconnect()


# 2. CSRF.


def csrf_token(client: Client) -> str:
    # The logout form of every page sets the cookie.
    assert client.get(reverse("progress:dashboard")).status_code == 200
    return str(client.cookies["csrftoken"].value)


def still_logged_in(client: Client) -> bool:
    return client.get(path_of("api-jobs")).status_code == 200


@pytest.mark.django_db
def test_every_unsafe_request_without_a_token_is_refused(alice: User, job: Job) -> None:
    client = logged_in(alice, enforce_csrf_checks=True)
    paths = [path_of(name, job.pk) for name in progress_routes()] + [reverse("logout")]
    for path in paths:
        for method in UNSAFE_METHODS:
            response = getattr(client, method)(path)
            assert response.status_code == 403, (method, path)
            if path.startswith("/api/"):
                assert "CSRF" in response.json()["error"], (method, path)
    assert_untouched(alice, job)
    assert Job.objects.count() == 1
    assert still_logged_in(client)


# A well-formed token of nobody's session.
FORGED = {"X-CSRFToken": "a" * 64}


@pytest.mark.django_db
def test_a_launch_needs_the_csrf_token(alice: User) -> None:
    client = logged_in(alice, enforce_csrf_checks=True)
    body = json.dumps({"task": "demo.count", "params": {"steps": 3}})

    def launch(headers: dict[str, str] | None = None) -> Response:
        return client.post(path_of("api-jobs"), body, "application/json", headers=headers)

    for refused in (launch(), launch(FORGED)):
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    assert Job.objects.count() == 0
    response = launch({"X-CSRFToken": csrf_token(client)})
    assert response.status_code == 201
    assert Job.objects.get().pk == uuid.UUID(response.json()["id"])


@pytest.mark.django_db
def test_a_cancel_needs_the_csrf_token(alice: User, job: Job) -> None:
    client = logged_in(alice, enforce_csrf_checks=True)
    path = path_of("api-job-cancel", job.pk)
    for refused in (client.post(path), client.post(path, headers=FORGED)):
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    assert_untouched(alice, job)
    response = client.post(path, headers={"X-CSRFToken": csrf_token(client)})
    assert response.status_code == 202 and response.json()["state"] == "REVOKED"
    assert Job.objects.get(pk=job.pk).state == "REVOKED"


@pytest.mark.django_db
def test_a_logout_needs_the_csrf_token(alice: User) -> None:
    client = logged_in(alice, enforce_csrf_checks=True)
    for refused in (client.post(reverse("logout")), client.post(reverse("logout"), headers=FORGED)):
        assert refused.status_code == 403
    assert still_logged_in(client)
    response = client.post(reverse("logout"), headers={"X-CSRFToken": csrf_token(client)})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert not still_logged_in(client)


# 3. No internals in an error.

LEAKS = ("Traceback", "RuntimeError", "secret-internal-detail")


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("secret-internal-detail")


async def _aboom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("secret-internal-detail")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("target", "crash", "name", "is_api"),
    [
        ("progress.core.reads.list_jobs", _boom, "api-jobs", True),
        ("progress.core.reads.get_visible_job", _boom, "api-job", True),
        ("progress.core.reads.aget_visible_job", _aboom, "api-job-events", True),
        ("progress.core.registry.launchable", _boom, "dashboard", False),
        ("progress.core.reads.get_visible_job", _boom, "job", False),
    ],
    ids=["api-list", "api-detail", "api-async-events", "page-dashboard", "page-job"],
)
def test_a_crash_shows_no_internals(
    alice: User,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    crash: Callable[..., Any],
    name: str,
    is_api: bool,
) -> None:
    monkeypatch.setattr(target, crash)
    response = call(logged_in(alice, raise_request_exception=False), name)
    assert response.status_code == 500
    body = response.content.decode()
    assert not [leak for leak in LEAKS if leak in body], body
    if is_api:
        assert response["Content-Type"] == "application/json"
        assert list(response.json()) == ["error"] and response.json()["error"]
    else:
        assert response["Content-Type"].startswith("text/html")


# 4. HTTP fuzz.

SPECIAL_SEGMENTS = [
    ".",
    "..",
    "../",
    "../../etc/passwd",
    "%",
    "%00",
    "%2e%2e%2f",
    "%ZZ",
    "%ff%fe",
    "\x00",
    "\r\nSet-Cookie: x=1",
    "null",
    "0" * 64,
    "{" + PLACEHOLDER + "}",
    "urn:uuid:" + PLACEHOLDER,
]

# The job id segment as it goes on the wire: percent-encoded text or bytes (not UTF-8, say).
segments = st.one_of(
    st.text(max_size=80),
    st.sampled_from(SPECIAL_SEGMENTS),
    st.uuids().map(str),
    st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=4), st.integers(200, 3000)),
).map(lambda s: quote(s, safe="")) | st.binary(max_size=80).map(lambda b: quote(b, safe=""))

query_strings = st.one_of(
    st.lists(st.tuples(st.text(max_size=20), st.text(max_size=40)), max_size=6).map(urlencode),
    # Raw text, keeping %, & and = so broken escapes and odd pairs reach the server.
    st.text(max_size=200).map(lambda s: quote(s, safe="%&=+;")),
    st.binary(max_size=100).map(lambda b: quote(b, safe="")),
    st.sampled_from(
        ["%", "%ZZ", "a=%ff", "a=1&a=2", "=" * 100, "x=" + "y" * 10_000, "a=1&" * 2000]
    ),
)

FUZZ_STATUSES = {200, 400, 404, 405}


def assert_json_answer(response: Response) -> None:
    assert response.status_code in FUZZ_STATUSES, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json", response.content[:300]
    assert isinstance(response.json(), dict)


@pytest.mark.django_db
@FUZZ
@given(segment=segments)
def test_any_job_id_in_an_api_path_gets_json_never_a_500(alice: User, segment: str) -> None:
    client = logged_in(alice)
    for name in ROUTE_METHODS:
        if job_scoped(name) and path_of(name).startswith("/api/"):
            path = path_of(name).replace(PLACEHOLDER, segment)
            FUZZED["job ids in API paths"] += 1
            assert_json_answer(getattr(client, ROUTE_METHODS[name])(path))


@pytest.mark.django_db
@FUZZ
@given(query=query_strings, name=st.sampled_from(["api-jobs", "api-tasks"]))
def test_any_query_string_on_a_list_gets_json_never_a_500(
    alice: User, query: str, name: str
) -> None:
    FUZZED["query strings on API lists"] += 1
    assert_json_answer(logged_in(alice).get(f"{path_of(name)}?{query}"))
