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
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from . import metrics, services, sessions
from .conf import progress_settings
from .events import (
    LAYER_JOB_MESSAGE,
    LAYER_LOG_MESSAGE,
    LAYER_SESSION_ENDED,
    CloseCode,
    LayerJobMessage,
    job_frame,
    job_message,
    owner_of_group,
    session_digest,
    user_group,
)
from .store import Latest

logger = logging.getLogger(__name__)

# Log frames one slow socket may have waiting; older ones are dropped.
LOG_FRAMES_WAITING = 50

# Backoff after a failed receive (Redis restarting): from 0.1 s up to this.
MAX_RETRY_DELAY = 5.0

# Bound once: they run for each frame.
_delivered = metrics.MESSAGES_DELIVERED.inc
_publish_to_send = metrics.PUBLISH_TO_SEND.observe


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

    def offer_log(self, job_id: str, last: int, frame: str) -> None:
        """Runs for each batch of log lines of the owner's jobs."""
        offer_log = getattr(self.listener, "offer_log", None)
        if job_id == self.job_id and offer_log is not None:
            offer_log(job_id, last, frame)


@dataclass(slots=True, eq=False)
class _Group:
    # The group_add of the hub's channel; joiners wait on it, so none reads a
    # snapshot before the process can receive the group's states.
    joined: asyncio.Future[None]
    listeners: set[Listener] = field(default_factory=set)
    # Unfinished jobs the group's listeners show, with the highest seq the hub
    # has seen of each: the reconcile chore re-reads them from Redis.
    open: dict[str, int] = field(default_factory=dict)


# Closes a socket with a close code; the consumer supplies it.
Closer = Callable[[CloseCode], Awaitable[None]]


@dataclass(slots=True, eq=False)
class _Socket:
    user_id: int
    session_key: str
    close: Closer
    # session_digest() of the key, which a logout's message names.
    session: str = field(init=False)

    def __post_init__(self) -> None:
        self.session = session_digest(self.session_key)


class Hub:
    """This process's channel in the layer, its groups, and its sockets' presence in Redis.

    While it has groups, the hub also keeps the process honest with Redis (see
    _maintain()): it renews memberships, notices when Redis lost its data,
    re-reads the running jobs it shows, sweeps for jobs whose worker was lost,
    and re-checks that each socket's session is still signed in.
    """

    def __init__(self, layer: Any, channel: str) -> None:
        self.layer = layer
        self.channel = channel
        self.loop = asyncio.get_running_loop()
        self._groups: dict[str, _Group] = {}
        self._leaving: dict[str, asyncio.Future[None]] = {}
        self._sockets: dict[str, _Socket] = {}
        self._releasing: list[tuple[str, int]] = []
        self._released: asyncio.Future[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._stopped = False
        self._maintainer: asyncio.Task[None] | None = None
        self._epoch: str | None = None
        self._recovering = asyncio.Lock()
        # Counters for tests and operators: recoveries after Redis lost data or a
        # receive failed, and states the reconcile chore found the layer had dropped.
        self.recoveries = 0
        self.reconciled = 0

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

    async def join_user(self, owner_id: int, listener: Listener) -> list[tuple[str, Latest]]:
        """Runs when a socket or stream starts showing a user's jobs: joins their group, then
        reads their snapshot (newest first), so that no state falls between the two, and has
        the reconcile chore follow the unfinished ones. Leaves again if the read fails."""
        group = user_group(owner_id)
        await self.join(group, listener)
        try:
            jobs = await database_sync_to_async(services.owner_snapshot)(owner_id)
        except BaseException:
            await self.leave(group, listener)
            raise
        self.expect(group, {job_id: found.seq for job_id, found in jobs if not found.final})
        return jobs

    def expect(self, group: str, jobs: dict[str, int]) -> None:
        """Runs after a listener read the current states: the group's unfinished jobs, by seq."""
        entry = self._groups.get(group)
        if entry is None:
            return
        for job_id, seq in jobs.items():
            if seq > entry.open.get(job_id, -1):
                entry.open[job_id] = seq

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

    # Sockets, counted per user in Redis and kept fresh by the chores.

    async def hold_socket(
        self, user_id: int, socket_id: str, session_key: str | None, close: Closer
    ) -> bool:
        """Runs on a socket's connect: counts it, or returns False at the user's limit."""
        if not await services.open_socket(user_id, socket_id):
            return False
        self._sockets[socket_id] = _Socket(user_id, session_key or "", close)
        metrics.OPEN_SOCKETS.inc()
        return True

    async def release_socket(self, socket_id: str) -> None:
        """Runs on a counted socket's disconnect; returns once it no longer counts."""
        held = self._sockets.pop(socket_id, None)
        if held is None:
            return
        metrics.OPEN_SOCKETS.dec()
        # Sockets closing together (a deploy, a network blip) share one round trip to
        # Redis, instead of each waiting for a connection of the pool.
        self._releasing.append((socket_id, held.user_id))
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

    async def close_all(self, code: CloseCode) -> int:
        """Runs when the server shuts down: every socket closes with `code`, so clients know
        to reconnect elsewhere. Returns how many were closed."""
        sockets = list(self._sockets.values())
        await self._close(sockets, code)
        return len(sockets)

    async def _close(self, sockets: list[_Socket], code: CloseCode) -> None:
        results = await asyncio.gather(
            *(socket.close(code) for socket in sockets), return_exceptions=True
        )
        for result in results:
            if isinstance(result, Exception):
                logger.warning("Could not close a socket with %d: %r", code, result)

    # The hub's own tasks run while it has groups.

    async def _run(self) -> None:
        async with self._starting:
            if self._stopped:
                # The pub/sub layer drops a channel whose receive() is cancelled, as the
                # idle hub's was: start again on a new one.
                self.channel = await self.layer.new_channel()
                self._stopped = False
            if self._epoch is None:
                try:
                    self._epoch = await services.redis_epoch()
                except Exception as exc:  # The first chore reads it instead.
                    logger.warning("Could not read the Redis epoch: %r", exc)
            if not _alive(self._reader):
                self._reader = asyncio.ensure_future(self._read())
            if not _alive(self._maintainer):
                self._maintainer = asyncio.ensure_future(self._maintain())

    def _stop(self) -> None:
        """Runs when the last listener has left: an idle process keeps no task running."""
        for task in (self._reader, self._maintainer):
            if task is not None:
                task.cancel()
        self._reader = self._maintainer = None
        self._stopped = True

    async def _read(self) -> None:
        """Runs while the hub has groups: takes each message off the channel and fans it out."""
        failures = 0
        while True:
            if _cancelling():  # Swallowed by a recovery's Redis calls (see _cancel_until_done()).
                raise asyncio.CancelledError()
            receiving = asyncio.ensure_future(self.layer.receive(self.channel))
            try:
                message = await asyncio.shield(receiving)
            except asyncio.CancelledError:
                await _cancel_until_done(receiving)
                raise
            except Exception as exc:
                # A cancel that reached the layer's own clean-up comes out as its error (a
                # connection closed under it); retrying would outlive the cancel for good.
                if _cancelling():
                    raise asyncio.CancelledError() from exc
                failures += 1
                delay = min(MAX_RETRY_DELAY, 0.1 * 2**failures)
                logger.warning("Hub receive failed (%r); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                # Whatever was sent meanwhile is lost, and if Redis restarted, the groups too.
                await self._recover_quietly()
                continue
            failures = 0
            self.dispatch(message)

    def dispatch(self, message: Mapping[str, Any]) -> None:
        """Runs for each message on the hub's channel: hands the frame to the group's listeners."""
        kind = message.get("type")
        if kind == LAYER_SESSION_ENDED:
            self._end_session(message)
            return
        if kind == LAYER_LOG_MESSAGE:
            self._dispatch_log(message)
            return
        if kind != LAYER_JOB_MESSAGE:
            logger.warning("Hub ignored a message of type %r", kind)
            return
        entry = self._groups.get(message.get("group", ""))
        if entry is None:
            return
        try:
            job_id, seq, frame = message["job_id"], message["seq"], message["frame"]
        except KeyError as exc:
            logger.warning("Hub ignored a job message without %s", exc)
            return
        if message.get("final"):
            entry.open.pop(job_id, None)
        elif seq > entry.open.get(job_id, -1):
            entry.open[job_id] = seq
        # A copy: a listener may leave while the frames go out.
        for listener in tuple(entry.listeners):
            try:
                listener.offer(job_id, seq, frame)
            except Exception:
                logger.exception("A listener failed on job %s", job_id)
        # Only the publisher's messages carry ts: states re-read from Redis may be hours old.
        ts = message.get("ts")
        if ts:
            # Sockets that keep up were written to by now (run_eagerly). Clocks of other
            # hosts may run ahead of this one's.
            _publish_to_send(max(0.0, time.time() - ts))

    def _dispatch_log(self, message: Mapping[str, Any]) -> None:
        """Runs for each batch of log lines: to the listeners that take logs (sockets that
        subscribed to the job)."""
        entry = self._groups.get(message.get("group", ""))
        if entry is None:
            return
        try:
            job_id, last, frame = message["job_id"], message["last"], message["frame"]
        except KeyError as exc:
            logger.warning("Hub ignored a log message without %s", exc)
            return
        for listener in tuple(entry.listeners):
            offer_log = getattr(listener, "offer_log", None)
            if offer_log is None:
                continue
            try:
                offer_log(job_id, last, frame)
            except Exception:
                logger.exception("A listener failed on the log of job %s", job_id)

    def _end_session(self, message: Mapping[str, Any]) -> None:
        """Runs when a user logged out somewhere: their sockets of that session close."""
        user_id = owner_of_group(str(message.get("group", "")))
        session = message.get("session") or ""
        ended = [
            socket
            for socket in self._sockets.values()
            if socket.user_id == user_id and (not session or socket.session == session)
        ]
        if ended:
            _background(self._close(ended, CloseCode.SESSION_ENDED))

    # Chores, while the hub has groups.

    async def _maintain(self) -> None:
        """Runs while the hub has groups: each chore at its own interval, none stopping the rest."""
        chores: list[tuple[Callable[[], Awaitable[None]], float]] = [
            (self._reconcile, float(progress_settings.RECONCILE_INTERVAL)),
            (self._renew, float(progress_settings.HEARTBEAT)),
            (self._sweep, float(progress_settings.WORKER_LOST_AFTER) / 3),
            (self._recheck_sessions, float(progress_settings.SESSION_RECHECK)),
        ]
        chores = [(chore, interval) for chore, interval in chores if interval > 0]
        if not chores:
            return
        due = [self.loop.time() + interval for _chore, interval in chores]
        while True:
            await asyncio.sleep(max(0.0, min(due) - self.loop.time()))
            now = self.loop.time()
            for index, (chore, interval) in enumerate(chores):
                if due[index] > now:
                    continue
                due[index] = now + interval
                try:
                    await chore()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Redis may be restarting; the next round tries again.
                    if not _cancelling():
                        logger.warning("Hub chore %s failed: %r", chore.__name__, exc)
                if _cancelling():
                    # A chore's Redis call swallowed the cancel (see _cancel_until_done()).
                    raise asyncio.CancelledError()

    async def _renew(self) -> None:
        """Renews memberships before channels-redis expires them, and the sockets' counts."""
        await self._rejoin()
        await services.touch_sockets(self._socket_pairs())

    async def _rejoin(self) -> None:
        for group in list(self._groups):
            await self.layer.group_add(group, self.channel)

    def _socket_pairs(self) -> list[tuple[str, int]]:
        return [(socket_id, held.user_id) for socket_id, held in self._sockets.items()]

    async def _reconcile(self) -> None:
        """Re-reads the running jobs the sockets show, and passes on states the layer dropped.

        channels-redis drops messages to a full channel and expires old ones without
        a word; a process whose Redis restarted lost its groups. Either way a socket
        would wait forever for a final state: this makes the wait RECONCILE_INTERVAL.
        """
        epoch = await services.redis_epoch()
        if self._epoch is not None and epoch != self._epoch:
            logger.warning("Redis lost its data (a restart or a flush); re-joining and resyncing")
            await self._recover()
            return
        self._epoch = epoch
        wanted = {job_id for entry in self._groups.values() for job_id in entry.open}
        if not wanted:
            return
        stored = await services.latest_states(sorted(wanted))
        missed = 0
        for group, entry in list(self._groups.items()):
            for job_id, seen in list(entry.open.items()):
                found = stored.get(job_id)
                if found is not None and found.seq > seen:
                    missed += 1
                    self.dispatch(_job_message(group, job_id, found))
        if missed:
            self.reconciled += missed
            logger.info("Passed on %d job states the channel layer had not delivered", missed)

    async def _recover_quietly(self) -> None:
        try:
            await self._recover()
        except Exception as exc:  # Redis is still away; the next failure or chore retries.
            logger.warning("Hub could not recover yet: %r", exc)

    async def _recover(self) -> None:
        """Runs when Redis lost data or a receive failed: re-join every group, count every
        socket again, and pass on each group's current states, so nothing sent meanwhile is
        missed."""
        async with self._recovering:
            self._epoch = await services.redis_epoch()
            await self._rejoin()
            await services.touch_sockets(self._socket_pairs(), recount=True)
            # After the re-join, so that no state falls between the two.
            for group in list(self._groups):
                owner = owner_of_group(group)
                if owner is None:
                    continue
                jobs = await database_sync_to_async(services.owner_snapshot)(owner)
                for job_id, found in reversed(jobs):
                    self.dispatch(_job_message(group, job_id, found))
            self.recoveries += 1

    async def _sweep(self) -> None:
        """Ends the jobs whose worker was lost; one process of all sweeps each turn."""
        interval = float(progress_settings.WORKER_LOST_AFTER) / 3
        if await services.take_sweep_turn(interval * 0.9):
            await database_sync_to_async(services.sweep_lost_jobs)()

    async def _recheck_sessions(self) -> None:
        """Closes the sockets whose session was deleted or expired, or whose user was
        deactivated or changed password, since they connected."""
        pairs = {(held.session_key, held.user_id) for held in self._sockets.values()}
        pairs = {pair for pair in pairs if pair[0]}
        if not pairs:
            return
        valid = await database_sync_to_async(sessions.signed_in)(pairs)
        ended = [
            held
            for held in self._sockets.values()
            if held.session_key and (held.session_key, held.user_id) not in valid
        ]
        if ended:
            logger.info("Closing %d sockets whose session ended", len(ended))
            await self._close(ended, CloseCode.SESSION_ENDED)


def _job_message(group: str, job_id: str, found: Latest) -> LayerJobMessage:
    """A job message as the publisher would have sent it, from a state read back from Redis."""
    return job_message(group, job_id, found.seq, found.final, job_frame(found.json))


def _cancelling() -> bool:
    """True once the running task was asked to stop, even if a step swallowed the cancel."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


# How long a cancelled receive gets to end before it is cancelled again.
RECANCEL_AFTER = 0.1


async def _cancel_until_done(task: asyncio.Future[Any]) -> None:
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


def current_hub() -> Hub | None:
    """This process's hub if one runs on the current event loop; the server's shutdown asks."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return _hub if _hub is not None and _hub.loop is loop else None


class Outbox:
    """The frames on their way to one socket, in order and without blocking the hub.

    While the socket keeps up, each frame is written at once. While a write
    waits (the client reads slowly), newer frames wait here, one per job: a
    newer state replaces an older one, so the socket catches up on the latest
    states, and the final one, instead of a backlog.
    """

    __slots__ = ("_busy", "_logs", "_send", "_waiting", "closed", "logs_of", "seen")

    def __init__(self, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self._send = send
        # Busy until the consumer has sent its snapshot (resume()), so nothing overtakes it.
        self._busy = True
        self._waiting: dict[str, tuple[int, str]] = {}
        # Log frames waiting, in order; unlike states, each carries lines of its own.
        self._logs: deque[str] = deque(maxlen=LOG_FRAMES_WAITING)
        self.seen: dict[str, int] = {}
        # Jobs whose log lines this socket takes: the ones it subscribed to.
        self.logs_of: set[str] = set()
        self.closed = False

    def offer_log(self, job_id: str, last: int, frame: str) -> None:
        """Runs for each batch of log lines of a job in the socket's groups."""
        if job_id not in self.logs_of or self.closed:
            return
        if self._busy:
            # A socket that reads slowly loses the oldest batches; the page's replay on
            # its next subscribe has the lines Redis keeps.
            self._logs.append(frame)
            return
        self._busy = True
        run_eagerly(self._write(frame))

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
        if self._waiting or self._logs:
            run_eagerly(self._write(None))
        else:
            self._busy = False

    def close(self) -> None:
        """Runs on disconnect: frames still waiting have nowhere to go."""
        self.closed = True
        self._waiting.clear()
        self._logs.clear()

    async def _write(self, frame: str | None) -> None:
        try:
            if frame is not None:
                await self._send({"type": "websocket.send", "text": frame})
                _delivered()
            while (self._waiting or self._logs) and not self.closed:
                if self._waiting:
                    job_id = next(iter(self._waiting))
                    _seq, frame = self._waiting.pop(job_id)
                else:
                    frame = self._logs.popleft()
                await self._send({"type": "websocket.send", "text": frame})
                _delivered()
        except Exception as exc:  # The client went away; its consumer's disconnect cleans up.
            logger.debug("Socket write failed: %r", exc)
            self.close()
        finally:
            self._busy = False


_finishing: set[asyncio.Task[None]] = set()


def _background(coro: Coroutine[Any, Any, None]) -> None:
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
