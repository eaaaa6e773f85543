"""A mixin that lets another app's consumer receive job states. Web processes."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncGenerator, Coroutine
from typing import Any

from progress.core.store import Latest
from progress.exceptions import JobNotFound, TooManySockets
from progress.protocol.frames import CloseCode
from progress.protocol.layer import user_group
from progress.protocol.states import JobDict, Mark
from progress.web.hub import Hub, get_hub
from progress.web.subscriptions import find_job, job_updates, user_updates

logger = logging.getLogger(__name__)

# The key of the watch of all the user's jobs, which no job id can equal.
_ALL = "*"


class _Silent:
    """Keeps the user's own group joined, so a logout reaches this socket's hub."""

    def offer(self, job_id: str, mark: Mark, frame: str) -> None:
        """Runs for each state of the user's jobs; the watches have their own listeners."""


class ProgressConsumerMixin:
    """Put it before AsyncWebsocketConsumer (or AsyncJsonWebsocketConsumer) in the bases.

    `await self.watch_job(job_id)` and `await self.watch_user_jobs()` start
    passing states to `job_update()`, which the consumer overrides; both go
    through the socket's user (scope["user"]) and PROGRESS["VISIBILITY"]. Every
    watch ends when the socket closes. From its first watch on, the socket
    counts against PROGRESS["MAX_SOCKETS"] and closes like the progress
    socket's own: 4401 at a logout or an ended session, 1001 at a shutdown.
    """

    scope: dict[str, Any]

    async def job_update(self, job: JobDict) -> None:
        """Runs for each new state of a watched job, in seq order per job; override it."""

    async def watch_job(self, job_id: object) -> JobDict:
        """Runs when the consumer starts watching a job; returns its current state.

        Raises JobNotFound for a job the socket's user may not see, and
        TooManySockets (after closing the socket with 4429) past MAX_SOCKETS.
        The state returned is not passed to job_update() again; each newer one is.
        """
        user = self._progress_user()
        job = await find_job(job_id, user)
        await self._progress_hold(int(user.pk))
        key = str(job.pk)
        await self.unwatch_job(key)
        updates = job_updates(job)
        first = await anext(updates)
        assert first is not None
        if first.final:
            await updates.aclose()
        else:
            self._progress_watch(key, self._progress_pump(updates))
        return _decode(first)

    async def unwatch_job(self, job_id: object) -> None:
        """Runs when the consumer stops watching a job before it ends."""
        task = self._progress_tasks().pop(str(job_id), None)
        if task is not None:
            task.cancel()

    async def watch_user_jobs(self, replay: bool = True) -> None:
        """Runs when the consumer starts watching every job of its user: their recent jobs
        go to job_update() first, oldest first (unless not `replay`), then every new state."""
        user = self._progress_user()
        await self._progress_hold(int(user.pk))
        await self.unwatch_job(_ALL)
        updates = _user_states(int(user.pk), replay)
        self._progress_watch(_ALL, self._progress_pump(updates))

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """Runs when the socket closes: every watch ends with it, and it no longer counts."""
        tasks = self._progress_tasks()
        for task in tasks.values():
            task.cancel()
        tasks.clear()
        held: tuple[Hub, int, str] | None = getattr(self, "_progress_held", None)
        if held is not None:
            hub, user_id, socket_id = held
            self._progress_held = None
            await hub.leave(user_group(user_id), self._progress_silent)
            await hub.presence.release_socket(socket_id)
        await super().websocket_disconnect(message)  # type: ignore[misc]

    def _progress_user(self) -> Any:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            raise JobNotFound()
        return user

    async def _progress_hold(self, user_id: int) -> None:
        """Runs at the first watch: counts the socket and lets logouts and shutdowns close it."""
        if getattr(self, "_progress_held", None) is not None:
            return
        hub = await get_hub()
        socket_id = uuid.uuid4().hex
        session_key = getattr(self.scope.get("session"), "session_key", None)
        if not await hub.presence.hold_socket(
            user_id, socket_id, session_key, self._progress_close
        ):
            await self._progress_close(CloseCode.TOO_MANY_SOCKETS)
            raise TooManySockets()
        self._progress_held = (hub, user_id, socket_id)
        self._progress_silent = _Silent()
        await hub.join(user_group(user_id), self._progress_silent)

    async def _progress_close(self, code: CloseCode) -> None:
        """Runs when the hub ends this socket: a logout, the user's limit, a shutdown."""
        await self.close(code=int(code))  # type: ignore[attr-defined]

    def _progress_watch(self, key: str, pump: Coroutine[Any, Any, None]) -> None:
        tasks = self._progress_tasks()
        task = tasks[key] = asyncio.ensure_future(pump)
        # A watch whose job ended leaves no entry behind.
        task.add_done_callback(lambda done: tasks.pop(key) if tasks.get(key) is done else None)

    def _progress_tasks(self) -> dict[str, asyncio.Task[None]]:
        tasks: dict[str, asyncio.Task[None]] | None = getattr(self, "_progress_watches", None)
        if tasks is None:
            tasks = {}
            self._progress_watches = tasks
        return tasks

    async def _progress_pump(self, updates: AsyncGenerator[Latest | None]) -> None:
        try:
            async for found in updates:
                if found is None:
                    continue
                try:
                    await self.job_update(_decode(found))
                except Exception:  # One bad state must not end the watch; the next may do.
                    logger.exception("job_update() failed on a state of %s", found.json[:60])
        finally:
            await updates.aclose()


async def _user_states(owner_id: int, replay: bool) -> AsyncGenerator[Latest | None]:
    updates = user_updates(owner_id, replay)
    try:
        async for _job_id, found in updates:
            yield found
    finally:
        await updates.aclose()


def _decode(found: Latest) -> JobDict:
    state: JobDict = json.loads(found.json)
    return state
