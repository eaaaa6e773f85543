"""The WebSocket consumer at /ws/progress/: one per tab, pushing the user's job states."""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from . import services
from .conf import progress_settings
from .events import (
    Action,
    CloseCode,
    ErrorCode,
    FrameError,
    LayerJobMessage,
    error_frame,
    job_frame,
    job_group,
    parse_client_frame,
    snapshot_frame,
    user_group,
)
from .exceptions import JobNotFound

logger = logging.getLogger(__name__)


class ProgressConsumer(AsyncWebsocketConsumer):
    """Sends a snapshot on connect, then every new state of the user's and subscribed jobs."""

    async def connect(self) -> None:
        """Runs on the handshake; anonymous users are refused before it completes."""
        self.user = self.scope.get("user")
        self.groups_joined: set[str] = set()
        self.seen: dict[str, int] = {}
        self.heartbeat: asyncio.Task[None] | None = None
        self.counted = False
        if self.user is None or not self.user.is_authenticated:
            await self.close()
            return
        await self.accept()
        if not await services.open_socket(self.user, self.channel_name):
            await self.send(
                text_data=error_frame(ErrorCode.TOO_MANY_SOCKETS, "Too many open tabs.")
            )
            await self.close(code=CloseCode.TOO_MANY_SOCKETS)
            return
        self.counted = True
        # Join before reading the snapshot, so no state falls between the two.
        await self._join(user_group(self.user.pk))
        jobs = await database_sync_to_async(services.snapshot)(self.user)
        self.seen = {job_id: seq for job_id, seq, _json in jobs}
        await self.send(text_data=snapshot_frame([payload for _id, _seq, payload in jobs]))
        self.heartbeat = asyncio.create_task(self._keep_alive())

    async def disconnect(self, code: int) -> None:
        """Runs when the socket closes, for whatever reason."""
        if self.heartbeat is not None:
            self.heartbeat.cancel()
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        if self.counted:
            await services.close_socket(self.user, self.channel_name)

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
                await database_sync_to_async(services.cancel)(self.user, frame.job)
        except JobNotFound:
            await self.send(text_data=error_frame(ErrorCode.NOT_FOUND, "No such job."))

    async def progress_job(self, message: LayerJobMessage) -> None:
        """Runs for each job state the publisher sends to one of this socket's groups."""
        await self._send_job(message["job_id"], message["seq"], message["json"])

    async def _subscribe(self, job_id: str) -> None:
        job = await database_sync_to_async(services.get_visible_job)(self.user, job_id)
        if job.owner_id != self.user.pk:
            await self._join(job_group(job.pk))
        seq, job_json = await database_sync_to_async(services.latest_of)(job)
        # Always answer a subscribe with the job's state, even one the tab has seen.
        await self._send_job(str(job.pk), seq, job_json, force=True)

    async def _unsubscribe(self, job_id: str) -> None:
        job = await database_sync_to_async(services.get_visible_job)(self.user, job_id)
        group = job_group(job.pk)
        if group in self.groups_joined:
            self.groups_joined.discard(group)
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _send_job(self, job_id: str, seq: int, job_json: str, force: bool = False) -> None:
        if not force and seq <= self.seen.get(job_id, 0):
            return
        self.seen[job_id] = max(seq, self.seen.get(job_id, 0))
        await self.send(text_data=job_frame(job_json))

    async def _join(self, group: str) -> None:
        self.groups_joined.add(group)
        await self.channel_layer.group_add(group, self.channel_name)

    async def _keep_alive(self) -> None:
        """Runs for the socket's life: re-joins groups before channels-redis expires them."""
        while True:
            await asyncio.sleep(float(progress_settings.HEARTBEAT))
            try:
                for group in list(self.groups_joined):
                    await self.channel_layer.group_add(group, self.channel_name)
                await services.open_socket(self.user, self.channel_name)
            except Exception as exc:  # Redis may be restarting; the next beat tries again.
                logger.warning("Socket heartbeat failed for user %s: %r", self.user.pk, exc)
