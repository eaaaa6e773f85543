"""The user's SSE stream at /api/events/ through the ASGI app, on a real channels-redis layer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, override_settings

from progress.core import reads
from progress.core.publisher import get_publisher
from progress.models import Job
from progress.protocol.frames import job_frame
from progress.protocol.states import State
from tasks_site.asgi import application
from tests.helpers.inprocess import state_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def publish(job: Job, state: State, current: float = 1) -> int | None:
    mark = await asyncio.wrap_future(get_publisher().publish(state_of(job, state, current)))
    return None if mark is None else mark.seq


def _session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


class Stream:
    """One GET of the stream, read event by event, as an EventSource would."""

    def __init__(self, cookie: str | None) -> None:
        headers = [(b"host", b"testserver"), (b"accept", b"text/event-stream")]
        if cookie is not None:
            headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/api/events/",
            "raw_path": b"/api/events/",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1234),
            "server": ("testserver", 80),
        }
        self.app = ApplicationCommunicator(application, scope)
        self.buffer = ""
        self.more = True

    async def start(self) -> dict[str, Any]:
        """Runs first: sends the request and returns the response's start message."""
        await self.app.send_input({"type": "http.request", "body": b"", "more_body": False})
        start: dict[str, Any] = await self.app.receive_output(5)
        assert start["type"] == "http.response.start"
        return start

    async def body(self) -> bytes:
        """Runs for a response that is not a stream: the whole body."""
        chunks = b""
        while self.more:
            message = await self.app.receive_output(5)
            chunks += message.get("body", b"")
            self.more = message.get("more_body", False)
        return chunks

    async def events(self, timeout: float = 5) -> AsyncIterator[str]:
        """Yields each event's text (comments included) as the body brings it."""
        while True:
            while "\n\n" in self.buffer:
                event, self.buffer = self.buffer.split("\n\n", 1)
                yield event
            if not self.more:
                return
            message = await self.app.receive_output(timeout)
            self.buffer += message.get("body", b"").decode()
            self.more = message.get("more_body", False)

    async def frame(self) -> dict[str, Any]:
        """The next data event's frame, skipping keep-alive comments."""
        async for event in self.events():
            if event.startswith(":"):
                continue
            assert event.startswith("data: "), event
            frame: dict[str, Any] = json.loads(event.removeprefix("data: "))
            return frame
        raise AssertionError("The stream ended.")

    async def close(self) -> None:
        """Runs at the end of a test: the client goes away, as a closed tab does."""
        await self.app.send_input({"type": "http.disconnect"})
        await self.app.wait(5)


async def open_stream(user: User | None) -> tuple[Stream, dict[str, Any]]:
    cookie = None if user is None else await database_sync_to_async(_session_cookie)(user)
    stream = Stream(cookie)
    return stream, await stream.start()


async def test_anonymous_gets_401_json() -> None:
    stream, start = await open_stream(None)
    assert start["status"] == 401
    assert json.loads(await stream.body()) == {"error": "Authentication required."}
    await stream.app.wait(5)


async def test_the_first_event_is_a_snapshot_of_the_users_jobs_only(
    alice: User, bob: User, job: Job
) -> None:
    await publish(job, State.STARTED)
    theirs = await database_sync_to_async(Job.objects.create)(owner=bob, task="demo.count")
    await publish(theirs, State.STARTED)
    stream, start = await open_stream(alice)
    headers = dict(start["headers"])
    assert start["status"] == 200
    assert headers[b"Content-Type"] == b"text/event-stream"
    assert headers[b"Cache-Control"] == b"no-cache"
    assert headers[b"X-Accel-Buffering"] == b"no"
    try:
        first = await stream.frame()
        assert first["type"] == "snapshot"
        assert [(j["id"], j["state"]) for j in first["jobs"]] == [(str(job.pk), "STARTED")]
    finally:
        await stream.close()


async def test_later_states_of_the_users_jobs_arrive_as_job_frames_and_no_one_elses(
    alice: User, bob: User, job: Job
) -> None:
    theirs = await database_sync_to_async(Job.objects.create)(owner=bob, task="demo.count")
    stream, _start = await open_stream(alice)
    try:
        assert (await stream.frame())["type"] == "snapshot"
        await publish(theirs, State.PROGRESS, 9)
        await publish(job, State.PROGRESS, 4)
        live = await stream.frame()
        assert live["type"] == "job"
        assert live["job"]["id"] == str(job.pk) and live["job"]["current"] == 4
        await publish(theirs, State.SUCCESS, 10)
        await publish(job, State.SUCCESS, 10)
        final = await stream.frame()
        assert final["job"]["id"] == str(job.pk) and final["job"]["state"] == "SUCCESS"
        # The stream outlives the job's end: it carries all of the user's jobs.
        later = await database_sync_to_async(Job.objects.create)(owner=alice, task="demo.count")
        await publish(later, State.STARTED)
        assert (await stream.frame())["job"]["id"] == str(later.pk)
    finally:
        await stream.close()


async def test_frames_are_the_sockets_frames_byte_for_byte(alice: User, job: Job) -> None:
    stream, _start = await open_stream(alice)
    try:
        await stream.frame()
        await publish(job, State.PROGRESS, 2)
        event = await anext(stream.events())
        stored = await database_sync_to_async(lambda: Job.objects.get(pk=job.pk))()
        expected = job_frame(await database_sync_to_async(reads.job_json)(stored))
        assert event == f"data: {expected}"
    finally:
        await stream.close()


@override_settings(PROGRESS={**settings.PROGRESS, "SSE_KEEPALIVE": 0.2})
async def test_an_idle_stream_sends_keep_alive_comments(alice: User) -> None:
    stream, _start = await open_stream(alice)
    try:
        await stream.frame()
        assert await anext(stream.events()) == ": keep-alive"
    finally:
        await stream.close()


async def test_a_logout_ends_the_stream_with_the_sockets_session_ended_frame(alice: User) -> None:
    client = Client()
    await database_sync_to_async(client.force_login)(alice)
    stream = Stream(client.cookies[settings.SESSION_COOKIE_NAME].value)
    await stream.start()
    await stream.frame()
    await database_sync_to_async(client.logout)()
    last = await stream.frame()
    assert last == {
        "type": "error",
        "error": "session_ended",
        "detail": "You were signed out; log in again.",
    }
    assert [event async for event in stream.events()] == []
    await stream.app.wait(5)


@override_settings(PROGRESS={**settings.PROGRESS, "MAX_SOCKETS": 1})
async def test_a_stream_counts_as_one_of_the_users_sockets(alice: User) -> None:
    first, _start = await open_stream(alice)
    try:
        await first.frame()
        second, start = await open_stream(alice)
        assert start["status"] == 200
        assert (await second.frame())["error"] == "too_many_sockets"
        assert [event async for event in second.events()] == []
        await second.app.wait(5)
    finally:
        await first.close()
