"""The consumer through channels' WebsocketCommunicator, on a real channels-redis layer."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User
from django.test import override_settings
from redis.exceptions import ConnectionError as RedisConnectionError

from progress.models import Job
from progress.protocol.states import State
from tasks_site.asgi import application
from tests.helpers.inprocess import app, connect, frame, publish, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def test_anonymous_sockets_are_refused() -> None:
    communicator = WebsocketCommunicator(app, "/ws/progress/")
    communicator.scope["user"] = AnonymousUser()
    connected, _ = await communicator.connect(timeout=5)
    assert not connected


@pytest.mark.parametrize("origin", [b"http://evil.example", None])
async def test_foreign_or_missing_origins_are_refused(origin: bytes | None) -> None:
    headers = [(b"origin", origin)] if origin else []
    communicator = WebsocketCommunicator(application, "/ws/progress/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert not connected


async def test_snapshot_first_then_each_new_state(alice: User, job: Job) -> None:
    await publish(job, State.STARTED)
    communicator = await connect(alice)
    snapshot = await frame(communicator)
    assert snapshot["type"] == "snapshot"
    assert [(j["id"], j["state"]) for j in snapshot["jobs"]] == [(str(job.id), "STARTED")]
    await publish(job, State.PROGRESS, 5)
    update = await frame(communicator)
    assert update["type"] == "job" and update["job"]["current"] == 5 and update["job"]["seq"] == 2
    await communicator.disconnect()


async def test_recent_finished_jobs_are_in_the_snapshot(alice: User, job: Job) -> None:
    await publish(job, State.SUCCESS, 10)
    communicator = await connect(alice)
    jobs = (await frame(communicator))["jobs"]
    assert jobs[0]["state"] == "SUCCESS" and jobs[0]["current"] == 10
    await communicator.disconnect()


async def test_a_user_never_receives_another_users_job(alice: User, bob: User, job: Job) -> None:
    communicator = await connect(bob)
    assert (await frame(communicator))["jobs"] == []
    await publish(job, State.PROGRESS, 2)
    assert await communicator.receive_nothing(timeout=0.5)
    reply = await send(communicator, {"action": "subscribe", "job": str(job.id)})
    assert reply == {"type": "error", "error": "not_found", "detail": "No such job."}
    reply = await send(communicator, {"action": "cancel", "job": str(job.id)})
    assert reply["error"] == "not_found"
    assert (await database_sync_to_async(Job.objects.get)(pk=job.pk)).state == "PENDING"
    await communicator.disconnect()


async def test_staff_subscribe_to_any_job(staff: User, job: Job) -> None:
    await publish(job, State.STARTED)
    communicator = await connect(staff)
    await frame(communicator)
    reply = await send(communicator, {"action": "subscribe", "job": str(job.id)})
    assert reply["type"] == "job" and reply["job"]["state"] == "STARTED"
    await publish(job, State.PROGRESS, 4)
    assert (await frame(communicator))["job"]["current"] == 4
    await communicator.send_to(text_data=json.dumps({"action": "unsubscribe", "job": str(job.id)}))
    # Frames are handled in order: once this one is answered, the unsubscribe is done.
    assert (await send(communicator, {"action": "subscribe", "job": "x"}))["error"] == "not_found"
    await publish(job, State.PROGRESS, 5)
    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.disconnect()


async def test_a_watcher_gets_only_the_job_it_subscribed_to(
    alice: User, staff: User, job: Job
) -> None:
    other = await database_sync_to_async(Job.objects.create)(owner=alice, task="demo.count")
    communicator = await connect(staff)
    await frame(communicator)
    await send(communicator, {"action": "subscribe", "job": str(job.id)})
    await publish(other, State.PROGRESS, 9)  # Alice's other job: not for this socket.
    await publish(job, State.PROGRESS, 2)
    update = await frame(communicator)
    assert update["job"]["id"] == str(job.id) and update["job"]["current"] == 2
    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.disconnect()


async def test_bad_frames_get_an_error_and_the_socket_stays_usable(alice: User, job: Job) -> None:
    communicator = await connect(alice)
    await frame(communicator)
    await communicator.send_to(text_data="{not json")
    assert (await frame(communicator))["error"] == "bad_json"
    await communicator.send_to(bytes_data=b"\x00\xff")
    assert (await frame(communicator))["error"] == "bad_frame"
    assert (await send(communicator, {"action": "dance", "job": "x"}))["error"] == "unknown_action"
    assert (await send(communicator, {"action": "subscribe", "job": "nope"}))["error"] == (
        "not_found"
    )
    # Still usable: a good subscribe is answered with the job.
    reply = await send(communicator, {"action": "subscribe", "job": str(job.id)})
    assert reply["type"] == "job" and reply["job"]["id"] == str(job.id)
    await communicator.disconnect()


async def test_a_frame_over_the_limit_closes_the_socket_with_1009(alice: User) -> None:
    communicator = await connect(alice)
    await frame(communicator)
    await communicator.send_to(text_data=json.dumps({"action": "subscribe", "job": "x" * 9000}))
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 1009}


async def test_cancel_ends_the_job_revoked(alice: User, job: Job) -> None:
    await publish(job, State.PROGRESS, 3)
    communicator = await connect(alice)
    await frame(communicator)
    await communicator.send_to(text_data=json.dumps({"action": "cancel", "job": str(job.id)}))
    update = await frame(communicator)
    assert update["job"]["state"] == "REVOKED" and update["job"]["current"] == 3
    assert (await database_sync_to_async(Job.objects.get)(pk=job.pk)).state == "REVOKED"
    await communicator.disconnect()


async def test_stale_states_are_not_sent_twice(alice: User, staff: User, job: Job) -> None:
    """A staff member watching their own job gets each state once, not per group."""
    own = await database_sync_to_async(Job.objects.create)(owner=staff, task="demo.count")
    communicator = await connect(staff)
    await frame(communicator)
    await send(communicator, {"action": "subscribe", "job": str(own.id)})
    await publish(own, State.PROGRESS, 1)
    assert (await frame(communicator))["job"]["current"] == 1
    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.disconnect()


async def test_the_socket_limit_per_user(alice: User) -> None:
    with override_settings(PROGRESS={"REDIS_URL": os.environ["REDIS_URL"], "MAX_SOCKETS": 2}):
        # One after the other: a socket counts once its snapshot is out, not at accept.
        first = await connect(alice)
        await frame(first)
        second = await connect(alice)
        await frame(second)
        third = await connect(alice)
        refused = await frame(third)
        assert refused["error"] == "too_many_sockets"
        assert (await third.receive_output(timeout=5))["code"] == 4429
        await first.disconnect()
        # A closed socket frees its place.
        fourth = await connect(alice)
        assert (await frame(fourth))["type"] == "snapshot"
        await asyncio.gather(second.disconnect(), fourth.disconnect())


async def test_a_socket_that_cannot_reach_redis_is_told_to_try_again_later(
    alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mocked: Redis failing at this one call cannot be arranged on a live server."""

    async def unreachable(user_id: int, socket_id: str) -> bool:
        raise RedisConnectionError("Connection closed by server.")

    monkeypatch.setattr("progress.web.presence.open_socket", unreachable)
    communicator = await connect(alice)
    notice = await frame(communicator)
    assert notice["type"] == "error" and notice["error"] == "unavailable"
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 1013}
    await communicator.disconnect()
