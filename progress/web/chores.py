"""The web process's own maintenance: the sweep for jobs whose worker was lost, on a timer.

Web processes only, on the server's event loop. It runs for as long as the
process serves, whether or not any socket is open: progress.server starts it
with the server, and the hub makes sure of it on its first socket (servers
other than progress.server). One process of all sweeps each turn (a Redis
lock). Celery beat's progress.sweep_lost_jobs does the same from any worker
that is alive, and `manage.py progress sweep --every N` from a terminal.
"""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async

from progress.conf import progress_settings
from progress.core import maintenance
from progress.core.publisher import get_publisher
from progress.web.aio import alive, run_chores

logger = logging.getLogger(__name__)


async def take_sweep_turn(seconds: float) -> bool:
    """True when this process should sweep for lost jobs now; see sweep_lost_jobs()."""
    publisher = get_publisher()
    return await publisher.acall(publisher.store.take_sweep_turn(seconds))


async def sweep() -> None:
    """Ends the jobs whose worker was lost; one process of all sweeps each turn."""
    interval = float(progress_settings.WORKER_LOST_AFTER) / 3
    if await take_sweep_turn(interval * 0.9):
        await database_sync_to_async(maintenance.sweep_lost_jobs)()


_task: asyncio.Task[None] | None = None


def start() -> asyncio.Task[None] | None:
    """Runs when the server starts, or on a hub's first socket: starts this process's
    maintenance on the running loop, once per loop. None when WORKER_LOST_AFTER is 0."""
    global _task
    if float(progress_settings.WORKER_LOST_AFTER) <= 0:
        return None
    loop = asyncio.get_running_loop()
    if alive(_task) and _task is not None and _task.get_loop() is loop:
        return _task
    interval = float(progress_settings.WORKER_LOST_AFTER) / 3
    _task = loop.create_task(run_chores([(sweep, interval)], "Maintenance"))
    return _task


async def stop() -> None:
    """Runs when the server shuts down: the maintenance task ends with the loop."""
    global _task
    task, _task = _task, None
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task})
