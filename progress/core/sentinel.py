"""A blocking Redis pool that follows Sentinel's primary. Any process, publisher loop."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError, TimeoutError

from progress.conf import progress_settings

logger = logging.getLogger(__name__)


class BlockingSentinelConnectionPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """redis-py's Sentinel pool, which waits for a free connection as the blocking pool does,
    and asks the sentinels for the primary again at least every `recheck` seconds."""

    def __init__(
        self,
        service_name: str,
        sentinel_manager: Sentinel,
        *,
        recheck: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)
        self.recheck = recheck
        self._checked = 0.0

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        """Runs before each command. redis-py asks the sentinels only when it connects, so a
        primary that was frozen or cut off, and came back still a primary in its own eyes
        until the sentinels demote it (some 8 s), would keep our connections and take
        writes the new primary never sees; after a failover none stays longer than this."""
        if self.is_master and time.monotonic() - self._checked >= self.recheck:
            self._checked = time.monotonic()
            try:
                # Disconnects the idle connections when the primary has moved.
                await self.get_master_address()
            except (ConnectionError, TimeoutError) as exc:
                # The pooled connections may still reach the primary; a command that
                # cannot will fail with its own error.
                logger.warning("Could not ask the Redis sentinels for the primary: %r", exc)
        connection = await super().get_connection(*args, **kwargs)
        await self._leave_old_primary(connection)
        return connection

    async def release(self, connection: Any) -> None:
        """Runs when a command is done with its connection: one that was in use when the
        primary moved (waiting on a frozen one, say) goes back to the pool disconnected, so
        no idle connection stays on the old primary until it happens to be picked again."""
        await self._leave_old_primary(connection)
        await super().release(connection)

    async def _leave_old_primary(self, connection: Any) -> None:
        address = (connection.host, connection.port)
        if self.master_address is not None and address != self.master_address:
            # Reconnects to the current primary on its next command.
            await connection.disconnect()


def sentinel_pool(
    url: str, sentinels: Sequence[tuple[str, int]], master: str, options: dict[str, Any]
) -> redis.ConnectionPool:
    """A pool of connections to whichever server the sentinels name primary of `master`;
    `url` gives only the database number and credentials."""
    parts = urlsplit(url)
    connection: dict[str, Any] = {**options, "db": int(parts.path.strip("/") or 0)}
    for key, value in (("username", parts.username), ("password", parts.password)):
        if value:
            connection[key] = unquote(value)
    manager = Sentinel(
        [(host, int(port)) for host, port in sentinels],
        # Sentinels are asked on every reconnect: a dead one must not hold that up.
        sentinel_kwargs={
            "socket_timeout": 2,
            "socket_connect_timeout": 2,
            **progress_settings.REDIS_SENTINEL_KWARGS,
        },
    )
    return BlockingSentinelConnectionPool(master, manager, **connection)
