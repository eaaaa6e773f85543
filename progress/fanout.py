"""One hub per web process: it joins each group once for all local sockets and fans job frames out.

With a channel per socket, channels-redis writes one message per socket into
Redis for every state, and Channels then runs a receive, a dispatch and a
thread hop (closing old DB connections) per socket. The hub holds the
process's only channel instead: the layer carries one message per process and
group, and the hub hands the frame, encoded once by the publisher, straight to
each local socket's Outbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels.layers import get_channel_layer

from . import services
from .conf import progress_settings
from .events import LAYER_JOB_MESSAGE

logger = logging.getLogger(__name__)

# Backoff after a failed receive (Redis restarting): from 0.1 s up to this.
MAX_RETRY_DELAY = 5.0


class Listener(Protocol):
    """Anything the hub hands job frames to: a socket's Outbox, an SSE stream's queue."""

    def offer(self, job_id: str, seq: int, frame: str) -> None:
        """Runs on the hub's loop for each state of a job in one of the listener's groups."""


class OneJob:
    """Passes on the states of one job only: a socket or stream watching a job it does not own.

    It listens on the owner's group, which carries all of the owner's jobs, so
    the publisher sends each state to one group and nobody manages a group per job.
    """

    __slots__ = ("job_id", "listener")

    def __init__(self, listener: Listener, job_id: str) -> None:
        self.listener = listener
        self.job_id = job_id

    def offer(self, job_id: str, seq: int, frame: str) -> None:
        """Runs for each state of the owner's jobs."""
        if job_id == self.job_id:
            self.listener.offer(job_id, seq, frame)


@dataclass(slots=True, eq=False)
class _Group:
    # The group_add of the hub's channel; joiners wait on it, so none reads a
    # snapshot before the process can receive the group's states.
    joined: asyncio.Future[None]
    listeners: set[Listener] = field(default_factory=set)


class Hub:
    """This process's channel in the layer, its groups, and its sockets' presence in Redis."""

    def __init__(self, layer: Any, channel: str) -> None:
        self.layer = layer
        self.channel = channel
        self.loop = asyncio.get_running_loop()
        self._groups: dict[str, _Group] = {}
        self._leaving: dict[str, asyncio.Future[None]] = {}
        self._sockets: dict[str, int] = {}
        self._releasing: list[tuple[str, int]] = []
        self._released: asyncio.Future[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._stopped = False
        self._beater: asyncio.Task[None] | None = None

    @property
    def groups(self) -> list[str]:
        return list(self._groups)

    def listeners(self, group: str) -> int:
        entry = self._groups.get(group)
        return len(entry.listeners) if entry else 0

    async def join(self, group: str, listener: Listener) -> None:
        """Runs when a socket or stream starts watching a group; returns once states flow."""
        await self._run()
        entry = self._groups.get(group)
        if entry is None:
            entry = self._groups[group] = _Group(asyncio.ensure_future(self._add(group)))
        elif entry.joined.done() and entry.joined.exception() is not None:
            entry.joined = asyncio.ensure_future(self._add(group))
        entry.listeners.add(listener)
        try:
            await asyncio.shield(entry.joined)
        except Exception:
            self._forget(group, entry, listener)
            raise

    async def leave(self, group: str, listener: Listener) -> None:
        """Runs when a socket or stream stops watching a group, or goes away."""
        entry = self._groups.get(group)
        if entry is None or listener not in entry.listeners:
            return
        self._forget(group, entry, listener)
        leaving = self._leaving.get(group)
        if leaving is not None:
            await asyncio.shield(leaving)

    def _forget(self, group: str, entry: _Group, listener: Listener) -> None:
        entry.listeners.discard(listener)
        if entry.listeners or self._groups.get(group) is not entry:
            return
        del self._groups[group]
        self._leaving[group] = asyncio.ensure_future(
            self._discard(group, entry.joined, self.channel)
        )
        if not self._groups:
            self._stop()

    async def _add(self, group: str) -> None:
        # A discard still on its way must land first, or it would undo this add.
        leaving = self._leaving.get(group)
        if leaving is not None:
            await asyncio.shield(leaving)
        await self.layer.group_add(group, self.channel)

    async def _discard(self, group: str, joined: asyncio.Future[None], channel: str) -> None:
        # An add still on its way must land first, or it would outlive this discard.
        await asyncio.wait([joined])
        try:
            if joined.exception() is None:
                await self.layer.group_discard(group, channel)
        except Exception as exc:  # The membership expires; a stray state is ignored.
            logger.warning("Could not leave group %s: %r", group, exc)
        finally:
            if self._leaving.get(group) is asyncio.current_task():
                del self._leaving[group]

    # Sockets, counted per user in Redis and kept fresh by the beat.

    async def hold_socket(self, user_id: int, socket_id: str) -> bool:
        """Runs on a socket's connect: counts it, or returns False at the user's limit."""
        if not await services.open_socket(user_id, socket_id):
            return False
        self._sockets[socket_id] = user_id
        return True

    async def release_socket(self, socket_id: str) -> None:
        """Runs on a counted socket's disconnect; returns once it no longer counts."""
        user_id = self._sockets.pop(socket_id, None)
        if user_id is None:
            return
        # Sockets closing together (a deploy, a network blip) share one round trip to
        # Redis, instead of each waiting for a connection of the pool.
        self._releasing.append((socket_id, user_id))
        if self._released is None:
            self._released = asyncio.ensure_future(self._release())
        await asyncio.shield(self._released)

    async def _release(self) -> None:
        await asyncio.sleep(0)  # Lets the other disconnects of this loop pass join in.
        batch, self._releasing, self._released = self._releasing, [], None
        try:
            await services.close_sockets(batch)
        except Exception as exc:  # Their entries age out after 3 x HEARTBEAT instead.
            logger.warning("Could not uncount %d closed sockets: %r", len(batch), exc)

    # The hub's own tasks run while it has groups.

    async def _run(self) -> None:
        async with self._starting:
            if self._stopped:
                # The pub/sub layer drops a channel whose receive() is cancelled, as the
                # idle hub's was: start again on a new one.
                self.channel = await self.layer.new_channel()
                self._stopped = False
            if not _alive(self._reader):
                self._reader = asyncio.ensure_future(self._read())
            if not _alive(self._beater):
                self._beater = asyncio.ensure_future(self._beat())

    def _stop(self) -> None:
        """Runs when the last listener has left: an idle process keeps no task running."""
        for task in (self._reader, self._beater):
            if task is not None:
                task.cancel()
        self._reader = self._beater = None
        self._stopped = True

    async def _read(self) -> None:
        """Runs while the hub has groups: takes each message off the channel and fans it out."""
        failures = 0
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = min(MAX_RETRY_DELAY, 0.1 * 2**failures)
                logger.warning("Hub receive failed (%r); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                # If Redis restarted, the groups went with it.
                await self._rejoin()
                continue
            failures = 0
            self.dispatch(message)

    def dispatch(self, message: dict[str, Any]) -> None:
        """Runs for each message on the hub's channel: hands the frame to the group's listeners."""
        if message.get("type") != LAYER_JOB_MESSAGE:
            logger.warning("Hub ignored a message of type %r", message.get("type"))
            return
        entry = self._groups.get(message.get("group", ""))
        if entry is None:
            return
        try:
            job_id, seq, frame = message["job_id"], message["seq"], message["frame"]
        except KeyError as exc:
            logger.warning("Hub ignored a job message without %s", exc)
            return
        # A copy: a listener may leave while the frames go out.
        for listener in tuple(entry.listeners):
            try:
                listener.offer(job_id, seq, frame)
            except Exception:
                logger.exception("A listener failed on job %s", job_id)

    async def _beat(self) -> None:
        """Runs while the hub has groups: renews memberships before channels-redis expires them."""
        while True:
            await asyncio.sleep(float(progress_settings.HEARTBEAT))
            await self._rejoin()
            try:
                await services.touch_sockets(list(self._sockets.items()))
            except Exception as exc:  # Redis may be restarting; the next beat tries again.
                logger.warning("Could not renew %d sockets: %r", len(self._sockets), exc)

    async def _rejoin(self) -> None:
        for group in list(self._groups):
            try:
                await self.layer.group_add(group, self.channel)
            except Exception as exc:  # Redis may be restarting; the next beat tries again.
                logger.warning("Could not renew group %s: %r", group, exc)
                return


def _alive(task: asyncio.Task[None] | None) -> bool:
    return task is not None and not task.done() and not task.cancelling()


_hub: Hub | None = None


async def get_hub() -> Hub:
    """This process's hub for the running event loop, created on first use."""
    global _hub
    loop = asyncio.get_running_loop()
    if _hub is not None and _hub.loop is loop:
        return _hub
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("No channel layer is configured.")
    channel = await layer.new_channel()
    if _hub is None or _hub.loop is not loop:
        _hub = Hub(layer, channel)
    return _hub


class Outbox:
    """The frames on their way to one socket, in order and without blocking the hub.

    While the socket keeps up, each frame is written at once. While a write
    waits (the client reads slowly), newer frames wait here, one per job: a
    newer state replaces an older one, so the socket catches up on the latest
    states, and the final one, instead of a backlog.
    """

    __slots__ = ("_busy", "_send", "_waiting", "closed", "seen")

    def __init__(self, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self._send = send
        # Busy until the consumer has sent its snapshot (resume()), so nothing overtakes it.
        self._busy = True
        self._waiting: dict[str, tuple[int, str]] = {}
        self.seen: dict[str, int] = {}
        self.closed = False

    def offer(self, job_id: str, seq: int, frame: str, force: bool = False) -> None:
        """Runs for each new state of a job this socket watches; `force` resends a seen one."""
        seen = self.seen.get(job_id, 0)
        if seq <= seen and not force:
            return
        if seq > seen:
            self.seen[job_id] = seq
        if self.closed:
            return
        if self._busy:
            self._waiting[job_id] = (seq, frame)
            return
        self._busy = True
        run_eagerly(self._write(frame))

    def resume(self, shown: dict[str, int]) -> None:
        """Runs once the snapshot is sent: what it showed is not sent again."""
        for job_id, seq in shown.items():
            if seq > self.seen.get(job_id, 0):
                self.seen[job_id] = seq
            waiting = self._waiting.get(job_id)
            if waiting is not None and waiting[0] <= seq:
                del self._waiting[job_id]
        if self._waiting:
            run_eagerly(self._write(None))
        else:
            self._busy = False

    def close(self) -> None:
        """Runs on disconnect: frames still waiting have nowhere to go."""
        self.closed = True
        self._waiting.clear()

    async def _write(self, frame: str | None) -> None:
        try:
            if frame is not None:
                await self._send({"type": "websocket.send", "text": frame})
            while self._waiting and not self.closed:
                job_id = next(iter(self._waiting))
                _seq, frame = self._waiting.pop(job_id)
                await self._send({"type": "websocket.send", "text": frame})
        except Exception as exc:  # The client went away; its consumer's disconnect cleans up.
            logger.debug("Socket write failed: %r", exc)
            self.close()
        finally:
            self._busy = False


_finishing: set[asyncio.Task[None]] = set()


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
