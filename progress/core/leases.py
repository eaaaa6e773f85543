"""Leases: while a process runs a job, a key in Redis says so. Worker processes, publisher loop.

The sweep (progress.core.maintenance) ends a running job whose lease lapsed:
its whole worker was killed, or its machine is gone. Renewals run on the
publisher's loop, apart from the task's progress calls, so a long silent step
keeps its lease.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from progress.conf import progress_settings

if TYPE_CHECKING:
    from progress.core.publisher import Publisher

logger = logging.getLogger(__name__)


class Leases:
    """The leases of the jobs this process runs, renewed three times per lease."""

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self._held: set[str] = set()

    def hold(self, job_id: str) -> None:
        """Runs when a task of this process starts a job: renewed until release()."""
        ttl = float(progress_settings.WORKER_LOST_AFTER)
        if not ttl:
            return
        publisher = self._publisher
        publisher.call_soon(self._held.add, job_id)
        publisher.submit(publisher.store.renew_leases([job_id], ttl))

    def release(self, job_id: str) -> None:
        """Runs when the job's task call ends here, however it ended."""
        if not progress_settings.WORKER_LOST_AFTER:
            return
        publisher = self._publisher
        publisher.call_soon(self._held.discard, job_id)
        publisher.submit(publisher.store.drop_lease(job_id))

    async def renew_forever(self) -> None:
        """Runs forever on the publisher's loop, from its start."""
        while True:
            ttl = float(progress_settings.WORKER_LOST_AFTER)
            await asyncio.sleep(ttl / 3 if ttl else 5.0)
            if not ttl or not self._held:
                continue
            try:
                await self._publisher.store.renew_leases(list(self._held), ttl)
            except Exception as exc:  # Redis restarting: the next round puts them back.
                logger.warning("Could not renew %d job leases: %r", len(self._held), exc)
