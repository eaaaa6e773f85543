"""Many real WebSocket clients of /ws/progress/ on one event loop, in a thread of their own.

The fault tests watch hundreds of sockets at once while they break the stack
from the test's own thread; each client keeps the newest state of every job it
was told of, as the JavaScript client does, and can reconnect on its own.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from progress.protocol.states import Mark, NewestSeqs
from tests.support import wait_for

T = TypeVar("T")

FINAL = frozenset({"SUCCESS", "FAILURE", "REVOKED"})


@dataclass(eq=False)
class Client:
    """One socket: what it was told, and how its connections ended."""

    headers: dict[str, str]
    # The newest state of each job, by the protocol's epoch and seq rule (NewestSeqs).
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    marks: NewestSeqs = field(default_factory=NewestSeqs)
    # Every seq received per job, in order, to spot gaps and regressions.
    seqs: dict[str, list[int]] = field(default_factory=dict)
    snapshots: int = 0
    close_codes: list[int] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    connection: ClientConnection | None = None
    # Reconnect at once after a close, as a worst-case client without backoff would.
    reconnect: bool = True

    def take(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "snapshot":
            self.snapshots += 1
            for job in frame["jobs"]:
                self._keep(job)
        elif frame["type"] == "job":
            self._keep(frame["job"])
        elif frame["type"] == "error":
            self.errors.append(frame)

    def _keep(self, job: dict[str, Any]) -> None:
        self.seqs.setdefault(job["id"], []).append(job["seq"])
        mark = Mark(job.get("epoch", ""), job["seq"], job["state"] in FINAL)
        if self.marks.note(job["id"], mark):
            self.jobs[job["id"]] = job

    def state(self, job_id: str) -> str | None:
        job = self.jobs.get(job_id)
        return None if job is None else str(job["state"])

    def ended(self, job_ids: list[str]) -> bool:
        return all(self.state(job_id) in FINAL for job_id in job_ids)


class Crowd:
    """Clients of one server, run by a loop in a background thread."""

    def __init__(self, ws_url: str, origin: str) -> None:
        self.ws_url = ws_url
        self.origin = origin
        self.clients: list[Client] = []
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._tasks: list[asyncio.Task[None]] = []

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def add(self, cookie: str, count: int = 1) -> list[Client]:
        """Opens `count` sockets with this session cookie; returns once each has its snapshot."""
        added = [Client({"Cookie": cookie, "Origin": self.origin}) for _ in range(count)]
        self.clients.extend(added)
        for client in added:
            self.loop.call_soon_threadsafe(self._start, client)
        self.wait(lambda: all(client.snapshots for client in added), timeout=120)
        return added

    def _start(self, client: Client) -> None:
        self._tasks.append(self.loop.create_task(self._keep(client)))

    async def _keep(self, client: Client) -> None:
        """Runs for the life of the crowd: one connection after another, reading frames."""
        while True:
            try:
                async with connect(
                    self.ws_url, additional_headers=client.headers, open_timeout=30,
                    max_queue=None, ping_interval=None,
                ) as connection:  # fmt: skip
                    client.connection = connection
                    try:
                        async for text in connection:
                            client.take(json.loads(text))
                    except ConnectionClosed:
                        pass  # The code is read below, whoever closed.
                    client.close_codes.append(connection.close_code or 1006)
            except (OSError, InvalidHandshake):
                # Refused or reset: the server is not up yet, or going down.
                client.close_codes.append(1006)
                await asyncio.sleep(0.05)
            client.connection = None
            if not client.reconnect:
                return

    def wait(self, condition: Callable[[], object], timeout: float) -> float:
        """Waits until `condition` holds; returns the seconds it took."""
        started = time.monotonic()
        wait_for(condition, timeout=timeout, interval=0.02)
        return time.monotonic() - started

    def drop_all(self) -> None:
        """Cuts every client's TCP connection at once, as a network failure would."""

        async def drop() -> None:
            for client in self.clients:
                if client.connection is not None:
                    client.connection.transport.abort()

        self.run(drop())

    def close(self) -> None:
        async def stop() -> None:
            for client in self.clients:
                client.reconnect = False
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        try:
            self.run(stop(), timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()
