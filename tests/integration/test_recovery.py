"""Epochs on a real Redis: a numbering that restarts says so, a reconnect learns what it
recovered, and a final state reaches sockets only after job_finished receivers ran."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.test import override_settings

from progress import job_finished
from progress.core import machine, reads
from progress.core.publisher import get_publisher
from progress.models import Job
from progress.protocol.states import State
from progress.web.sse import job_events
from tests.helpers.inprocess import awaited, connect, frame, generator, publish, state_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

TABLE = json.loads((Path(__file__).parents[1] / "conformance" / "recovery.json").read_text())


async def flush_redis() -> None:
    """As a restart of a Redis that keeps nothing on disk: every state and epoch is gone."""
    publisher = get_publisher()
    await publisher.acall(awaited(publisher.store.redis.flushdb()))


async def commit(job: Job, state: State) -> int | None:
    """A change of state as a worker commits it: numbered in Redis and written to the row."""
    return await database_sync_to_async(machine.commit_state)(state_of(job, state))


async def current(job: Job) -> dict[str, Any]:
    """The job's state as a fresh read gives it (its row read again, as every request does)."""
    row = await Job.objects.aget(pk=job.pk)
    found = await database_sync_to_async(reads.latest_of)(row)
    data: dict[str, Any] = json.loads(found.json)
    return data


async def test_a_state_lost_with_redis_comes_back_in_a_new_epoch_never_a_lower_seq_in_the_old(
    job: Job,
) -> None:
    await commit(job, State.STARTED)
    for step in range(1, 6):
        await publish(job, State.PROGRESS, step)
    before = await current(job)
    assert before["seq"] == 6 and before["epoch"]
    await flush_redis()
    # What a snapshot reads now: the row, put back into Redis under a new epoch.
    after = await current(job)
    assert after["epoch"] != before["epoch"]
    assert after["seq"] <= before["seq"]  # Lower, but in another numbering.
    await database_sync_to_async(job.refresh_from_db)()
    assert job.epoch == after["epoch"], "the row follows, for when Redis is away"
    # A worker that goes on (its floor: the seq it last had) continues the new numbering,
    # above every seq it had shown.
    future = get_publisher().publish(state_of(job, State.PROGRESS, 7), floor=before["seq"])
    mark = await asyncio.wrap_future(future)
    assert mark is not None and (mark.epoch, mark.seq) == (after["epoch"], 7)


async def test_a_worker_that_publishes_first_after_the_loss_starts_the_new_epoch(job: Job) -> None:
    await commit(job, State.STARTED)
    first = (await current(job))["epoch"]
    await flush_redis()
    # Its floor is the seq it last had: the new numbering starts above it.
    future = get_publisher().publish(state_of(job, State.PROGRESS, 3), floor=1)
    mark = await asyncio.wrap_future(future)
    assert mark is not None and mark.seq == 2 and mark.epoch != first
    state = await current(job)
    assert state["epoch"] == mark.epoch and state["current"] == 3


async def test_an_open_socket_is_handed_the_new_epoch_when_redis_loses_its_data(
    alice: User, job: Job
) -> None:
    await commit(job, State.STARTED)
    with override_settings(
        PROGRESS={"REDIS_URL": os.environ["REDIS_URL"], "RECONCILE_INTERVAL": 0.2}
    ):
        socket = await connect(alice)
        snapshot = await frame(socket)
        held = snapshot["jobs"][0]
        await flush_redis()
        # No worker publishes: only the hub's resync, from the row, can tell the socket.
        resynced = await frame(socket)
        assert resynced["job"]["epoch"] != held["epoch"]
        assert resynced["job"]["state"] == "STARTED"
        await socket.disconnect()


def held_of(case: dict[str, Any], state: dict[str, Any]) -> str | None:
    held = case["held"]
    if held is None:
        return None
    epoch = state["epoch"] if held["epoch"] == "same" else "an-older-epoch"
    seq = state["seq"] + {"current": 0, "older": -2, "future": 5}[held["seq"]]
    return f"{state['id']}:{epoch}:{seq}"


@pytest.mark.parametrize("case", TABLE["reconnects"], ids=lambda case: case["name"])
async def test_a_reconnect_learns_whether_its_view_was_continuous_or_replaced(
    alice: User, job: Job, case: dict[str, Any]
) -> None:
    await publish(job, State.STARTED)
    for step in range(1, 4):
        await publish(job, State.PROGRESS, step)
    state = await current(job)
    held = held_of(case, state)
    socket = await connect(alice, path="/ws/progress/" + (f"?held={held}" if held else ""))
    snapshot = await frame(socket)
    assert snapshot["protocol"] == 2
    assert [job["seq"] for job in snapshot["jobs"]] == [state["seq"]]
    assert snapshot.get("recovered") == case["recovered"]
    assert (str(job.pk) in snapshot.get("replaced", [])) == case["replaced"]
    await socket.disconnect()


async def test_a_malformed_held_parameter_costs_the_socket_nothing_but_an_error_after_the_snapshot(
    alice: User, job: Job
) -> None:
    socket = await connect(alice, path="/ws/progress/?held=not-a-job:e:1")
    snapshot = await frame(socket)
    assert snapshot["type"] == "snapshot" and "recovered" not in snapshot
    error = await frame(socket)
    assert error["type"] == "error" and error["error"] == "bad_frame"
    assert "<job id>:<epoch>:<seq>" in error["detail"]
    await publish(job, State.STARTED)
    assert (await frame(socket))["job"]["state"] == "STARTED"
    await socket.disconnect()


async def test_a_job_stream_resumed_with_last_event_id_says_whether_it_continues(job: Job) -> None:
    await publish(job, State.STARTED)
    await publish(job, State.PROGRESS, 2)
    state = await current(job)
    first = await anext(generator(job_events(job)))
    assert first.startswith(f"id: {state['epoch']}:{state['seq']}\n")
    for last_id, recovered in [
        (f"{state['epoch']}:{state['seq'] - 1}", True),
        (f"another-epoch:{state['seq'] + 9}", False),
    ]:
        events = generator(job_events(job, last_id))
        event = await anext(events)
        await events.aclose()
        data = json.loads(event.split("data: ", 1)[1])
        assert data["recovered"] is recovered and data["job"]["seq"] == state["seq"]
    # An id this server never sent starts over, with no claim either way.
    events = generator(job_events(job, "garbage"))
    assert "recovered" not in json.loads((await anext(events)).split("data: ", 1)[1])
    await events.aclose()


async def test_job_finished_receivers_run_before_the_final_frame_reaches_a_socket(
    alice: User, job: Job
) -> None:
    """The documented order of effects: a page that reloads on the final frame reads what
    the receivers wrote. The receiver is slow on purpose, so the frame would win any race."""

    def receiver(**kwargs: Any) -> None:
        time.sleep(0.3)
        Job.objects.filter(pk=kwargs["job_id"]).update(message="receiver was here")

    await publish(job, State.STARTED)
    socket = await connect(alice)
    await frame(socket)
    job_finished.connect(receiver)
    try:
        final = state_of(job, State.SUCCESS, 10)
        # As a worker ends it: in a thread of its own (one that closes its database connection).
        finishing = asyncio.ensure_future(database_sync_to_async(machine.commit_state)(final))
        received = await frame(socket)
        assert received["job"]["state"] == "SUCCESS"
        row = await Job.objects.aget(pk=job.pk)
        assert row.message == "receiver was here"
        await finishing
    finally:
        job_finished.disconnect(receiver)
    await socket.disconnect()
