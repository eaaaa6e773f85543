"""Job states as async iterators, for SSE, other apps and async views. Web processes.

Each iterator joins the owner's group through the process's hub before it reads
the current state, so no state falls between the two, and then yields every
newer state in seq order. A consumer slower than the states gets each job's
latest state instead of a backlog; the final state is always among them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator

from channels.db import database_sync_to_async

from progress.core import reads
from progress.core.reads import User
from progress.core.store import Latest
from progress.exceptions import JobNotFound
from progress.models import Job
from progress.protocol.frames import frame_job
from progress.protocol.layer import user_group
from progress.protocol.states import JobDict, Mark, NewestSeqs
from progress.web.hub import get_hub
from progress.web.outbox import OneJob


class Inbox:
    """A hub listener that keeps the newest unread state of each job for one reader."""

    def __init__(self) -> None:
        self._unread: dict[str, tuple[Mark, str]] = {}
        self._ready = asyncio.Event()
        # The newest state of each job the reader has been given.
        self.seen = NewestSeqs()

    def offer(self, job_id: str, mark: Mark, frame: str) -> None:
        """Runs on the hub's loop for each state of a job the reader watches."""
        if not self.seen.newer(job_id, mark):
            return
        unread = self._unread.get(job_id)
        if unread is None or mark.replaces(unread[0]):
            self._unread[job_id] = (mark, frame)
            self._ready.set()

    def given(self, job_id: str, mark: Mark) -> None:
        """Runs when the reader was handed a job's state another way (a snapshot, a read)."""
        self.seen.note(job_id, mark)

    async def take(self, idle: float | None = None) -> tuple[str, Mark, str] | None:
        """The next unread (job id, seq, frame), waiting for one; None after `idle` seconds."""
        while True:
            while not self._unread:
                self._ready.clear()
                if idle is None:
                    await self._ready.wait()
                    continue
                try:
                    await asyncio.wait_for(self._ready.wait(), idle)
                except TimeoutError:
                    return None
            job_id = next(iter(self._unread))
            mark, frame = self._unread.pop(job_id)
            if self.seen.note(job_id, mark):
                return job_id, mark, frame


def _latest(frame: str, mark: Mark) -> Latest:
    job_json = frame_job(frame)
    return Latest(mark.seq, job_json, reads.is_final_json(job_json), mark.epoch)


async def job_updates(job: Job, idle: float | None = None) -> AsyncGenerator[Latest | None]:
    """The job's current state, then each newer one; ends after the final state.

    With `idle`, yields None after that many seconds without a state (SSE keep-alives).
    """
    hub = await get_hub()
    group, key = user_group(job.owner_id), str(job.pk)
    inbox = Inbox()
    listener = OneJob(inbox, key)
    await hub.join(group, listener)
    try:
        found = await database_sync_to_async(reads.latest_of)(job)
        inbox.given(key, found.mark)
        yield found
        if found.final:
            return
        hub.expect(group, {key: found.mark})
        while True:
            taken = await inbox.take(idle)
            if taken is None:
                yield None
                continue
            found = _latest(taken[2], taken[1])
            yield found
            if found.final:
                return
    finally:
        await hub.leave(group, listener)


async def user_updates(owner_id: int, replay: bool = True) -> AsyncGenerator[tuple[str, Latest]]:
    """(job id, state) of a user's recent jobs, oldest first (unless not `replay`), then every
    new state; endless."""
    hub = await get_hub()
    inbox = Inbox()
    jobs = await hub.join_user(owner_id, inbox)
    try:
        for job_id, found in jobs:
            inbox.given(job_id, found.mark)
        for job_id, found in reversed(jobs) if replay else ():
            yield job_id, found
        while True:
            taken = await inbox.take()
            assert taken is not None
            job_id, mark, frame = taken
            yield job_id, _latest(frame, mark)
    finally:
        await hub.leave(user_group(owner_id), inbox)


async def find_job(job_id: object, user: User | None) -> Job:
    """The job by id: one `user` may see, or with no user, any job."""
    if user is not None:
        return await reads.aget_visible_job(user, job_id)
    return await reads.ajob_by_id(job_id)


async def subscribe(job_id: object, user: User | None = None) -> AsyncGenerator[JobDict, None]:
    """Yields the job's current state, then each newer one, and ends after the final state.

    With `user`, only a job that user may see (JobNotFound otherwise, as for one
    that does not exist); without, any job: for trusted server code. Use it with
    `contextlib.aclosing()` to leave the job's group as soon as you stop reading.
    """
    job = await find_job(job_id, user)
    async for found in job_updates(job):
        assert found is not None
        state: JobDict = json.loads(found.json)
        yield state


async def subscribe_user(user: User | int, replay: bool = True) -> AsyncGenerator[JobDict, None]:
    """Yields the user's recent jobs (oldest first; not with replay=False), then every new
    state of any of their jobs, for as long as it is read."""
    if isinstance(user, int):
        owner_id = user
    elif user.is_authenticated and user.pk is not None:
        owner_id = int(user.pk)
    else:
        raise JobNotFound()
    async for _job_id, found in user_updates(owner_id, replay):
        state: JobDict = json.loads(found.json)
        yield state
