"""The WebSocket consumer at /ws/progress/: one per tab. Web processes."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from redis.exceptions import RedisError

from progress.conf import progress_settings
from progress.core import commands, reads
from progress.exceptions import JobNotFound
from progress.middleware import DIRECT_SEND
from progress.protocol.frames import (
    Action,
    CloseCode,
    ErrorCode,
    FrameError,
    end_frame,
    error_frame,
    job_frame,
    log_frame,
    parse_client_frame,
    parse_held,
    replaced_jobs,
    snapshot_frame,
)
from progress.protocol.layer import user_group
from progress.web.hub import Hub, get_hub
from progress.web.outbox import OneJob, Outbox

logger = logging.getLogger(__name__)


class ProgressConsumer(AsyncWebsocketConsumer):
    """Sends a snapshot on connect, then every new state of the user's and subscribed jobs."""

    # The socket has no channel of its own: the process's hub receives each
    # state once and hands it to this socket's outbox (see progress/web/hub.py).
    channel_layer_alias = "progress.no-channel-per-socket"

    async def connect(self) -> None:
        """Runs on the handshake; anonymous users are refused before it completes."""
        self.user = self.scope.get("user")
        self.socket_id = uuid.uuid4().hex
        # Jobs of other users this socket watches: job id -> (owner's group, filter).
        self.watching: dict[str, tuple[str, OneJob]] = {}
        # Job frames skip the session middleware's send when the stack allows it.
        self.outbox = Outbox(self.scope.get(DIRECT_SEND) or self.base_send)
        self.hub: Hub | None = None
        if self.user is None or not self.user.is_authenticated:
            await self.close()
            return
        await self.accept()
        try:
            await self._start()
        except (RedisError, OSError) as exc:
            # Redis is out of reach (restarting): the client's backoff retries shortly.
            logger.warning("Socket of user %s could not start: %r", self.user.pk, exc)
            await self.end(CloseCode.TRY_AGAIN_LATER)

    async def _start(self) -> None:
        """Runs once the handshake is accepted: counts the socket, joins, sends the snapshot."""
        self.hub = await get_hub()
        session = self.scope.get("session")
        session_key = getattr(session, "session_key", None)
        if not await self.hub.presence.hold_socket(
            self.user.pk, self.socket_id, session_key, self.end
        ):
            await self.end(CloseCode.TOO_MANY_SOCKETS)
            return
        try:
            held = parse_held(self.scope.get("query_string", b"").decode("latin-1"))
            bad_held = None
        except FrameError as exc:
            held, bad_held = None, exc
        # The outbox holds what arrives while the snapshot is read, until it is out.
        jobs = await self.hub.join_user(self.user.pk, self.outbox)
        shown = {job_id: found.mark for job_id, found in jobs}
        replaced = None if held is None else replaced_jobs(held, shown)
        await self.send(text_data=snapshot_frame([found.json for _id, found in jobs], replaced))
        self.outbox.resume(shown)
        if bad_held is not None:
            await self.send(text_data=error_frame(bad_held.code, bad_held.detail))

    async def end(self, code: CloseCode) -> None:
        """Runs when the server closes this socket: the user's limit, a logout, a shutdown."""
        frame = end_frame(code)
        if frame is not None:
            await self.send(text_data=frame)
        await self.close(code=code)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """Runs when the socket closes: Channels' own, without its closing of old database
        connections. That is a hop to the one database thread per socket, which a storm of
        a thousand disconnects queues in front of the reconnects' handshakes; every
        database call here closes its connections already (database_sync_to_async)."""
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def disconnect(self, code: int) -> None:
        """Runs when the socket closes, for whatever reason."""
        self.outbox.close()
        if self.hub is None:
            return
        await self.hub.leave(user_group(self.user.pk), self.outbox)
        for group, listener in self.watching.values():
            await self.hub.leave(group, listener)
        await self.hub.presence.release_socket(self.socket_id)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Runs for each client frame: parse it, then subscribe, unsubscribe or cancel."""
        try:
            frame = parse_client_frame(text_data, bytes_data, progress_settings.MAX_FRAME_BYTES)
        except FrameError as exc:
            if exc.close_code is not None:
                await self.close(code=exc.close_code)
            else:
                await self.send(text_data=error_frame(exc.code, exc.detail))
            return
        try:
            if frame.action is Action.SUBSCRIBE:
                await self._subscribe(frame.job)
            elif frame.action is Action.UNSUBSCRIBE:
                await self._unsubscribe(frame.job)
            else:
                await database_sync_to_async(commands.cancel)(self.user, frame.job)
        except JobNotFound:
            await self.send(text_data=error_frame(ErrorCode.NOT_FOUND, "No such job."))

    async def _subscribe(self, job_id: str) -> None:
        job = await database_sync_to_async(reads.get_visible_job)(self.user, job_id)
        key = str(job.pk)
        if job.owner_id != self.user.pk and key not in self.watching:
            assert self.hub is not None
            group, listener = user_group(job.owner_id), OneJob(self.outbox, key)
            self.watching[key] = (group, listener)
            await self.hub.join(group, listener)
        found = await database_sync_to_async(reads.latest_of)(job)
        if not found.final and self.hub is not None:
            self.hub.expect(user_group(job.owner_id), {key: found.mark})
        # Always answer a subscribe with the job's state, even one the tab has seen.
        self.outbox.offer(key, found.mark, job_frame(found.json), force=True)
        # Then its log: live lines from now on, and the kept ones (the page drops repeats by n).
        self.outbox.logs_of.add(key)
        lines = await database_sync_to_async(reads.job_log)(job)
        if lines:
            self.outbox.offer_log(key, 0, log_frame(key, lines))

    async def _unsubscribe(self, job_id: str) -> None:
        job = await database_sync_to_async(reads.get_visible_job)(self.user, job_id)
        self.outbox.logs_of.discard(str(job.pk))
        watched = self.watching.pop(str(job.pk), None)
        if watched is not None and self.hub is not None:
            await self.hub.leave(*watched)
