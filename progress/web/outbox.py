"""What the hub hands frames to: Listener, OneJob and each socket's Outbox. Web processes.

Web processes only, on the event loop of the hub.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from progress.core import metrics
from progress.protocol.states import Mark, NewestSeqs
from progress.web.aio import run_eagerly

logger = logging.getLogger(__name__)

# Log frames one slow socket may have waiting; older ones are dropped.
LOG_FRAMES_WAITING = 50

# Bound once: it runs for each frame.
_delivered = metrics.MESSAGES_DELIVERED.inc


class Listener(Protocol):
    """Anything the hub hands job frames to: a socket's Outbox, an SSE stream's queue."""

    def offer(self, job_id: str, mark: Mark, frame: str) -> None:
        """Runs on the hub's loop for each state of a job in one of the listener's groups."""


class OneJob:
    """Passes on the states of one job only: a socket or stream watching a job it does not own.

    It listens on the owner's group, which carries all of the owner's jobs, so
    the publisher sends each state to one group and nobody manages a group per job.
    """

    __slots__ = ("job_id", "listener")

    def __init__(self, listener: Listener, job_id: str) -> None:
        self.listener = listener
        self.job_id = job_id

    def offer(self, job_id: str, mark: Mark, frame: str) -> None:
        """Runs for each state of the owner's jobs."""
        if job_id == self.job_id:
            self.listener.offer(job_id, mark, frame)

    def offer_log(self, job_id: str, last: int, frame: str) -> None:
        """Runs for each batch of log lines of the owner's jobs."""
        offer_log = getattr(self.listener, "offer_log", None)
        if job_id == self.job_id and offer_log is not None:
            offer_log(job_id, last, frame)


class Outbox:
    """The frames on their way to one socket, in order and without blocking the hub.

    While the socket keeps up, each frame is written at once. While a write
    waits (the client reads slowly), newer frames wait here, one per job: a
    newer state replaces an older one, so the socket catches up on the latest
    states, and the final one, instead of a backlog.
    """

    __slots__ = ("_busy", "_logs", "_send", "_waiting", "closed", "logs_of", "seen")

    def __init__(self, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self._send = send
        # Busy until the consumer has sent its snapshot (resume()), so nothing overtakes it.
        self._busy = True
        self._waiting: dict[str, tuple[Mark, str]] = {}
        # Log frames waiting, in order; unlike states, each carries lines of its own.
        self._logs: deque[str] = deque(maxlen=LOG_FRAMES_WAITING)
        self.seen = NewestSeqs()
        # Jobs whose log lines this socket takes: the ones it subscribed to.
        self.logs_of: set[str] = set()
        self.closed = False

    def offer_log(self, job_id: str, last: int, frame: str) -> None:
        """Runs for each batch of log lines of a job in the socket's groups."""
        if job_id not in self.logs_of or self.closed:
            return
        if self._busy:
            # A socket that reads slowly loses the oldest batches; the page's replay on
            # its next subscribe has the lines Redis keeps.
            self._logs.append(frame)
            return
        self._busy = True
        run_eagerly(self._write(frame))

    def offer(self, job_id: str, mark: Mark, frame: str, force: bool = False) -> None:
        """Runs for each new state of a job this socket watches; `force` resends a seen one."""
        if not self.seen.note(job_id, mark) and not force:
            return
        if self.closed:
            return
        if self._busy:
            self._waiting[job_id] = (mark, frame)
            return
        self._busy = True
        run_eagerly(self._write(frame))

    def resume(self, shown: dict[str, Mark]) -> None:
        """Runs once the snapshot is sent: what it showed is not sent again."""
        for job_id, mark in shown.items():
            self.seen.note(job_id, mark)
            waiting = self._waiting.get(job_id)
            if waiting is not None and (waiting[0] == mark or mark.replaces(waiting[0])):
                del self._waiting[job_id]
        if self._waiting or self._logs:
            run_eagerly(self._write(None))
        else:
            self._busy = False

    def close(self) -> None:
        """Runs on disconnect: frames still waiting have nowhere to go."""
        self.closed = True
        self._waiting.clear()
        self._logs.clear()

    async def _write(self, frame: str | None) -> None:
        try:
            if frame is not None:
                await self._send({"type": "websocket.send", "text": frame})
                _delivered()
            while (self._waiting or self._logs) and not self.closed:
                if self._waiting:
                    job_id = next(iter(self._waiting))
                    _seq, frame = self._waiting.pop(job_id)
                else:
                    frame = self._logs.popleft()
                await self._send({"type": "websocket.send", "text": frame})
                _delivered()
        except Exception as exc:  # The client went away; its consumer's disconnect cleans up.
            logger.debug("Socket write failed: %r", exc)
            self.close()
        finally:
            self._busy = False
