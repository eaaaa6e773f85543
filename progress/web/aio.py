"""asyncio helpers for a web process's event loop: eager sends, background tasks, cancels that land.

Web processes only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)


def cancelling() -> bool:
    """True once the running task was asked to stop, even if a step swallowed the cancel."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


# How long a cancelled receive gets to end before it is cancelled again.
RECANCEL_AFTER = 0.1


async def cancel_until_done(task: asyncio.Future[Any]) -> None:
    """Cancels `task` until it has ended; runs when the hub's reader is cancelled.

    redis-py sends every command through asyncio.wait_for() (its socket timeout),
    and Python 3.11's wait_for drops a cancel that lands just as the send completes
    (python/cpython#86296, fixed in 3.12; seen as redis/redis-py#2028). channels-redis'
    receive then reads on, blocking 5 s at a time, until a message comes: a server's
    shutdown, or a test's event loop, would wait on it for ever. On a loaded machine
    one cancel in four to twenty was lost; a second cancel lands where the first did not.
    """
    while not task.done():
        task.cancel()
        # Asked again to stop meanwhile: the caller raises CancelledError all the same.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task}, timeout=RECANCEL_AFTER)
    if not task.cancelled():
        # Read, so that asyncio does not log it: the hub is stopping, whatever it was.
        task.exception()


def alive(task: asyncio.Task[None] | None) -> bool:
    return task is not None and not task.done() and not task.cancelling()


_finishing: set[asyncio.Task[None]] = set()


def background(coro: Coroutine[Any, Any, None]) -> None:
    """Runs `coro` as a task that is kept alive until it ends."""
    task = asyncio.ensure_future(coro)
    _finishing.add(task)
    task.add_done_callback(_finishing.discard)


def run_eagerly(coro: Coroutine[Any, Any, None]) -> None:
    """Runs `coro` now, in the caller, and hands it to a task only if it has to wait.

    A send to a socket that keeps up completes without waiting, so a fan-out to
    a thousand sockets creates no task at all. (Python 3.12's eager tasks do
    this; this project runs on 3.11.)
    """
    try:
        blocker = coro.send(None)
    except StopIteration:
        return
    task = asyncio.ensure_future(_finish(coro, blocker))
    _finishing.add(task)
    task.add_done_callback(_finishing.discard)


async def _finish(coro: Coroutine[Any, Any, None], blocker: Any) -> None:
    """Steps a coroutine that run_eagerly() started, as a task would, after each wait."""
    while True:
        try:
            if blocker is None:
                await asyncio.sleep(0)
            else:
                await asyncio.wait([blocker])
        except asyncio.CancelledError as exc:
            try:
                blocker = coro.throw(exc)
            except StopIteration:
                return
            continue
        try:
            blocker = coro.send(None)
        except StopIteration:
            return


# A chore: a coroutine function and the seconds between its runs.
Chore = tuple[Callable[[], Awaitable[None]], float]


async def run_chores(chores: list[Chore], name: str) -> None:
    """Runs each chore at its own interval, none stopping the rest, until cancelled.

    Runs as a task of its own: the hub's while it has groups, the process's
    maintenance for as long as the process serves. A chore that fails (Redis
    restarting) is logged and tried again at its next turn.
    """
    chores = [(chore, interval) for chore, interval in chores if interval > 0]
    if not chores:
        return
    loop = asyncio.get_running_loop()
    due = [loop.time() + interval for _chore, interval in chores]
    while True:
        await asyncio.sleep(max(0.0, min(due) - loop.time()))
        now = loop.time()
        for index, (chore, interval) in enumerate(chores):
            if due[index] > now:
                continue
            due[index] = now + interval
            try:
                await chore()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis may be restarting; the next round tries again.
                if not cancelling():
                    logger.warning("%s chore %s failed: %r", name, chore.__name__, exc)
            if cancelling():
                # A chore's Redis call swallowed the cancel (see cancel_until_done()).
                raise asyncio.CancelledError()
