"""Where a reporter's time comes from and its states go: protocols and defaults. Worker processes.

A JobReporter reads time and sets timers through a Clock, and hands what it
reports to a StateSink. In a worker both are the real ones below: the system's
clocks with timers on the publisher's thread, and Redis, the job's row, signals
and the default storage. progress.testing gives a reporter a clock advanced by
hand and a sink that keeps everything in lists, so no test waits on the wall
clock or needs Redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Protocol

from django.conf import settings

from progress import signals
from progress.core import files, machine
from progress.core.publisher import Publisher, get_publisher
from progress.protocol.states import JobState, Mark


class Clock(Protocol):
    """Time and timers, as an event loop has them: the reporter's only source of either."""

    def monotonic(self) -> float:
        """Seconds that never go back, for throttle windows and rates."""
        ...

    def time(self) -> float:
        """Seconds since the epoch, for the ts of states and log lines."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Runs `callback` once `delay` seconds of this clock have passed; never inside this
        call, as the caller may hold a lock the callback takes."""
        ...


class StateSink(Protocol):
    """Where a reporter's states, log lines and files go."""

    def commit(self, state: JobState, floor: int, detail: str) -> int | None:
        """A change of state (STARTED, RETRY, a final one): kept before this returns. Its seq,
        or None if the job had already ended. `detail` is for staff only."""
        ...

    def publish(self, state: JobState, floor: int) -> Future[Mark | None]:
        """A progress state, handed over without waiting: called from the task's thread and
        from timers, under the reporter's lock. The future gives its epoch and seq."""
        ...

    def progressed(self, state: JobState, write: bool) -> None:
        """Runs on the task's thread after it published a progress state (not after a
        timer's): `write` says the row is due its update (DB_WRITE_INTERVAL)."""
        ...

    def publish_log(self, job_id: str, owner_id: int, lines: list[str]) -> Future[None]:
        """A batch of log lines, each the JSON of {"ts", "level", "text"}; the future is done
        once they are kept."""
        ...

    def attach_file(self, job_id: str, filename: str, content: bytes | str) -> str:
        """Keeps a result file of the job; returns the URL its owner downloads it from."""
        ...


def iso_time(ts: float) -> str:
    """A clock's time() as the rows keep times: what timezone.now() would give at `ts`."""
    return datetime.fromtimestamp(ts, tz=UTC if settings.USE_TZ else None).isoformat()


class SystemClock:
    """The system's clocks, and timers on the publisher's thread."""

    # The builtins themselves, not methods calling them: the reporter calls monotonic() on
    # every set_progress(), where one more Python call would show.
    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)

    def __init__(self, publisher: Publisher | None = None) -> None:
        self._publisher = get_publisher() if publisher is None else publisher

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self._publisher.call_later(delay, callback)


class LiveSink:
    """A worker's: states to Redis through the publisher, to the job's row and to signals;
    files to the default storage."""

    def __init__(self, publisher: Publisher | None = None) -> None:
        self._publisher = get_publisher() if publisher is None else publisher

    def commit(self, state: JobState, floor: int, detail: str) -> int | None:
        return machine.commit_state(state, floor=floor, detail=detail)

    def publish(self, state: JobState, floor: int) -> Future[Mark | None]:
        return self._publisher.publish(state, floor)

    def progressed(self, state: JobState, write: bool) -> None:
        # The publisher's thread never runs this: it must never wait on the database.
        if write:
            machine.write_progress(state)
        if signals.job_progress.has_listeners():
            signals.send(signals.job_progress, state, None)

    def publish_log(self, job_id: str, owner_id: int, lines: list[str]) -> Future[None]:
        return self._publisher.publish_log(job_id, owner_id, lines)

    def attach_file(self, job_id: str, filename: str, content: bytes | str) -> str:
        return files.attach_file(job_id, filename, content)
