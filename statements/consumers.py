"""A socket of the statements app that tells its user when a statement is ready."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from progress import JobDict, ProgressConsumerMixin, State

from .receivers import TASK


class NoticeConsumer(ProgressConsumerMixin, AsyncJsonWebsocketConsumer):
    """Sends `{"type": "ready", "job": id, "state": ...}` when a statement job of the user ends."""

    async def connect(self) -> None:
        """Runs on the handshake: only signed-in users, and then all of their jobs."""
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        await self.accept()
        await self.watch_user_jobs(replay=False)

    async def job_update(self, job: JobDict) -> None:
        """Runs for each state of the user's jobs (ProgressConsumerMixin)."""
        if job["task"] == TASK and State(job["state"]).is_final:
            await self.send_json({"type": "ready", "job": job["id"], "state": job["state"]})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Runs for each client frame: this socket only pushes, so it answers with an error."""
        await self.send_json({"type": "error", "error": "push_only"})
