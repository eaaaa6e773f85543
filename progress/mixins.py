"""A mixin that lets another app's WebSocket consumer receive job states."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from .events import JobDict
from .exceptions import JobNotFound
from .subscriptions import find_job, job_updates, user_updates

logger = logging.getLogger(__name__)


class ProgressConsumerMixin:
    """Put it before AsyncWebsocketConsumer (or AsyncJsonWebsocketConsumer) in the bases.

    `await self.watch_job(job_id)` and `await self.watch_user_jobs()` start
    passing states to `job_update()`, which the consumer overrides; both go
    through the socket's user (scope["user"]) and PROGRESS["VISIBILITY"]. Every
    watch ends when the socket closes.
    """

    scope: dict[str, Any]

    async def job_update(self, job: JobDict) -> None:
        """Runs for each new state of a watched job, in seq order per job; override it."""

    async def watch_job(self, job_id: object) -> JobDict:
        """Runs when the consumer starts watching a job; returns its current state.

        Raises JobNotFound for a job the socket's user may not see. The state
        returned is not passed to job_update() again; each newer one is.
        """
        user = self.scope.get("user")
        if user is None:
            raise JobNotFound()
        job = await find_job(job_id, user)
        key = str(job.pk)
        await self.unwatch_job(key)
        updates = job_updates(job)
        first = await anext(updates)
        assert first is not None
        current = _decode(first.json)
        if not first.final:
            self._watch(key, self._pump_job(updates))
        else:
            await updates.aclose()
        return current

    async def unwatch_job(self, job_id: object) -> None:
        """Runs when the consumer stops watching a job before it ends."""
        task = self._progress_watches().pop(str(job_id), None)
        if task is not None:
            task.cancel()

    async def watch_user_jobs(self, replay: bool = True) -> None:
        """Runs when the consumer starts watching every job of its user: their recent jobs
        go to job_update() first, oldest first (unless not `replay`), then every new state."""
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            raise JobNotFound()
        await self.unwatch_job(_ALL)
        self._watch(_ALL, self._pump_user(int(user.pk), replay))

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """Runs when the socket closes: every watch ends with it."""
        for task in self._progress_watches().values():
            task.cancel()
        self._progress_watches().clear()
        await super().websocket_disconnect(message)  # type: ignore[misc]

    def _watch(self, key: str, pump: Any) -> None:
        watches = self._progress_watches()
        task = watches[key] = asyncio.ensure_future(pump)
        # A watch whose job ended leaves no entry behind.
        task.add_done_callback(
            lambda done: watches.pop(key, None) if watches.get(key) is done else None
        )

    def _progress_watches(self) -> dict[str, asyncio.Task[None]]:
        watches: dict[str, asyncio.Task[None]] | None = getattr(self, "_progress_tasks", None)
        if watches is None:
            watches = {}
            self._progress_tasks = watches
        return watches

    async def _pump_job(self, updates: Any) -> None:
        try:
            async for found in updates:
                await self._deliver(_decode(found.json))
        finally:
            await updates.aclose()

    async def _pump_user(self, owner_id: int, replay: bool) -> None:
        updates = user_updates(owner_id, replay)
        try:
            async for _job_id, found in updates:
                await self._deliver(_decode(found.json))
        finally:
            await updates.aclose()

    async def _deliver(self, job: JobDict) -> None:
        try:
            await self.job_update(job)
        except asyncio.CancelledError:
            raise
        except Exception:  # One bad state must not end the watch; the next may succeed.
            logger.exception("job_update() failed on job %s", job.get("id"))


# The key of the watch of all the user's jobs, which no job id can equal.
_ALL = "*"


def _decode(job_json: str) -> JobDict:
    state: JobDict = json.loads(job_json)
    return state
