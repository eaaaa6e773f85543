"""What the in-process tests share: states to publish, and a consumer driven by channels.testing."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Any, TypeVar

from channels.routing import URLRouter
from channels.testing.websocket import WebsocketCommunicator
from hypothesis import HealthCheck, settings

from progress.core.publisher import get_publisher
from progress.models import Job
from progress.protocol.states import JobState, State
from progress.routing import websocket_urlpatterns

T = TypeVar("T")


def state_of(job: Job, state: State = State.PROGRESS, current: float = 1) -> JobState:
    base = job.to_state()
    base.state = state
    base.current = current
    base.total = 10
    base.ts = time.time()
    return base


app = URLRouter(websocket_urlpatterns)


async def connect(user: Any, to: Any = app, path: str = "/ws/progress/") -> WebsocketCommunicator:
    """A socket of `user`'s, connected to the service's routing or to the ASGI app `to`."""
    communicator = WebsocketCommunicator(to, path)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator


async def frame(communicator: WebsocketCommunicator) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(await communicator.receive_from(timeout=5))
    return data


async def publish(job: Job, state: State, current: float = 1) -> int | None:
    mark = await asyncio.wrap_future(get_publisher().publish(state_of(job, state, current)))
    return None if mark is None else mark.seq


async def send(communicator: WebsocketCommunicator, payload: Any) -> dict[str, Any]:
    await communicator.send_to(text_data=json.dumps(payload))
    return await frame(communicator)


async def awaited(awaitable: Awaitable[T]) -> T:
    """`awaitable` as the coroutine Publisher.call() and acall() take: redis-py types its
    asyncio commands as returning an Awaitable."""
    return await awaitable


def generator(iterator: AsyncIterator[T]) -> AsyncGenerator[T]:
    """`iterator` as the async generator it is, for aclose() and contextlib.aclosing():
    progress's streams are async generators declared as AsyncIterator."""
    assert isinstance(iterator, AsyncGenerator), iterator
    return iterator


# Fixtures (a user, a job) are shared by every example of a test: nothing here changes them
# in a way the next example would notice. FUZZ_EXAMPLES=1000 makes a longer run.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
