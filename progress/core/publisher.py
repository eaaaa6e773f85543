"""The only bridge from sync code to Redis and the layer: one loop thread. Any process.

A Celery worker child, or a web process, starts the thread on first use (after
fork, never before) and keeps it, with one Redis client and the channel layer's
connection pool, for its lifetime. Sync callers hand states over without
waiting; one drain coroutine numbers and sends them in order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from channels.layers import get_channel_layer

from progress.conf import progress_settings
from progress.core import metrics
from progress.core.leases import Leases
from progress.core.outage import REDIS_UNAVAILABLE, retry_delay
from progress.core.outgoing import Outgoing, coalesce
from progress.core.store import GroupSum, Latest, StateStore
from progress.jsonlog import about
from progress.protocol.frames import job_frame, log_frame
from progress.protocol.layer import (
    LAYER_SESSION_ENDED,
    LayerSessionEnded,
    job_message,
    log_message,
    user_group,
)
from progress.protocol.parts import group_progress
from progress.protocol.states import JobState, Mark

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Group sends of different jobs that may be in flight at once.
SENDS_IN_FLIGHT = 16


# A batch of log lines on its way: job id, owner id, lines, and a future done once sent.
_LogBatch = tuple[str, int, list[str], concurrent.futures.Future[None]]


class Publisher:
    """Numbers each new job state in Redis and sends it to the owner's group.

    States Redis cannot take (it is restarting) are kept, newest progress per
    job and every change of state, and retried in order until it is back.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._queue: asyncio.Queue[Outgoing] | None = None
        # Batches of log lines, as (job id, owner id, lines), sent in order by one coroutine.
        self._log_queue: asyncio.Queue[_LogBatch] | None = None
        self._store: StateStore | None = None
        # Bounds the group sends in flight: redis-py's pool raises past its size.
        self._sending = asyncio.Semaphore(SENDS_IN_FLIGHT)
        # The leases of the jobs this process runs (progress.core.leases).
        self.leases = Leases(self)

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
        self._log_queue = asyncio.Queue()
        loop.create_task(self._drain())
        loop.create_task(self._drain_logs())
        loop.create_task(self.leases.renew_forever())
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

    def call_soon(self, callback: Callable[..., None], *args: Any) -> None:
        """Runs a callback on the publisher's thread, from any thread."""
        self._ensure_loop().call_soon_threadsafe(callback, *args)

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Runs a callback on the publisher's thread after `delay` seconds."""
        loop = self._ensure_loop()
        loop.call_soon_threadsafe(loop.call_later, delay, callback)

    def publish(self, state: JobState, floor: int = 0) -> concurrent.futures.Future[Mark | None]:
        """Queues a state; the future gives its mark (epoch and seq), None if the job had
        already ended, or
        raises PublishDeferred if Redis could not take it yet (it is still retried)."""
        loop = self._ensure_loop()
        item = Outgoing(state, floor)
        loop.call_soon_threadsafe(self._enqueue, item)
        return item.future

    def number(self, state: JobState, floor: int = 0, timeout: float = 10.0) -> Latest | None:
        """Numbers a state in Redis without sending it, waiting for it (and adds a part's to
        its group's sum); None if the job had already ended. send() sends it later: a final
        state reaches browsers only once the job_finished receivers ran (machine)."""
        return self.call(self._number(state, floor), timeout)

    async def _number(self, state: JobState, floor: int) -> Latest | None:
        assert self._store is not None
        numbered = await self._store.save(state, floor)
        if numbered is not None and state.parent:
            await self._add_to_groups([state])
        return numbered

    def send(self, state: JobState, numbered: Latest) -> concurrent.futures.Future[Mark | None]:
        """Queues a state number() numbered, to be sent after the job's states queued before."""
        loop = self._ensure_loop()
        item = Outgoing(state, 0, numbered=numbered)
        loop.call_soon_threadsafe(self._enqueue, item)
        return item.future

    def publish_log(
        self, job_id: str, owner_id: int, lines: list[str]
    ) -> concurrent.futures.Future[None]:
        """Queues a batch of a job's log lines (each the JSON of {"ts", "level", "text"}; the
        store numbers them n); the future is done once the batch is kept and sent, or given
        up."""
        loop = self._ensure_loop()
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        loop.call_soon_threadsafe(self._enqueue_log, (job_id, owner_id, lines, done))
        return done

    def _enqueue_log(self, batch: _LogBatch) -> None:
        assert self._log_queue is not None
        self._log_queue.put_nowait(batch)

    async def _drain_logs(self) -> None:
        """Runs forever: numbers each batch of log lines in Redis, then sends it to the owner's
        group. Lines Redis cannot take are dropped with a warning: logs are best-effort."""
        assert self._log_queue is not None
        while True:
            job_id, owner_id, lines, done = await self._log_queue.get()
            try:
                assert self._store is not None
                numbered = await self._store.append_log(
                    job_id, lines, int(progress_settings.LOG_LINES)
                )
                group = user_group(owner_id)
                last = int(json.loads(numbered[-1])["n"])
                message = log_message(group, job_id, last, log_frame(job_id, numbered))
                async with self._sending:
                    await _layer().group_send(group, message)
                metrics.PUBLISHED_LOG.inc()
            except Exception as exc:  # The drain must outlive any one failure.
                logger.warning(
                    "Could not publish %d log lines of job %s: %r",
                    len(lines),
                    job_id,
                    exc,
                    extra=about(job_id, owner_id),
                )
            finally:
                done.set_result(None)

    def end_session(self, user_id: int, digest: str) -> concurrent.futures.Future[None]:
        """Tells every web process to close the user's sockets of that session ("" for all)."""
        group = user_group(user_id)
        message: LayerSessionEnded = {
            "type": LAYER_SESSION_ENDED,
            "group": group,
            "session": digest,
        }
        return self.submit(_layer().group_send(group, message))

    def _enqueue(self, item: Outgoing) -> None:
        assert self._queue is not None
        self._queue.put_nowait(item)

    # The drain, on the publisher's loop.

    async def _drain(self) -> None:
        """Runs forever: sends what is queued, a batch at a time, retrying what Redis refused."""
        assert self._queue is not None
        retrying: list[Outgoing] = []
        failures = 0
        while True:
            if retrying:
                await asyncio.sleep(retry_delay(failures))
                batch = retrying
            else:
                batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                retrying = await self._send_batch(coalesce(batch))
            except Exception as exc:  # The drain must outlive any one failure.
                logger.exception("Could not publish %d states", len(batch))
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                retrying = []
            failures = failures + 1 if retrying else 0

    async def _send_batch(self, items: list[Outgoing]) -> list[Outgoing]:
        """Numbers the batch in one round trip, then sends each job's states in order.

        Returns the states to try again. With many jobs running in one worker
        (a thread pool), a state at a time would cap the process at a few
        hundred states per second.
        """
        assert self._store is not None
        fresh = [item for item in items if item.numbered is None]
        if fresh:
            try:
                saved = await self._store.save_many(
                    [(item.state, item.floor, item.version) for item in fresh]
                )
                for item, numbered in zip(fresh, saved, strict=True):
                    item.numbered = numbered if numbered is not None else await self._refused(item)
            except REDIS_UNAVAILABLE as exc:
                return self._keep(items, exc, "number")
            # Before the parts' states go out, so a part's final state is in its group's sum
            # by the time whoever committed it asks whether the group has ended.
            await self._add_to_groups([i.state for i in fresh if i.numbered and i.state.parent])
        per_job: dict[str, list[Outgoing]] = {}
        for item in items:
            if item.numbered is not None:  # None: the job had already ended.
                per_job.setdefault(item.state.id, []).append(item)
        layer = _layer()
        kept = await asyncio.gather(*(self._send_job(layer, chain) for chain in per_job.values()))
        return [item for chain in kept for item in chain]

    async def _add_to_groups(self, parts: list[JobState]) -> None:
        """Adds new states of parts to their groups' sums, and queues each group's newest sum
        as a state of the group job. A failure costs only those sums: the next one catches up."""
        if not parts:
            return
        assert self._store is not None
        try:
            sums = await self._store.add_to_groups(parts)
        except REDIS_UNAVAILABLE as exc:
            logger.warning("Could not add %d part states to their groups: %r", len(parts), exc)
            return
        newest: dict[str, tuple[JobState, GroupSum]] = {}
        for part, total in zip(parts, sums, strict=True):
            if total is not None and part.parent is not None:
                newest[part.parent] = (part, total)
        now = time.time()
        for part, total in newest.values():
            group = JobState.from_dict(json.loads(total.json), part.owner_id)
            group_progress(group, total, now)
            self._enqueue(Outgoing(group, 0, version=total.version))

    async def _refused(self, item: Outgoing) -> Latest | None:
        """Runs when Redis refuses a state: the job has ended, or Redis saved this very state
        before the connection dropped on a former try; then the stored final state goes out."""
        if item.give_up_at and item.state.is_final:
            assert self._store is not None
            latest = (await self._store.get_many([item.state.id])).get(item.state.id)
            if latest is not None and latest.final:
                return latest
        item.resolve(None)
        return None

    async def _send_job(self, layer: Any, chain: list[Outgoing]) -> list[Outgoing]:
        """Sends one job's states in order; returns the ones to try again, from the first
        that failed, so the job's order holds."""
        for index, item in enumerate(chain):
            numbered = item.numbered
            assert numbered is not None
            # One group per state: sockets watching someone else's job listen on the owner's
            # group through their hub and keep only that job (progress.web.outbox.OneJob).
            group = user_group(item.state.owner_id)
            frame = job_frame(numbered.json)
            message = job_message(
                group, item.state.id, numbered.mark, item.state.is_final, frame, ts=item.state.ts
            )
            try:
                async with self._sending:
                    await layer.group_send(group, message)
            except REDIS_UNAVAILABLE as exc:
                return self._keep(chain[index:], exc, "send")
            metrics.PUBLISHED_JOB.inc()
            item.resolve(numbered.mark)
        return []

    def _keep(self, items: list[Outgoing], exc: BaseException, step: str) -> list[Outgoing]:
        """The items still worth retrying after a failure; the others fail for good."""
        now = time.monotonic()
        kept = []
        for item in items:
            if not item.give_up_at:
                item.give_up_at = now + float(progress_settings.PUBLISH_RETRY_FOR)
                item.defer(exc)
            if now < item.give_up_at:
                kept.append(item)
            else:
                logger.error(
                    "Gave up publishing %s of job %s",
                    item.state.state,
                    item.state.id,
                    extra=about(item.state.id, item.state.owner_id),
                )
        logger.warning("Could not %s %d states, retrying: %r", step, len(kept), exc)
        return kept


def _layer() -> Any:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("No channel layer is configured.")
    return layer


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
