"""The only bridge from sync code to the async channel layer: one event-loop thread per process.

A Celery worker child, or a web process, starts the thread on first use (after
fork, never before) and keeps it, with one Redis client and the channel layer's
connection pool, for its lifetime. Sync callers hand states over without
waiting; one drain coroutine numbers and sends them in order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from channels.layers import get_channel_layer

from .conf import progress_settings
from .events import (
    LAYER_JOB_MESSAGE,
    JobState,
    LayerJobMessage,
    State,
    job_frame,
    user_group,
)
from .store import StateStore

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Group sends of different jobs that may be in flight at once.
SENDS_IN_FLIGHT = 16


@dataclass(slots=True)
class _Outgoing:
    state: JobState
    floor: int
    future: concurrent.futures.Future[int | None] = field(default_factory=concurrent.futures.Future)


class Publisher:
    """Numbers each new job state in Redis and sends it to the owner's and the job's groups."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._queue: asyncio.Queue[_Outgoing] | None = None
        self._store: StateStore | None = None
        # Bounds the group sends in flight: redis-py's pool raises past its size.
        self._sending = asyncio.Semaphore(SENDS_IN_FLIGHT)

    @property
    def store(self) -> StateStore:
        """The state store; its coroutines must run through submit(), call() or acall()."""
        self._ensure_loop()
        assert self._store is not None
        return self._store

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None:
            return loop
        with self._lock:
            if self._loop is None:
                if not progress_settings.REDIS_URL:
                    raise RuntimeError("PROGRESS['REDIS_URL'] is not set.")
                self._store = StateStore(progress_settings.REDIS_URL, progress_settings.STATE_TTL)
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(loop, ready), name="progress-publisher", daemon=True
                )
                self._thread.start()
                ready.wait()
                self._loop = loop
        assert self._loop is not None
        return self._loop

    def _run(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        """Runs in the publisher thread for the life of the process."""
        asyncio.set_event_loop(loop)
        self._queue = asyncio.Queue()
        loop.create_task(self._drain())
        loop.call_soon(ready.set)
        loop.run_forever()

    # Bridges for callers outside the loop.

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedules a coroutine on the publisher's loop, from any thread."""
        return asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Runs a coroutine on the publisher's loop and waits for it, from sync code."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("Publisher.call() would deadlock on the publisher's own thread.")
        return self.submit(coro).result(timeout)

    async def acall(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs a coroutine on the publisher's loop and awaits it from another loop."""
        return await asyncio.wrap_future(self.submit(coro))

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Runs a callback on the publisher's thread after `delay` seconds."""
        loop = self._ensure_loop()
        loop.call_soon_threadsafe(loop.call_later, delay, callback)

    def publish(self, state: JobState, floor: int = 0) -> concurrent.futures.Future[int | None]:
        """Queues a state; the future gives its seq, or None if the job had already ended."""
        loop = self._ensure_loop()
        item = _Outgoing(state, floor)
        loop.call_soon_threadsafe(self._enqueue, item)
        return item.future

    def _enqueue(self, item: _Outgoing) -> None:
        assert self._queue is not None
        self._queue.put_nowait(item)

    # The drain, on the publisher's loop.

    async def _drain(self) -> None:
        """Runs forever: sends what is queued, a batch at a time, skipping superseded progress."""
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            last = {item.state.id: index for index, item in enumerate(batch)}
            sending = []
            for index, item in enumerate(batch):
                if item.state.state is State.PROGRESS and last[item.state.id] != index:
                    item.future.set_result(None)
                else:
                    sending.append(item)
            try:
                await self._send_batch(sending)
            except Exception as exc:  # The drain must outlive any one failure.
                logger.warning("Could not publish %d states: %r", len(sending), exc)
                for item in sending:
                    if not item.future.done():
                        item.future.set_exception(exc)

    async def _send_batch(self, items: list[_Outgoing]) -> None:
        """Numbers the batch in one round trip, then sends each job's states in order.

        With many jobs running in one worker (a thread pool), a state at a time
        would cap the process at a few hundred states per second.
        """
        assert self._store is not None
        saved = await self._store.save_many([(item.state, item.floor) for item in items])
        layer = get_channel_layer()
        if layer is None:
            raise RuntimeError("No channel layer is configured.")
        per_job: dict[str, list[tuple[_Outgoing, tuple[int, str] | None]]] = {}
        for item, numbered in zip(items, saved, strict=True):
            per_job.setdefault(item.state.id, []).append((item, numbered))
        await asyncio.gather(*(self._send_job(layer, chain) for chain in per_job.values()))

    async def _send_job(
        self, layer: Any, chain: list[tuple[_Outgoing, tuple[int, str] | None]]
    ) -> None:
        for item, numbered in chain:
            if numbered is None:  # The job had already ended.
                item.future.set_result(None)
                continue
            seq, job_json = numbered
            # One group per state: sockets watching someone else's job listen on the owner's
            # group through their hub and keep only that job (fanout.OneJob).
            group = user_group(item.state.owner_id)
            message = self._message(group, item.state, seq, job_frame(job_json))
            try:
                async with self._sending:
                    await layer.group_send(group, message)
            except Exception as exc:
                logger.warning("Could not send job %s: %r", item.state.id, exc)
                item.future.set_exception(exc)
            else:
                item.future.set_result(seq)

    @staticmethod
    def _message(group: str, state: JobState, seq: int, frame: str) -> LayerJobMessage:
        return {
            "type": LAYER_JOB_MESSAGE,
            "group": group,
            "job_id": state.id,
            "seq": seq,
            "final": state.is_final,
            "frame": frame,
        }


_publisher: Publisher | None = None
_publisher_lock = threading.Lock()


def get_publisher() -> Publisher:
    """This process's publisher, created on first use."""
    global _publisher
    if _publisher is None:
        with _publisher_lock:
            if _publisher is None:
                _publisher = Publisher()
    return _publisher


def _forget_after_fork() -> None:
    """Runs in a forked child: the parent's thread and connections did not come along."""
    global _publisher, _publisher_lock
    _publisher = None
    _publisher_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
