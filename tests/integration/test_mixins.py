"""ProgressConsumerMixin: another app's consumer receives job states, only its user's."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from typing import Any

import pytest
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.testing.websocket import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import override_settings

from progress import JobDict, JobNotFound, ProgressConsumerMixin, TooManySockets
from progress.core.publisher import get_publisher
from progress.models import Job
from progress.protocol.states import State
from tests.helpers import inprocess
from tests.helpers.inprocess import frame, publish

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


class WatchingConsumer(ProgressConsumerMixin, AsyncJsonWebsocketConsumer):
    """A consumer of another app: the client names a job, and gets its states."""

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        try:
            if content.get("all"):
                await self.watch_user_jobs()
                return
            current = await self.watch_job(content["job"])
        except JobNotFound:
            await self.send_json({"error": "not_found"})
            return
        except TooManySockets:
            return
        await self.send_json({"current": current["state"]})

    async def job_update(self, job: JobDict) -> None:
        await self.send_json({"update": job["state"], "id": job["id"], "seq": job["seq"]})


def connect(user: User) -> Awaitable[WebsocketCommunicator]:
    return inprocess.connect(user, WatchingConsumer.as_asgi(), "/ws/watch/")


async def test_a_watched_job_reaches_job_update_in_order_until_it_ends(
    alice: User, job: Job
) -> None:
    await publish(job, State.STARTED)
    communicator = await connect(alice)
    await communicator.send_json_to({"job": str(job.pk)})
    assert await frame(communicator) == {"current": "STARTED"}
    await publish(job, State.PROGRESS, 5)
    await publish(job, State.SUCCESS, 10)
    updates = [await frame(communicator), await frame(communicator)]
    assert [u["update"] for u in updates] == ["PROGRESS", "SUCCESS"]
    assert updates[0]["seq"] < updates[1]["seq"]
    # The watch ended with the job.
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_a_job_of_another_user_is_not_found(bob: User, job: Job) -> None:
    await publish(job, State.STARTED)
    communicator = await connect(bob)
    await communicator.send_json_to({"job": str(job.pk)})
    assert await frame(communicator) == {"error": "not_found"}
    await publish(job, State.PROGRESS, 2)
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_watching_all_of_the_users_jobs(alice: User, job: Job) -> None:
    await publish(job, State.STARTED)
    communicator = await connect(alice)
    await communicator.send_json_to({"all": True})
    assert (await frame(communicator))["update"] == "STARTED"
    await publish(job, State.PROGRESS, 3)
    assert (await frame(communicator))["update"] == "PROGRESS"
    await communicator.disconnect()


async def test_a_logout_closes_a_watching_socket_and_the_user_limit_counts_it(
    alice: User, job: Job
) -> None:
    await publish(job, State.STARTED)
    communicator = await connect(alice)
    await communicator.send_json_to({"all": True})
    await frame(communicator)
    # What a logout anywhere sends (progress/web/sessions.py): every session of the user.
    await asyncio.wrap_future(get_publisher().end_session(alice.pk, ""))
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4401}
    await communicator.disconnect()


async def test_past_max_sockets_the_watch_is_refused_and_the_socket_closed(
    alice: User, job: Job
) -> None:
    await publish(job, State.STARTED)
    with override_settings(PROGRESS={"REDIS_URL": os.environ["REDIS_URL"], "MAX_SOCKETS": 1}):
        first = await connect(alice)
        await first.send_json_to({"job": str(job.pk)})
        assert await frame(first) == {"current": "STARTED"}
        second = await connect(alice)
        await second.send_json_to({"job": str(job.pk)})
        assert await second.receive_output(timeout=5) == {"type": "websocket.close", "code": 4429}
        await first.disconnect()
        await second.disconnect()
