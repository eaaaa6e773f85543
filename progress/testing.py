"""For tests of adopters' task code: run a task body as an in-memory job, assert it. Any process.

As channels.testing does for consumers, this runs task code where a test can
see everything it reports, with no Redis, Celery worker, or database writes of
job state:

    run = run_task(resize, images=3)
    assert run.result == {"resized": 3}
    assert run.progress[-1] == (3, 3, "Resizing")

Every set_progress() is recorded (no THROTTLE) unless asked, and time is a
FakeClock that moves only when a test advances it, so nothing waits on the wall
clock. `reporting()` is the same as a `with` block, for helpers that are not
tasks. run_group() cannot run in memory (its parts are jobs of their own).
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, cast

from django.core.serializers.json import DjangoJSONEncoder
from django.urls import NoReverseMatch, reverse

from progress.exceptions import ProgressError
from progress.protocol.states import JobDict, JobState, Mark, State
from progress.worker import groups, logs
from progress.worker.handlers import error_detail, error_message
from progress.worker.logs import JobLogHandler
from progress.worker.reporter import JobReporter, activate, deactivate
from progress.worker.sinks import iso_time

__all__ = ["FakeClock", "MemorySink", "TaskRun", "reporting", "run_task"]

# The wall-clock time a FakeClock starts at unless told: 2026-01-01T00:00:00Z.
EPOCH = 1_767_225_600.0
# The task name of a job that reporting() runs without one.
DEFAULT_TASK = "progress.testing"

NO_GROUPS = (
    "run_group() cannot run in memory: its parts are jobs of their own, run by workers. "
    "Test each part's task with run_task(), and the group in a test with Redis and a worker."
)


class FakeClock:
    """Time that moves only when a test advances it, and the timers due by then.

    A reporter under test reads its time here, and sets its timers here: when a throttle
    window ends with numbers unsent, advance() past it sends them, as a worker's timer would.
    """

    def __init__(self, start: float = EPOCH) -> None:
        self._now = 0.0
        self._wall = float(start)
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._wall + self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Keeps `callback` until advance() reaches its time, even for a delay of 0."""
        with self._lock:
            heapq.heappush(self._timers, (self._now + max(0.0, delay), next(self._order), callback))

    def advance(self, seconds: float) -> None:
        """Moves time on by `seconds`, running each timer due by then at its own time, in
        order (the ones those set too); advance(0) runs the ones due now."""
        if seconds < 0:
            raise ValueError("A clock never goes back.")
        end = self._now + seconds
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > end:
                    break
                due, _order, callback = heapq.heappop(self._timers)
                self._now = max(self._now, due)
            callback()
        self._now = end

    @property
    def pending(self) -> int:
        """Timers not run yet."""
        return len(self._timers)


# The epoch of every state a MemorySink numbers: its numbering never restarts.
MEMORY_EPOCH = "memory"


class MemorySink:
    """Where an in-memory job's states, log lines and files go: lists a test reads.

    States are numbered as Redis numbers them (seq), and once a final state is in, later
    ones are refused, as a job that has ended takes no other state.
    """

    def __init__(self) -> None:
        self.states: list[JobDict] = []
        self.log_lines: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {}
        self.detail = ""
        self._seq = 0
        self._lock = threading.Lock()

    def _keep(self, state: JobState, floor: int) -> int | None:
        with self._lock:
            if self.states and State(self.states[-1]["state"]).is_final:
                return None
            self._seq = max(self._seq, floor) + 1
            job = state.to_json(self._seq, MEMORY_EPOCH)
            self.states.append(cast(JobDict, json.loads(job)))
            return self._seq

    def commit(self, state: JobState, floor: int, detail: str) -> int | None:
        seq = self._keep(state, floor)
        if seq is not None and state.is_final:
            self.detail = detail
        return seq

    def publish(self, state: JobState, floor: int) -> Future[Mark | None]:
        future: Future[Mark | None] = Future()
        seq = self._keep(state, floor)
        future.set_result(None if seq is None else Mark(MEMORY_EPOCH, seq))
        return future

    def progressed(self, state: JobState, write: bool) -> None:
        """Nothing to write: no row holds this job, and no signal is sent for it."""

    def publish_log(self, job_id: str, owner_id: int, lines: list[str]) -> Future[None]:
        with self._lock:
            for line in lines:
                self.log_lines.append({"n": len(self.log_lines) + 1, **json.loads(line)})
        future: Future[None] = Future()
        future.set_result(None)
        return future

    def attach_file(self, job_id: str, filename: str, content: bytes | str) -> str:
        self.files[filename] = content.encode() if isinstance(content, str) else content
        try:
            return reverse("progress:download", args=[job_id])
        except NoReverseMatch:  # A project without progress's URLs: the path they would give.
            return f"/jobs/{job_id}/download/"


@dataclass
class TaskRun:
    """What a job run in memory reported, as its page would show it, and how it ended."""

    task: str
    job_id: str
    clock: FakeClock
    # Every state published, in order, the final one included: the job's JSON, with its seq.
    states: list[JobDict]
    # Every log line, numbered from 1: {"n", "ts", "level", "text"}.
    log_lines: list[dict[str, Any]]
    # The files attach_file() kept, by the name it was given.
    files: dict[str, bytes]
    # The body's return value as the job's result (JSON, as the page gets it).
    result: Any = None
    # What users read of a failure (a JobError's message, else an internal error's).
    error: str | None = None
    # What staff read of it in the admin: the exception's class and text.
    error_detail: str = ""
    # The exception the body raised, for pytest.raises-like checks.
    exception: BaseException | None = None
    _ran: bool = field(default=False, repr=False)

    @property
    def progress(self) -> list[tuple[float, float | None, str]]:
        """(current, total, message) of each PROGRESS state, as the bar showed them."""
        return [
            (s["current"], s["total"], s["message"])
            for s in self.states
            if s["state"] == "PROGRESS"
        ]

    @property
    def log(self) -> list[str]:
        """The text of each log line, in order."""
        return [str(line["text"]) for line in self.log_lines]

    @property
    def state(self) -> State | None:
        """The state the job is in: its last one."""
        return State(self.states[-1]["state"]) if self.states else None

    def call(self, body: Callable[..., Any], /, *args: Any, **params: Any) -> Any:
        """Runs a task's body as this job's task, as a worker would; returns what it returned.

        Its return value becomes `result`; an exception it raises is not raised here but
        kept, in `error`, `error_detail` and `exception`, and the job ends FAILURE.
        """
        if self._ran:
            raise ProgressError("A job runs one task body; use another run for the next.")
        self._ran = True
        try:
            value = body(*args, **params)
        except Exception as exc:
            self._failed(exc)
            if _from_run_group(exc):
                raise ProgressError(NO_GROUPS) from exc
            return None
        try:
            self.result = json.loads(json.dumps(value, cls=DjangoJSONEncoder))
        except (TypeError, ValueError):
            self.error = f"The task returned {type(value).__name__}, which is not JSON."
        return value

    def _failed(self, exc: BaseException) -> None:
        self.exception = exc
        self.error, self.error_detail = error_message(exc), error_detail(exc)


@contextmanager
def reporting(
    task: str = DEFAULT_TASK, *, throttle: float | bool = False, clock: FakeClock | None = None
) -> Iterator[TaskRun]:
    """Runs the block as the task of an in-memory job; yields the run it records.

    The job is STARTED on entry. On exit it ends SUCCESS, with the result of run.call()
    if the block used it, or FAILURE with its error; an exception out of the block ends it
    FAILURE too, and goes on. `throttle`: False records every update; True applies the
    task's own throttle or PROGRESS["THROTTLE"], as a worker would; a number, that many
    seconds. `clock` is the FakeClock to advance between updates (a new one by default).
    """
    clock = FakeClock() if clock is None else clock
    sink = MemorySink()
    created = iso_time(clock.time())
    state = JobState(id=str(uuid.uuid4()), owner_id=0, task=task, state=State.PENDING,
                     ts=clock.time(), created=created)  # fmt: skip
    seconds = None if throttle is True else float(throttle)
    reporter = JobReporter(state, clock=clock, sink=sink, throttle=seconds)
    run = TaskRun(task, state.id, clock, sink.states, sink.log_lines, sink.files)
    token = activate(reporter)
    try:
        with _job_logging():
            reporter.start()
            try:
                yield run
            except BaseException as exc:
                if not (isinstance(exc, ProgressError) and exc.args == (NO_GROUPS,)):
                    run._failed(exc)
                    if isinstance(exc, Exception) and _from_run_group(exc):
                        raise ProgressError(NO_GROUPS) from exc
                raise
            finally:
                _end(reporter, run)
    finally:
        deactivate(token)


def run_task(task: Callable[..., Any], /, *args: Any, **params: Any) -> TaskRun:
    """Runs a task's body (a Celery task, as registered, or a plain function) with `args` and
    `params` as an in-memory job's task, every update recorded; returns what it reported.

    The body runs as a direct call (`task(*args, **params)`), so a bound task's
    self.request.id is None and self.retry() raises the exception it is given. The params
    are not checked by the task's registered form, as progress.launch() checks them.
    """
    with reporting(_name_of(task)) as run:
        run.call(task, *args, **params)
    return run


def _end(reporter: JobReporter, run: TaskRun) -> None:
    """Ends the job as the worker's signal handlers would."""
    if run.error is None:
        reporter.finish(State.SUCCESS, result=run.result)
    else:
        reporter.finish(State.FAILURE, error=run.error, detail=run.error_detail)


def _name_of(task: Callable[..., Any]) -> str:
    name = getattr(task, "name", None)
    if isinstance(name, str) and name:
        return name
    return f"{getattr(task, '__module__', '')}.{getattr(task, '__qualname__', repr(task))}"


def _from_run_group(exc: BaseException) -> bool:
    """Whether `exc`, or one it was raised from or while handling, came out of run_group()."""
    code = groups.run_group.__code__
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback: TracebackType | None = current.__traceback__
        while traceback is not None:
            if traceback.tb_frame.f_code is code:
                return True
            traceback = traceback.tb_next
        current = current.__cause__ or current.__context__
    return False


@contextmanager
def _job_logging() -> Iterator[None]:
    """Task code's `logging` reaches the job's log, as in a worker child (progress.worker.logs),
    and records at PROGRESS["LOG_LEVEL"] pass the root logger."""
    root = logging.getLogger()
    added = not any(isinstance(h, JobLogHandler) for h in root.handlers)
    handler = logs.install()
    previous = root.level
    if previous > handler.level:
        root.setLevel(handler.level)
    try:
        yield
    finally:
        root.setLevel(previous)
        if added:
            root.removeHandler(handler)
