"""The server-sent-events stream of one job, for clients that cannot use WebSockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from . import services
from .conf import progress_settings
from .events import FINAL_STATES, LAYER_JOB_MESSAGE, job_frame, job_group
from .models import Job


def _event(seq: int, job_json: str) -> str:
    return f"id: {seq}\ndata: {job_frame(job_json)}\n\n"


async def job_events(job: Job) -> AsyncIterator[str]:
    """Yields the job's current state, then each newer one, and ends after the final state."""
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("No channel layer is configured.")
    channel = await layer.new_channel()
    group = job_group(job.pk)
    # Join before reading the current state, so no state falls between the two.
    await layer.group_add(group, channel)
    receive: asyncio.Future[Any] | None = None
    try:
        seq, payload = await database_sync_to_async(services.latest_of)(job)
        yield _event(seq, payload)
        if json.loads(payload)["state"] in FINAL_STATES:
            return
        receive = asyncio.ensure_future(layer.receive(channel))
        while True:
            done, _pending = await asyncio.wait({receive}, timeout=progress_settings.SSE_KEEPALIVE)
            if not done:
                # Re-join too: channels-redis expires group membership.
                await layer.group_add(group, channel)
                yield ": keep-alive\n\n"
                continue
            message = receive.result()
            receive = asyncio.ensure_future(layer.receive(channel))
            if message.get("type") != LAYER_JOB_MESSAGE or message["seq"] <= seq:
                continue
            seq = message["seq"]
            yield _event(seq, message["json"])
            if message["final"]:
                return
    finally:
        if receive is not None and not receive.done():
            receive.cancel()
        await layer.group_discard(group, channel)
