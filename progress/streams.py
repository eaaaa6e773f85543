"""The server-sent-events stream of one job, for clients that cannot use WebSockets."""

from __future__ import annotations

from collections.abc import AsyncIterator

from .conf import progress_settings
from .events import job_frame
from .models import Job
from .subscriptions import job_updates


def _event(seq: int, frame: str) -> str:
    return f"id: {seq}\ndata: {frame}\n\n"


async def job_events(job: Job) -> AsyncIterator[str]:
    """Yields the job's current state, then each newer one, and ends after the final state."""
    async for found in job_updates(job, idle=float(progress_settings.SSE_KEEPALIVE)):
        if found is None:
            yield ": keep-alive\n\n"
        else:
            yield _event(found.seq, job_frame(found.json))
