"""Open sockets counted per user in Redis, for MAX_SOCKETS. Web processes, on their event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async

from progress.conf import progress_settings
from progress.core import metrics
from progress.core.publisher import get_publisher
from progress.protocol.frames import CloseCode
from progress.protocol.layer import owner_of_group, session_digest
from progress.web import sessions
from progress.web.aio import background

logger = logging.getLogger(__name__)


async def open_socket(user_id: int, socket_id: str) -> bool:
    """Counts a new socket of the user; False when they already hold MAX_SOCKETS."""
    publisher = get_publisher()
    limit = int(progress_settings.MAX_SOCKETS)
    return await publisher.acall(
        publisher.store.add_socket(user_id, socket_id, limit, _stale_after())
    )


async def close_sockets(sockets: list[tuple[str, int]]) -> None:
    """Uncounts closed sockets, given as (socket id, user id) pairs."""
    publisher = get_publisher()
    await publisher.acall(publisher.store.remove_sockets(sockets))


async def touch_sockets(sockets: list[tuple[str, int]], recount: bool = False) -> None:
    """Marks (socket id, user id) pairs alive, so they are not counted as stale; `recount`
    counts them again after Redis lost its data."""
    if sockets:
        publisher = get_publisher()
        await publisher.acall(publisher.store.touch_sockets(sockets, _stale_after(), recount))


def _stale_after() -> float:
    """Seconds after which an unrenewed socket no longer counts: its server has gone."""
    return 3 * float(progress_settings.HEARTBEAT)


# Closes a socket with a close code; the consumer supplies it.
Closer = Callable[[CloseCode], Awaitable[None]]


@dataclass(slots=True, eq=False)
class _Socket:
    user_id: int
    session_key: str
    close: Closer
    # session_digest() of the key, which a logout's message names.
    session: str = field(init=False)

    def __post_init__(self) -> None:
        self.session = session_digest(self.session_key)


class Presence:
    """The sockets of this process: counted per user in Redis, closed on logout or shutdown.

    The hub owns one; its chores keep the counts fresh and re-check sessions.
    """

    def __init__(self) -> None:
        self._sockets: dict[str, _Socket] = {}
        self._releasing: list[tuple[str, int]] = []
        self._released: asyncio.Future[None] | None = None

    async def hold_socket(
        self, user_id: int, socket_id: str, session_key: str | None, close: Closer
    ) -> bool:
        """Runs on a socket's connect: counts it, or returns False at the user's limit."""
        if not await open_socket(user_id, socket_id):
            return False
        self._sockets[socket_id] = _Socket(user_id, session_key or "", close)
        metrics.OPEN_SOCKETS.inc()
        return True

    async def release_socket(self, socket_id: str) -> None:
        """Runs on a counted socket's disconnect; returns once it no longer counts."""
        held = self._sockets.pop(socket_id, None)
        if held is None:
            return
        metrics.OPEN_SOCKETS.dec()
        # Sockets closing together (a deploy, a network blip) share one round trip to
        # Redis, instead of each waiting for a connection of the pool.
        self._releasing.append((socket_id, held.user_id))
        if self._released is None:
            self._released = asyncio.ensure_future(self._release())
        await asyncio.shield(self._released)

    async def _release(self) -> None:
        await asyncio.sleep(0)  # Lets the other disconnects of this loop pass join in.
        batch, self._releasing, self._released = self._releasing, [], None
        try:
            await close_sockets(batch)
        except Exception as exc:  # Their entries age out after 3 x HEARTBEAT instead.
            logger.warning("Could not uncount %d closed sockets: %r", len(batch), exc)

    async def close_all(self, code: CloseCode) -> int:
        """Runs when the server shuts down: every socket closes with `code`, so clients know
        to reconnect elsewhere. Returns how many were closed."""
        sockets = list(self._sockets.values())
        await self._close(sockets, code)
        return len(sockets)

    async def _close(self, sockets: list[_Socket], code: CloseCode) -> None:
        results = await asyncio.gather(
            *(socket.close(code) for socket in sockets), return_exceptions=True
        )
        for result in results:
            if isinstance(result, Exception):
                logger.warning("Could not close a socket with %d: %r", code, result)

    def end_session(self, message: Mapping[str, Any]) -> None:
        """Runs when a user logged out somewhere: their sockets of that session close."""
        user_id = owner_of_group(str(message.get("group", "")))
        session = message.get("session") or ""
        ended = [
            socket
            for socket in self._sockets.values()
            if socket.user_id == user_id and (not session or socket.session == session)
        ]
        if ended:
            background(self._close(ended, CloseCode.SESSION_ENDED))

    def pairs(self) -> list[tuple[str, int]]:
        return [(socket_id, held.user_id) for socket_id, held in self._sockets.items()]

    async def recheck_sessions(self) -> None:
        """Closes the sockets whose session was deleted or expired, or whose user was
        deactivated or changed password, since they connected."""
        pairs = {(held.session_key, held.user_id) for held in self._sockets.values()}
        pairs = {pair for pair in pairs if pair[0]}
        if not pairs:
            return
        valid = await database_sync_to_async(sessions.signed_in)(pairs)
        ended = [
            held
            for held in self._sockets.values()
            if held.session_key and (held.session_key, held.user_id) not in valid
        ]
        if ended:
            logger.info("Closing %d sockets whose session ended", len(ended))
            await self._close(ended, CloseCode.SESSION_ENDED)
