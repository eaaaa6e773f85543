"""Server-sent-event streams of a job or a user's jobs. Web processes."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from redis.exceptions import RedisError

from progress.conf import progress_settings
from progress.models import Job
from progress.protocol.frames import (
    CloseCode,
    end_frame,
    job_frame,
    replaced_jobs,
    snapshot_frame,
)
from progress.protocol.layer import user_group
from progress.protocol.states import Mark
from progress.web.hub import Hub, get_hub
from progress.web.subscriptions import Inbox, job_updates

logger = logging.getLogger(__name__)

KEEP_ALIVE = ": keep-alive\n\n"


def _event(mark: Mark, frame: str) -> str:
    return f"id: {event_id(mark)}\ndata: {frame}\n\n"


def event_id(mark: Mark) -> str:
    """The `id:` of a job stream's event: `<epoch>:<seq>`, which EventSource sends back as
    Last-Event-ID when it reconnects."""
    return f"{mark.epoch}:{mark.seq}"


def parse_event_id(value: str | None) -> Mark | None:
    """A Last-Event-ID as event_id() made it; None for none, or one this server never sent
    (a stream starts over either way)."""
    if not value or len(value) > 100:
        return None
    epoch, _, seq = value.strip().rpartition(":")
    return Mark(epoch, int(seq)) if seq.isdigit() else None


def _recovery(frame: str, held: Mark, shown: Mark) -> str:
    """The first job frame of a resumed stream, saying whether it continues what was held."""
    recovered = "true" if held.epoch == shown.epoch else "false"
    return f'{frame[:-1]},"recovered":{recovered}}}'


async def job_events(job: Job, last_event_id: str | None = None) -> AsyncIterator[str]:
    """Yields the job's current state, then each newer one, and ends after the final state.
    A reconnect's Last-Event-ID has the first event say whether it continues the held state."""
    held = parse_event_id(last_event_id)
    async for found in job_updates(job, idle=float(progress_settings.SSE_KEEPALIVE)):
        if found is None:
            yield KEEP_ALIVE
            continue
        frame = job_frame(found.json)
        if held is not None:
            frame, held = _recovery(frame, held, found.mark), None
        yield _event(found.mark, frame)


class UserStream:
    """One tab's stream of the user's jobs over SSE: the socket's frames, and held like a
    socket, so the user's MAX_SOCKETS limit, a logout, the session re-check and a server
    shutdown end it as they would close the socket it stands in for."""

    def __init__(
        self, user_id: int, session_key: str | None, held: dict[str, Mark] | None = None
    ) -> None:
        self.user_id = user_id
        self.session_key = session_key
        # What the client said it holds (the socket's `held`), for the snapshot's recovery.
        self.held = held
        self.id = uuid.uuid4().hex
        self._ended: asyncio.Future[CloseCode] | None = None

    async def end(self, code: CloseCode) -> None:
        """Runs when the hub ends the stream: a logout, an invalid session, a shutdown."""
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(code)

    async def events(self) -> AsyncIterator[str]:
        """Yields the snapshot a socket would get, then every newer state of the user's jobs;
        endless until the client goes away or the hub ends it. Where a socket would get an
        error frame before its close, the stream sends it as its last event."""
        self._ended = asyncio.get_running_loop().create_future()
        try:
            hub = await get_hub()
            held = await hub.presence.hold_socket(self.user_id, self.id, self.session_key, self.end)
        except (RedisError, OSError) as exc:
            logger.warning("Stream of user %s could not start: %r", self.user_id, exc)
            yield _end_event(CloseCode.TRY_AGAIN_LATER)
            return
        if not held:
            yield _end_event(CloseCode.TOO_MANY_SOCKETS)
            return
        try:
            async for event in self._states(hub):
                yield event
        finally:
            await hub.presence.release_socket(self.id)

    async def _states(self, hub: Hub) -> AsyncIterator[str]:
        assert self._ended is not None
        inbox = Inbox()
        jobs = await hub.join_user(self.user_id, inbox)
        try:
            for job_id, found in jobs:
                inbox.given(job_id, found.mark)
            shown = {job_id: found.mark for job_id, found in jobs}
            replaced = None if self.held is None else replaced_jobs(self.held, shown)
            yield _data(snapshot_frame([found.json for _id, found in jobs], replaced))
            idle = float(progress_settings.SSE_KEEPALIVE)
            while True:
                taking = asyncio.ensure_future(inbox.take(idle))
                either: set[asyncio.Future[Any]] = {taking, self._ended}
                try:
                    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not taking.done():
                        taking.cancel()
                if self._ended.done():
                    last = end_frame(self._ended.result())
                    if last is not None:
                        yield _data(last)
                    return
                taken = taking.result()
                # The frame the hub hands sockets, byte for byte; no id: line, since a seq
                # is per job and this stream carries many.
                yield KEEP_ALIVE if taken is None else _data(taken[2])
        finally:
            await hub.leave(user_group(self.user_id), inbox)


def _data(frame: str) -> str:
    return f"data: {frame}\n\n"


def _end_event(code: CloseCode) -> str:
    frame = end_frame(code)
    assert frame is not None, code
    return _data(frame)
