"""One hub per web process: it joins each group once for all local sockets and fans job frames out.

Web processes only. With a channel per socket, channels-redis writes one
message per socket into Redis for every state, and Channels then runs a
receive, a dispatch and a thread hop (closing old DB connections) per socket.
The hub holds the process's only channel instead: the layer carries one
message per process and group, and the hub hands the frame, encoded once by
the publisher, straight to each local socket's Outbox (progress.web.outbox).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from progress.conf import progress_settings
from progress.core import metrics, reads
from progress.core.outage import retry_delay
from progress.core.publisher import get_publisher
from progress.core.store import Latest
from progress.protocol.frames import job_frame
from progress.protocol.layer import (
    LAYER_JOB_MESSAGE,
    LAYER_LOG_MESSAGE,
    LAYER_SESSION_ENDED,
    LayerJobMessage,
    job_message,
    message_mark,
    owner_of_group,
    user_group,
)
from progress.protocol.states import Mark, NewestSeqs
from progress.web import chores
from progress.web.aio import alive, cancel_until_done, cancelling, run_chores
from progress.web.outbox import Listener
from progress.web.presence import Presence, touch_sockets

logger = logging.getLogger(__name__)

# Bound once: it runs for each frame.
_publish_to_send = metrics.PUBLISH_TO_SEND.observe


@dataclass(slots=True, eq=False)
class _Group:
    # The group_add of the hub's channel; joiners wait on it, so none reads a
    # snapshot before the process can receive the group's states.
    joined: asyncio.Future[None]
    listeners: set[Listener] = field(default_factory=set)
    # Unfinished jobs the group's listeners show, with the newest epoch and seq the
    # hub has seen of each: the reconcile chore re-reads them from Redis.
    open: NewestSeqs = field(default_factory=NewestSeqs)


class Hub:
    """This process's channel in the layer, its groups, and its sockets (see Presence).

    While it has groups, the hub also keeps the process honest with Redis (see
    _maintain()): it renews memberships and socket counts, notices when Redis
    lost its data, re-reads the running jobs it shows, and re-checks that each
    socket's session is still signed in. The sweep for lost workers is not its
    chore: it runs whether or not any socket is open (progress.web.chores).
    """

    def __init__(self, layer: Any, channel: str) -> None:
        self.layer = layer
        self.channel = channel
        self.loop = asyncio.get_running_loop()
        self._groups: dict[str, _Group] = {}
        self._leaving: dict[str, asyncio.Future[None]] = {}
        self.presence = Presence()
        self._reader: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._stopped = False
        self._maintainer: asyncio.Task[None] | None = None
        self._epoch: str | None = None
        self._recovering = asyncio.Lock()

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
            jobs: list[tuple[str, Latest]] = await database_sync_to_async(reads.owner_snapshot)(
                owner_id
            )
        except BaseException:
            await self.leave(group, listener)
            raise
        self.expect(group, {job_id: found.mark for job_id, found in jobs if not found.final})
        return jobs

    def expect(self, group: str, jobs: dict[str, Mark]) -> None:
        """Runs after a listener read the current states: the group's unfinished jobs."""
        entry = self._groups.get(group)
        if entry is None:
            return
        for job_id, mark in jobs.items():
            entry.open.note(job_id, mark)

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

    async def _run(self) -> None:
        async with self._starting:
            if self._stopped:
                # The pub/sub layer drops a channel whose receive() is cancelled, as the
                # idle hub's was: start again on a new one.
                self.channel = await self.layer.new_channel()
                self._stopped = False
            if self._epoch is None:
                try:
                    self._epoch = await redis_epoch()
                except Exception as exc:  # The first chore reads it instead.
                    logger.warning("Could not read the Redis epoch: %r", exc)
            if not alive(self._reader):
                self._reader = asyncio.ensure_future(self._read())
            if not alive(self._maintainer):
                self._maintainer = asyncio.ensure_future(self._maintain())
            # Under servers other than progress.server, nothing else starts it.
            chores.start()

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
            if cancelling():  # Swallowed by a recovery's Redis calls (see cancel_until_done()).
                raise asyncio.CancelledError()
            receiving = asyncio.ensure_future(self.layer.receive(self.channel))
            try:
                message = await asyncio.shield(receiving)
            except asyncio.CancelledError:
                await cancel_until_done(receiving)
                raise
            except Exception as exc:
                # A cancel that reached the layer's own clean-up comes out as its error (a
                # connection closed under it); retrying would outlive the cancel for good.
                if cancelling():
                    raise asyncio.CancelledError() from exc
                failures += 1
                delay = retry_delay(failures)
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
            self.presence.end_session(message)
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
            job_id, frame, mark = message["job_id"], message["frame"], message_mark(message)
        except KeyError as exc:
            logger.warning("Hub ignored a job message without %s", exc)
            return
        if message.get("final"):
            entry.open.forget(job_id)
        else:
            entry.open.note(job_id, mark)
        # A copy: a listener may leave while the frames go out.
        for listener in tuple(entry.listeners):
            try:
                listener.offer(job_id, mark, frame)
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

    async def _maintain(self) -> None:
        """Runs while the hub has groups: its chores, each at its own interval."""
        await run_chores(
            [
                (self._reconcile, float(progress_settings.RECONCILE_INTERVAL)),
                (self._renew, float(progress_settings.HEARTBEAT)),
                (self.presence.recheck_sessions, float(progress_settings.SESSION_RECHECK)),
            ],
            "Hub",
        )

    async def _renew(self) -> None:
        """Renews memberships before channels-redis expires them, and the sockets' counts."""
        await self._rejoin()
        await touch_sockets(self.presence.pairs())

    async def _rejoin(self) -> None:
        for group in list(self._groups):
            await self.layer.group_add(group, self.channel)

    async def _reconcile(self) -> None:
        """Re-reads the running jobs the sockets show, and passes on states the layer dropped.

        channels-redis drops messages to a full channel and expires old ones without
        a word; a process whose Redis restarted lost its groups. Either way a socket
        would wait forever for a final state: this makes the wait RECONCILE_INTERVAL.
        """
        epoch = await redis_epoch()
        if self._epoch is not None and epoch != self._epoch:
            logger.warning("Redis lost its data (a restart or a flush); re-joining and resyncing")
            await self._recover()
            return
        self._epoch = epoch
        wanted = {job_id for entry in self._groups.values() for job_id in entry.open}
        if not wanted:
            return
        publisher = get_publisher()
        stored = await publisher.acall(publisher.store.get_many(sorted(wanted)))
        lost = sorted(wanted - stored.keys())
        if lost:  # Keys Redis dropped on their own (eviction): read back, under a new epoch.
            stored.update(await database_sync_to_async(reads.latest_by_id)(lost))
        missed = 0
        for group, entry in list(self._groups.items()):
            for job_id in list(entry.open):
                found = stored.get(job_id)
                if found is not None and entry.open.newer(job_id, found.mark):
                    missed += 1
                    self.dispatch(_job_message(group, job_id, found))
        if missed:
            metrics.HUB_RECONCILED.inc(missed)
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
            self._epoch = await redis_epoch()
            await self._rejoin()
            await touch_sockets(self.presence.pairs(), recount=True)
            # After the re-join, so that no state falls between the two.
            for group in list(self._groups):
                owner = owner_of_group(group)
                if owner is None:
                    continue
                jobs = await database_sync_to_async(reads.owner_snapshot)(owner)
                for job_id, found in reversed(jobs):
                    self.dispatch(_job_message(group, job_id, found))
            metrics.HUB_RECOVERIES.inc()


def _job_message(group: str, job_id: str, found: Latest) -> LayerJobMessage:
    """A job message as the publisher would have sent it, from a state read back from Redis."""
    return job_message(group, job_id, found.mark, found.final, job_frame(found.json))


async def redis_epoch() -> str:
    """A value that changes when Redis loses its data; see StateStore.epoch()."""
    publisher = get_publisher()
    return await publisher.acall(publisher.store.epoch())


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
