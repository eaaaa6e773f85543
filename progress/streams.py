"""The server-sent-events stream of one job, for clients that cannot use WebSockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from channels.db import database_sync_to_async

from . import services
from .conf import progress_settings
from .events import FINAL_STATES, job_frame, user_group
from .fanout import OneJob, get_hub
from .models import Job


def _event(seq: int, frame: str) -> str:
    return f"id: {seq}\ndata: {frame}\n\n"


class _Stream:
    """A hub listener that queues the job's states for one SSE response."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()

    def offer(self, job_id: str, seq: int, frame: str) -> None:
        """Runs on the hub's loop for each state of the job; job_events() skips stale ones."""
        self.queue.put_nowait((seq, frame))


async def job_events(job: Job) -> AsyncIterator[str]:
    """Yields the job's current state, then each newer one, and ends after the final state."""
    hub = await get_hub()
    group = user_group(job.owner_id)
    stream = _Stream()
    listener = OneJob(stream, str(job.pk))
    # Join before reading the current state, so no state falls between the two.
    await hub.join(group, listener)
    try:
        sent, payload, final = await database_sync_to_async(services.latest_of)(job)
        yield _event(sent, job_frame(payload))
        if final:
            return
        hub.expect(group, {str(job.pk): sent})
        while True:
            try:
                seq, frame = await asyncio.wait_for(
                    stream.queue.get(), timeout=progress_settings.SSE_KEEPALIVE
                )
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if seq <= sent:
                continue
            sent = seq
            yield _event(seq, frame)
            if json.loads(frame)["job"]["state"] in FINAL_STATES:
                return
    finally:
        await hub.leave(group, listener)
