"""The publisher and state store on a real Redis and a real channels-redis layer."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
import redis
from channels.layers import get_channel_layer
from django.contrib.auth.models import User

from progress.core.publisher import get_publisher
from progress.core.store import CLIENT_NAME
from progress.models import Job
from progress.protocol.layer import user_group
from progress.protocol.states import State
from tests.helpers.inprocess import awaited, state_of

pytestmark = pytest.mark.django_db


def publish(job: Job, state: State, current: float = 1, floor: int = 0) -> int | None:
    mark = get_publisher().publish(state_of(job, state, current), floor).result(5)
    return None if mark is None else mark.seq


def stored(job: Job) -> dict[str, object]:
    publisher = get_publisher()
    seq, payload, _final, _epoch = publisher.call(publisher.store.get_many([str(job.id)]))[
        str(job.id)
    ]
    data: dict[str, object] = json.loads(payload)
    assert data["seq"] == seq
    return data


def test_seq_grows_strictly_with_each_state(job: Job) -> None:
    seqs = [publish(job, State.PROGRESS, i) for i in range(1, 6)]
    assert seqs == [1, 2, 3, 4, 5]
    assert stored(job)["current"] == 5


def test_nothing_follows_a_final_state(job: Job) -> None:
    assert publish(job, State.REVOKED) == 1
    assert publish(job, State.PROGRESS, 9) is None
    assert publish(job, State.SUCCESS) is None
    assert stored(job)["state"] == "REVOKED"


def test_pending_never_follows_a_later_state(job: Job) -> None:
    publish(job, State.STARTED)
    assert publish(job, State.PENDING) is None
    assert stored(job)["state"] == "STARTED"


def test_a_floor_keeps_seq_above_what_clients_saw(job: Job) -> None:
    # As after a Redis restart: the key is gone but clients have seen seq 40.
    assert publish(job, State.PROGRESS, floor=40) == 41


def test_each_state_reaches_the_owner_group_as_one_ready_frame(job: Job) -> None:
    layer = get_channel_layer()

    async def listen() -> dict[str, object]:
        channel = await layer.new_channel()
        await layer.group_add(user_group(job.owner_id), channel)
        await asyncio.get_running_loop().run_in_executor(None, publish, job, State.STARTED)
        message: dict[str, object] = await asyncio.wait_for(layer.receive(channel), 5)
        return message

    message = asyncio.run(listen())
    assert message["type"] == "progress.job" and message["group"] == user_group(job.owner_id)
    assert message["job_id"] == str(job.id)
    assert message["seq"] == 1 and message["final"] is False
    frame = json.loads(str(message["frame"]))
    assert frame["type"] == "job" and frame["job"]["state"] == "STARTED"
    assert frame["job"]["seq"] == 1


def test_many_jobs_at_once_each_arrive_in_order_and_end_on_their_final_state(alice: User) -> None:
    """As in a thread-pool worker running many jobs: states of all jobs queue up together."""
    jobs = [Job.objects.create(owner=alice, task="demo.count") for _ in range(40)]
    layer = get_channel_layer()

    async def listen() -> list[dict[str, object]]:
        channel = await layer.new_channel()
        await layer.group_add(user_group(alice.pk), channel)
        publisher = get_publisher()
        futures = []
        for job in jobs:
            futures.append(publisher.publish(state_of(job, State.STARTED)))
            futures.append(publisher.publish(state_of(job, State.PROGRESS, 5)))
            futures.append(publisher.publish(state_of(job, State.SUCCESS, 10)))
        await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        messages, finals = [], 0
        while finals < len(jobs):
            messages.append(await asyncio.wait_for(layer.receive(channel), 5))
            finals += bool(messages[-1]["final"])
        return messages

    seqs: dict[str, list[int]] = {}
    for message in asyncio.run(listen()):
        seqs.setdefault(str(message["job_id"]), []).append(int(str(message["seq"])))
        if message["final"]:
            assert json.loads(str(message["frame"]))["job"]["state"] == "SUCCESS"
    # Each job: STARTED, then SUCCESS; the PROGRESS between them was superseded in the queue
    # or sent in order.
    assert len(seqs) == len(jobs)
    for job_seqs in seqs.values():
        assert job_seqs == sorted(job_seqs) and len(set(job_seqs)) == len(job_seqs)
    assert all(stored(job)["state"] == "SUCCESS" for job in jobs)


def test_a_batch_is_numbered_even_after_redis_forgot_the_script(alice: User) -> None:
    """As after a Redis restart: the numbering script must be loaded again, once."""
    first, second = (Job.objects.create(owner=alice, task="demo.count") for _ in range(2))
    store = get_publisher().store
    get_publisher().call(awaited(store.redis.script_flush()))
    saved = get_publisher().call(
        store.save_many(
            [(state_of(first, State.STARTED), 0, 0), (state_of(second, State.STARTED), 0, 0)]
        )
    )
    assert [row[0] if row else None for row in saved] == [1, 1]
    assert stored(first)["state"] == stored(second)["state"] == "STARTED"


def test_the_store_outlives_connections_redis_dropped(job: Job) -> None:
    """As after a Redis restart: every pooled connection is dead, and the next calls work."""
    publisher = get_publisher()
    store = publisher.store
    publisher.call(store.get_many([str(job.id)]))  # The pool holds a live connection.
    killer = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        ours = [c["id"] for c in killer.client_list() if c["name"] == CLIENT_NAME]
        assert ours
        for client_id in ours:
            killer.client_kill_filter(_id=client_id)
    finally:
        killer.close()
    assert publisher.call(store.save(state_of(job, State.STARTED))) is not None
    assert publisher.call(store.epoch())
