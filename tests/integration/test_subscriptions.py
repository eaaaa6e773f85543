"""progress.subscribe() and subscribe_user(): job states as async iterators, on a real layer."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from progress import JobNotFound, subscribe, subscribe_user
from progress.core.publisher import get_publisher
from progress.models import Job
from progress.protocol.states import State
from tests.helpers.inprocess import generator, state_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def publish(job: Job, state: State, current: float = 1) -> int | None:
    mark = await asyncio.wrap_future(get_publisher().publish(state_of(job, state, current)))
    return None if mark is None else mark.seq


async def test_a_job_yields_its_current_state_then_each_newer_one_and_ends(job: Job) -> None:
    await publish(job, State.STARTED)
    seen: list[dict[str, Any]] = []

    async def read() -> None:
        async for state in subscribe(job.pk):
            seen.append(dict(state))

    reader = asyncio.ensure_future(read())
    while not seen:
        await asyncio.sleep(0.01)
    for current in (1, 2, 3):
        await publish(job, State.PROGRESS, current)
    await publish(job, State.SUCCESS, 10)
    await asyncio.wait_for(reader, 5)
    assert seen[0]["state"] == "STARTED"
    assert seen[-1]["state"] == "SUCCESS"
    seqs = [s["seq"] for s in seen]
    assert seqs == sorted(set(seqs))


async def test_a_finished_job_yields_its_final_state_only(job: Job) -> None:
    await publish(job, State.FAILURE)
    states = [state async for state in subscribe(str(job.pk))]
    assert [s["state"] for s in states] == ["FAILURE"]


async def test_with_a_user_only_a_job_they_may_see(job: Job, bob: User, staff: User) -> None:
    await publish(job, State.REVOKED)
    with pytest.raises(JobNotFound):
        async for _state in subscribe(job.pk, user=bob):
            pass
    with pytest.raises(JobNotFound):
        async for _state in subscribe("not-a-uuid"):
            pass
    assert [s["state"] async for s in subscribe(job.pk, user=staff)] == ["REVOKED"]


async def test_a_user_stream_yields_recent_jobs_then_every_new_state(alice: User, job: Job) -> None:
    await publish(job, State.SUCCESS)
    second = await database_sync_to_async(Job.objects.create)(owner=alice, task="demo.count")
    async with aclosing(generator(subscribe_user(alice))) as states:
        first = await asyncio.wait_for(anext(states), 5)
        assert first["id"] == str(job.pk) and first["state"] == "SUCCESS"
        assert (await asyncio.wait_for(anext(states), 5))["id"] == str(second.pk)
        await publish(second, State.PROGRESS, 4)
        live = await asyncio.wait_for(anext(states), 5)
        assert live["id"] == str(second.pk) and live["current"] == 4


async def test_a_user_stream_without_replay_yields_only_new_states(alice: User, job: Job) -> None:
    await publish(job, State.STARTED)
    async with aclosing(generator(subscribe_user(alice.pk, replay=False))) as states:
        reading = asyncio.ensure_future(anext(states))
        await asyncio.sleep(0.3)
        assert not reading.done()
        await publish(job, State.PROGRESS, 2)
        assert (await asyncio.wait_for(reading, 5))["current"] == 2
