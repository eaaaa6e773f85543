"""The per-process hub and the per-socket outbox, on a real channels-redis layer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from typing import Any

import pytest
from channels.layers import get_channel_layer
from channels.testing.websocket import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import override_settings
from prometheus_client import REGISTRY

from progress.core.keys import sockets_key
from progress.core.publisher import get_publisher
from progress.middleware import DirectSendMiddleware
from progress.models import Job
from progress.protocol.frames import CloseCode, job_frame
from progress.protocol.layer import LAYER_JOB_MESSAGE, user_group
from progress.protocol.states import Mark, State
from progress.web.aio import run_eagerly
from progress.web.hub import get_hub
from progress.web.outbox import Outbox
from tests.helpers.inprocess import app, awaited, connect, frame, generator, publish, state_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


class Socket:
    """An ASGI send callable that records frames and can be made to block like a slow client."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.writable = asyncio.Event()
        self.writable.set()
        self.waits = 0

    async def send(self, message: dict[str, Any]) -> None:
        if not self.writable.is_set():
            self.waits += 1
            await self.writable.wait()
        self.frames.append(message["text"])

    @property
    def seqs(self) -> list[int]:
        return [json.loads(f)["job"]["seq"] for f in self.frames]


def mark(seq: int) -> Mark:
    return Mark("e1", seq)


def frame_of(seq: int, job_id: str = "j1", state: str = "PROGRESS") -> str:
    return job_frame(json.dumps({"id": job_id, "seq": seq, "state": state}))


async def test_an_outbox_holds_frames_until_the_snapshot_is_out_and_skips_what_it_showed() -> None:
    socket = Socket()
    outbox = Outbox(socket.send)
    outbox.offer("j1", mark(3), frame_of(3))
    outbox.offer("j2", mark(1), frame_of(1, "j2"))
    assert socket.frames == []
    outbox.resume({"j1": mark(3)})
    assert [json.loads(f)["job"]["id"] for f in socket.frames] == ["j2"]
    outbox.offer("j1", mark(2), frame_of(2))
    outbox.offer("j1", mark(4), frame_of(4))
    assert socket.seqs == [1, 4]


async def test_a_socket_that_keeps_up_gets_every_state_without_a_task_per_frame() -> None:
    socket = Socket()
    outbox = Outbox(socket.send)
    outbox.resume({})
    before = len(asyncio.all_tasks())
    for seq in range(1, 201):
        outbox.offer("j1", mark(seq), frame_of(seq))
    assert socket.seqs == list(range(1, 201))
    assert len(asyncio.all_tasks()) == before


async def test_a_slow_socket_blocks_nobody_and_catches_up_on_the_latest_and_final_state() -> None:
    slow, fast = Socket(), Socket()
    slow_box, fast_box = Outbox(slow.send), Outbox(fast.send)
    slow_box.resume({})
    fast_box.resume({})
    slow.writable.clear()
    for seq in range(1, 101):
        slow_box.offer("j1", mark(seq), frame_of(seq))
        fast_box.offer("j1", mark(seq), frame_of(seq))
    slow_box.offer("j1", mark(101), frame_of(101, state="SUCCESS"))
    fast_box.offer("j1", mark(101), frame_of(101, state="SUCCESS"))
    assert fast.seqs == list(range(1, 102))
    assert slow.frames == [] and slow.waits == 1
    slow.writable.set()
    await asyncio.wait_for(_until(lambda: len(slow.frames) == 2), 5)
    # The frame already being written, then only the newest: the final state.
    assert slow.seqs == [1, 101]
    assert json.loads(slow.frames[-1])["job"]["state"] == "SUCCESS"


async def test_a_write_to_a_closed_socket_closes_the_outbox_quietly() -> None:
    async def gone(message: dict[str, Any]) -> None:
        raise ConnectionResetError("client went away")

    outbox = Outbox(gone)
    outbox.resume({})
    outbox.offer("j1", mark(1), frame_of(1))
    assert outbox.closed
    outbox.offer("j1", mark(2), frame_of(2))  # Dropped, and raises nothing.


async def test_run_eagerly_finishes_a_coroutine_that_waits_as_a_task() -> None:
    gate = asyncio.Event()
    steps: list[str] = []

    async def work() -> None:
        steps.append("before")
        await gate.wait()
        await asyncio.sleep(0)
        steps.append("after")

    run_eagerly(work())
    assert steps == ["before"]
    gate.set()
    await asyncio.wait_for(_until(lambda: steps == ["before", "after"]), 5)


async def test_many_sockets_of_a_user_share_one_group_member_in_redis(
    alice: User, job: Job
) -> None:
    sockets = [await connect(alice) for _ in range(3)]
    for socket in sockets:
        assert (await frame(socket))["type"] == "snapshot"
    layer = get_channel_layer()
    hub = await get_hub()
    assert hub.listeners(user_group(alice.pk)) == 3
    members = await get_publisher().acall(
        awaited(get_publisher().store.redis.zrange(layer._group_key(user_group(alice.pk)), 0, -1))
    )
    assert members == [hub.channel]
    await publish(job, State.PROGRESS, 7)
    for socket in sockets:
        update = await frame(socket)
        assert update["job"]["current"] == 7
    for socket in sockets:
        await socket.disconnect()
    assert user_group(alice.pk) not in hub.groups


async def test_the_hub_ignores_foreign_and_malformed_messages(alice: User, job: Job) -> None:
    socket = await connect(alice)
    await frame(socket)
    hub = await get_hub()
    hub.dispatch({"type": "chat.message", "text": "hi"})
    hub.dispatch({"type": LAYER_JOB_MESSAGE, "group": user_group(alice.pk)})
    await publish(job, State.PROGRESS, 3)
    assert (await frame(socket))["job"]["current"] == 3
    await socket.disconnect()


async def test_an_sse_stream_and_a_socket_share_the_hub(alice: User, job: Job) -> None:
    from progress.web.sse import job_events

    socket = await connect(alice)
    await frame(socket)
    events = generator(job_events(job))
    first = await asyncio.wait_for(anext(events), 5)
    # The row's state, never numbered yet: no epoch, seq 0 (the id is `<epoch>:<seq>`).
    assert first.startswith("id: :0\n")
    await publish(job, State.STARTED)
    await asyncio.wait_for(anext(events), 5)
    await asyncio.wait_for(
        asyncio.get_running_loop().run_in_executor(
            None, lambda: get_publisher().publish(state_of(job, State.SUCCESS, 10)).result(5)
        ),
        10,
    )
    last = await asyncio.wait_for(anext(events), 5)
    assert '"state":"SUCCESS"' in last
    await events.aclose()
    assert (await frame(socket))["job"]["state"] == "STARTED"
    assert (await frame(socket))["job"]["state"] == "SUCCESS"
    await socket.disconnect()


async def test_job_frames_bypass_the_middleware_send_when_the_stack_allows(
    alice: User, job: Job
) -> None:
    wrapped: list[str] = []

    def counting(inner: Any) -> Any:
        """Stands in for the session middleware, which wraps send for every frame."""

        async def app(scope: Any, receive: Any, send: Any) -> Any:
            async def counted(message: dict[str, Any]) -> None:
                wrapped.append(message["type"])
                await send(message)

            return await inner(scope, receive, counted)

        return app

    communicator = WebsocketCommunicator(DirectSendMiddleware(counting(app)), "/ws/progress/")
    communicator.scope["user"] = alice
    assert (await communicator.connect(timeout=5))[0]
    assert (await frame(communicator))["type"] == "snapshot"
    await publish(job, State.PROGRESS, 4)
    assert (await frame(communicator))["job"]["current"] == 4
    assert wrapped == ["websocket.accept", "websocket.send"]  # The snapshot only.
    await communicator.disconnect()


async def test_sockets_closing_together_all_free_their_places(alice: User) -> None:
    limit = {"REDIS_URL": os.environ["REDIS_URL"], "MAX_SOCKETS": 30}
    with override_settings(PROGRESS=limit):
        sockets = [await connect(alice) for _ in range(30)]
        for socket in sockets:
            await frame(socket)
        publisher = get_publisher()
        counted = awaited(publisher.store.redis.zcard(sockets_key(alice.pk)))
        assert await publisher.acall(counted) == 30
        await asyncio.gather(*(socket.disconnect() for socket in sockets))
        assert (
            await publisher.acall(awaited(publisher.store.redis.zcard(sockets_key(alice.pk)))) == 0
        )
        again = await connect(alice)
        assert (await frame(again))["type"] == "snapshot"
        await again.disconnect()


async def test_a_socket_outlives_the_layers_group_expiry(alice: User, job: Job) -> None:
    """channels-redis expires group members after group_expiry; the hub's beat re-adds them."""
    layer = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ["REDIS_URL"]], "group_expiry": 2},
        }
    }
    progress = {"REDIS_URL": os.environ["REDIS_URL"], "HEARTBEAT": 0.5}
    with override_settings(CHANNEL_LAYERS=layer, PROGRESS=progress):
        socket = await connect(alice)
        await frame(socket)
        hub = await get_hub()
        key = get_channel_layer()._group_key(user_group(alice.pk))
        publisher = get_publisher()

        async def renewed_after(moment: float) -> None:
            while True:
                score = await publisher.acall(
                    awaited(publisher.store.redis.zscore(key, hub.channel))
                )
                if score is not None and score >= moment:
                    return
                await asyncio.sleep(0.1)

        # Renewed once more after the first membership would have expired.
        await asyncio.wait_for(renewed_after(time.time() + 2.5), 10)
        await publish(job, State.PROGRESS, 6)
        assert (await frame(socket))["job"]["current"] == 6
        await socket.disconnect()


PUBSUB_LAYER = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [os.environ["REDIS_URL"]]},
    }
}


async def test_on_the_pubsub_layer_the_hub_comes_back_after_its_last_socket_left(
    alice: User, job: Job
) -> None:
    """The pub/sub layer drops a channel whose receive is cancelled, as the idle hub's is."""
    with override_settings(CHANNEL_LAYERS=PUBSUB_LAYER):
        for current in (1, 2):
            socket = await connect(alice)
            assert (await frame(socket))["type"] == "snapshot"
            await publish(job, State.PROGRESS, current)
            assert (await frame(socket))["job"]["current"] == current
            await socket.disconnect()


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.01)


def quick(**values: float) -> override_settings:
    return override_settings(PROGRESS={"REDIS_URL": os.environ["REDIS_URL"], **values})


async def test_the_hub_passes_on_a_state_the_layer_never_delivered(alice: User, job: Job) -> None:
    """As when channels-redis drops a message to a full channel: Redis has the state, the
    hub never heard of it, and the reconcile chore finds it."""
    with quick(RECONCILE_INTERVAL=0.2):
        socket = await connect(alice)
        assert (await frame(socket))["type"] == "snapshot"
        publisher = get_publisher()
        reconciled = value("progress_hub_reconciled_total")
        # Numbered and stored like any state, but never sent to the group.
        await publisher.acall(publisher.store.save(state_of(job, State.SUCCESS, 10)))
        caught_up = await frame(socket)
        assert caught_up["job"]["state"] == "SUCCESS" and caught_up["job"]["current"] == 10
        assert value("progress_hub_reconciled_total") == reconciled + 1
        await socket.disconnect()


async def test_after_redis_loses_its_data_the_hub_rejoins_its_groups_and_resyncs(
    alice: User, job: Job
) -> None:
    """A flush, like a restart without persistence, takes the group memberships and socket
    counts with it; the hub sees the epoch change, joins again and re-sends what it missed."""
    with quick(RECONCILE_INTERVAL=0.2):
        socket = await connect(alice)
        assert (await frame(socket))["type"] == "snapshot"
        recoveries = value("progress_hub_recoveries_total")
        publisher = get_publisher()
        await publisher.acall(awaited(publisher.store.redis.flushdb()))
        # Published while the group is gone: only the resync can bring it.
        await publish(job, State.PROGRESS, 3)
        assert (await frame(socket))["job"]["current"] == 3
        assert value("progress_hub_recoveries_total") == recoveries + 1
        # The group is joined again: the next state comes the usual way.
        await publish(job, State.PROGRESS, 4)
        assert (await frame(socket))["job"]["current"] == 4
        counted = await publisher.acall(awaited(publisher.store.redis.zcard(sockets_key(alice.pk))))
        assert counted == 1
        await socket.disconnect()


async def test_a_shutdown_closes_every_socket_with_1001(alice: User, bob: User) -> None:
    sockets = [await connect(alice), await connect(bob)]
    for socket in sockets:
        await frame(socket)
    hub = await get_hub()
    assert await hub.presence.close_all(CloseCode.GOING_AWAY) == 2
    for socket in sockets:
        assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 1001}
        await socket.disconnect()


class LayerThatFailsWhenCancelled:
    """Mocked because a real layer does it only by chance: a cancelled receive whose clean-up
    meets a closed connection raises the connection's error instead of CancelledError."""

    async def receive(self, channel: str) -> dict[str, Any]:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise ConnectionError("Connection closed by server.") from None
        raise AssertionError("unreachable")


@pytest.mark.asyncio
async def test_the_hubs_reader_ends_when_cancelled_even_if_the_layer_raises_another_error() -> None:
    from progress.web.hub import Hub

    hub = Hub(LayerThatFailsWhenCancelled(), "specific.test!one")
    reader = asyncio.ensure_future(hub._read())
    await asyncio.sleep(0)
    reader.cancel()
    # A reader that retried the receive would outlive the cancel: a server's shutdown, or a
    # test's event loop, would then wait on it for ever.
    await asyncio.wait({reader}, timeout=2)
    assert reader.cancelled()


@pytest.mark.asyncio
async def test_a_cancelled_reader_ends_on_the_real_layer_wherever_the_cancel_lands() -> None:
    """Python 3.11's wait_for, which redis-py wraps each send in, drops a cancel that lands as
    the send completes; channels-redis' receive then reads on until a message comes, and a
    server's shutdown (or a test's event loop) waits on the hub for ever. Before the fix,
    about one cancel in twenty at a random moment was lost."""
    from progress.web.hub import Hub

    layer = get_channel_layer()
    stuck = 0
    for _ in range(100):
        hub = Hub(layer, await layer.new_channel())
        reader = asyncio.ensure_future(hub._read())
        await asyncio.sleep(random.random() / 100)
        reader.cancel()
        done, _pending = await asyncio.wait({reader}, timeout=2)
        if not done:
            stuck += 1
            reader.cancel()
            await asyncio.wait({reader}, timeout=7)
    assert stuck == 0


class LayerThatSwallowsACancel:
    """Mocked to make the race above certain: the first cancel is lost, as 3.11's wait_for
    loses it, and the receive waits on."""

    def __init__(self) -> None:
        self.cancels = 0

    async def receive(self, channel: str) -> dict[str, Any]:
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancels += 1
                if self.cancels > 1:
                    raise


@pytest.mark.asyncio
async def test_the_hubs_reader_ends_when_its_receive_swallows_the_cancel() -> None:
    from progress.web.hub import Hub

    layer = LayerThatSwallowsACancel()
    reader = asyncio.ensure_future(Hub(layer, "specific.test!one")._read())
    await asyncio.sleep(0.01)
    reader.cancel()
    await asyncio.wait({reader}, timeout=2)
    assert reader.cancelled() and layer.cancels == 2


@pytest.mark.asyncio
async def test_the_hubs_chores_end_when_a_chore_swallows_the_cancel() -> None:
    from progress.web.hub import Hub

    calls = 0

    async def reconcile() -> None:
        nonlocal calls
        calls += 1
        # Lost, as a Redis call loses it when 3.11's wait_for drops the cancel.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)

    hub = Hub(LayerThatSwallowsACancel(), "specific.test!one")
    hub._reconcile = reconcile  # type: ignore[method-assign]
    with quick(RECONCILE_INTERVAL=0.01):
        maintainer = asyncio.ensure_future(hub._maintain())
        while not calls:
            await asyncio.sleep(0.01)
        maintainer.cancel()
        await asyncio.wait({maintainer}, timeout=2)
    assert maintainer.cancelled() and calls == 1


def value(name: str) -> float:
    """A counter of this process's metrics registry, as /metrics/ would serve it."""
    return REGISTRY.get_sample_value(name) or 0.0
