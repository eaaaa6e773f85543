"""The running job's reporter, behind set_progress() and track() (calls.py). Worker processes.

A call stores the numbers on the running job's reporter and, at most once per
THROTTLE seconds, hands a copy to its sink. When calls stop inside a throttle
window, a timer sends the last numbers, so the latest state of a burst is never
lost. Time and timers come from its clock. In a worker the sink is Redis and the
row, and the clock the system's, with timers on the publisher's thread
(progress.worker.sinks); progress.testing gives a reporter fakes of both.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, TypeVar

from celery.exceptions import Ignore

from progress.conf import progress_settings
from progress.core import registry
from progress.models import Job
from progress.protocol.states import MAX_LOG_LINE_LENGTH, JobState, Mark, State, dumps_compact
from progress.worker.sinks import Clock, LiveSink, StateSink, SystemClock, iso_time

if TYPE_CHECKING:
    from progress.worker.steps import Step

T = TypeVar("T")

logger = logging.getLogger(__name__)

# Log lines one throttle window sends at most; beyond them the oldest are cut.
LOG_BATCH = 200
# Seconds a finishing job waits for its last log lines to be kept.
LOG_FLUSH_TIMEOUT = 5.0

# Seconds over which the rate estimate forgets old speed; long enough that the
# ETA does not jump, short enough to follow a job that speeds up.
RATE_HALF_LIFE = 5.0

_current: ContextVar[JobReporter | None] = ContextVar("progress_reporter", default=None)

# A module-level binding: in a loop of a million calls, each attribute lookup saved counts.
_dumps = dumps_compact


class JobEnded(Ignore):  # type: ignore[misc]  # Celery ships no types: Ignore is Any.
    """Raised by set_progress() and track() in a task whose job was ended or stopped from
    outside it (a cancel, a worker's shutdown, the sweep): the task stops at its next report.
    Celery's Ignore, so the worker records nothing more and logs no traceback."""


class JobReporter:
    """The running job of one task call: its latest numbers and what was last published.

    `job` is its row, or the state of a job no row holds (progress.testing). `clock` gives
    time and timers, and `sink` takes what is reported (progress.worker.sinks; by default a
    worker's). `throttle` overrides the task's own and PROGRESS["THROTTLE"].
    """

    def __init__(
        self,
        job: Job | JobState,
        *,
        clock: Clock | None = None,
        sink: StateSink | None = None,
        throttle: float | None = None,
    ) -> None:
        if isinstance(job, JobState):
            self.state, self.floor = job, 0
        else:
            self.state, self.floor = job.to_state(), job.seq
        clock = SystemClock() if clock is None else clock
        self.sink: StateSink = LiveSink() if sink is None else sink
        # Bound once: update() reads the clock on every call.
        self._monotonic = clock.monotonic
        self._time = clock.time
        self._call_later = clock.call_later
        if throttle is None:
            throttle = registry.throttle_of(self.state.task)
        self._throttle = float(progress_settings.THROTTLE if throttle is None else throttle)
        self._db_interval = float(progress_settings.DB_WRITE_INTERVAL)
        self._due = 0.0
        self._next_db_write = 0.0
        self._dirty = False
        self._timer_set = False
        self._closed = False
        # The task's thread and the publisher's timer both publish; this keeps them to one
        # publish per window and one pending timer. The hot path never takes it.
        self._lock = threading.Lock()
        self._sample_time = self._monotonic()
        self._sample_current = float(self.state.current or 0)
        self._rate: float | None = None
        # The innermost step of stages() while one runs (None at the job's own level), and
        # what set_progress() writes to: that step, or the job's state.
        self._scope: Step | None = None
        self._target: JobState | Step = self.state
        # Log lines not sent yet, each the JSON of {ts, level, text} (the store numbers
        # them), sent at most once per throttle window; the timer and the task's thread
        # share them under _log_lock.
        self._log_lock = threading.Lock()
        self._log_lines: list[str] = []
        self._log_skipped = 0
        self._log_due = 0.0
        self._log_timer = False
        # Set by run_group(): the job then ends with its parts, not with its task.
        self.grouped = False
        # Set once Redis refused a progress state: the job was ended (a cancel, the sweep)
        # or stopped (a worker's shutdown) outside this task.
        self.ended = False
        # A group job running its chord callback ends saying its parts are all done, not
        # "Combining ...", whatever the callback reported.
        self._final_message = (
            f"{parts} of {parts} parts done"
            if isinstance(job, Job) and job.callback and (parts := job.parts.count())
            else None
        )

    @property
    def scope(self) -> Step | None:
        """The innermost step of stages() while one runs; None at the job's own level."""
        return self._scope

    @scope.setter
    def scope(self, step: Step | None) -> None:
        self._scope = step
        self._target = self.state if step is None else step

    # Lifecycle, called from Celery's signals.

    def start(self) -> None:
        """Runs in task_prerun: the job goes STARTED at once."""
        state = self.state
        state.state = State.STARTED
        state.ts = self._time()
        state.started = state.started or iso_time(state.ts)
        self._commit(state)
        self._sample_time = self._monotonic()

    def begin_group(self, parts: int, total: float | None) -> None:
        """Runs in run_group(), once the parts are recorded: from now on the parts' sum is
        the job's progress, and the task's return does not end it."""
        self.grouped = self._closed = True
        state = dataclasses.replace(
            self.state, state=State.PROGRESS, current=0, total=total, ts=self._time(), eta=None
        )
        state.message = f"0 of {parts} parts done"
        self._commit(state)

    def retry(self, reason: object) -> None:
        """Runs in task_retry: the job goes RETRY until the next attempt starts."""
        self._closed = True
        state = dataclasses.replace(self.state, state=State.RETRY, ts=self._time(), eta=None)
        state.message = f"Retrying: {reason}"
        self._commit(state)

    def finish(
        self, final: State, *, result: Any = None, error: str | None = None, detail: str = ""
    ) -> None:
        """Runs in task_success or task_failure: the final state goes out at once."""
        self._closed = True
        # The last lines are kept before the final state, which copies them to the row.
        sent = self._flush_log()
        if sent is not None:
            try:
                sent.result(LOG_FLUSH_TIMEOUT)
            except Exception as exc:  # Redis away: the lines are lost, the job still ends.
                logger.warning("Last log lines of job %s not kept: %r", self.state.id, exc)
        now = self._time()
        state = dataclasses.replace(
            self.state,
            state=final,
            result=result,
            error=error,
            eta=None,
            ts=now,
            finished=iso_time(now),
        )
        if self._final_message and final is State.SUCCESS:
            state.message = self._final_message
        self._commit(state, detail)

    def _commit(self, state: JobState, detail: str = "") -> None:
        seq = self.sink.commit(state, self.floor, detail)
        if seq is not None:
            self.floor = max(self.floor, seq)

    def _note_seq(self, future: Future[Mark | None]) -> None:
        """Runs once a progress state is numbered: seq resumes above it if Redis loses the key.
        A state refused means the job was ended or stopped elsewhere: the task is told at its
        next report (JobEnded)."""
        if not future.cancelled() and future.exception() is None:
            mark = future.result()
            if mark is None:
                self.ended = True
            elif mark.seq > self.floor:
                self.floor = mark.seq

    # Log lines, from task code's logging and progress.log().

    def log(self, text: object, level: str = "INFO") -> None:
        """Runs for each log line of the task: kept in a batch sent once per throttle window."""
        line = _dumps(
            {"ts": round(self._time(), 3), "level": str(level),
             "text": str(text)[:MAX_LOG_LINE_LENGTH]}
        )  # fmt: skip
        with self._log_lock:
            self._log_lines.append(line)
            if len(self._log_lines) > LOG_BATCH:
                # A flood: the newest lines matter most, and a note says how many were cut.
                del self._log_lines[0]
                self._log_skipped += 1
            if self._log_timer:
                return
            wait = self._log_due - self._monotonic()
            if wait > 0:
                self._log_timer = True
                self._call_later(wait, self._flush_log_later)
                return
        self._flush_log()

    def _flush_log_later(self) -> None:
        """Runs on the publisher's thread when a throttle window ends with lines unsent."""
        with self._log_lock:
            self._log_timer = False
        self._flush_log()

    def _flush_log(self) -> Future[None] | None:
        """Hands the unsent lines to the publisher; the future is done once they are kept."""
        with self._log_lock:
            lines, self._log_lines = self._log_lines, []
            if self._log_skipped:
                note = f"… {self._log_skipped} lines skipped: more than {LOG_BATCH} at once"
                lines.insert(0, _dumps({"ts": round(self._time(), 3), "level": "WARNING",
                                        "text": note}))  # fmt: skip
                self._log_skipped = 0
            self._log_due = self._monotonic() + self._throttle
        if not lines:
            return None
        return self.sink.publish_log(self.state.id, self.state.owner_id, lines)

    # Progress, called from task code.

    def update(self, current: float, total: float | None, message: str | None) -> None:
        """Runs on every set_progress(): the hot path, so it only stores and compares."""
        # Inside stages() the numbers are the current step's; _emit() maps them onto the job.
        target = self._target
        target.current = current
        if total is not None:
            target.total = total
        if message is not None:
            target.message = message
        # Set after the numbers: a timer that sees it clear has already copied them.
        self._dirty = True
        # Read into a local, then called: cheaper than self._monotonic(), a method-style call
        # on an instance attribute, which CPython 3.11 does not specialize.
        monotonic = self._monotonic
        if monotonic() >= self._due:
            self._publish_due()
        elif not self._timer_set:
            self._arm()

    def track(self, iterable: Iterable[T], total: float | None, message: str | None) -> Iterator[T]:
        """track() inside a job, with update() inlined: a call per item costs more than its body."""
        self.update(0, total, message)
        target = self._target
        monotonic = self._monotonic
        for done, item in enumerate(iterable, 1):
            yield item
            # Total and message were set above; a set_progress() inside the loop may change
            # the message, and it stays until the next one.
            target.current = done
            self._dirty = True
            if monotonic() >= self._due:
                self._publish_due()
            elif not self._timer_set:
                self._arm()

    def _publish_due(self) -> None:
        """Runs on the task's thread once its window seems over; the timer may have won the race."""
        with self._lock:
            now = self._monotonic()
            if now < self._due:
                self._arm_locked(now)
                return
            sent = self._emit(now)
        # Outside the lock: a timer must never wait on the database.
        write = now >= self._next_db_write
        if write:
            self._next_db_write = now + self._db_interval
        self.sink.progressed(sent, write)
        self._stop_if_ended()

    def changed(self) -> None:
        """Runs when a step begins or ends: its label goes out, throttled like any update."""
        self._dirty = True
        if self._monotonic() >= self._due:
            self._publish_due()
        elif not self._timer_set:
            self._arm()

    def _arm(self) -> None:
        """Runs on the task's thread, at most once a window: while reports come faster than
        the throttle, the timer sends them, and this is where the task hears of a refusal."""
        with self._lock:
            self._arm_locked(self._monotonic())
        self._stop_if_ended()

    def _stop_if_ended(self) -> None:
        """Runs on the task's thread after it handed numbers over or set the timer."""
        if self.ended:
            raise JobEnded(f"Job {self.state.id} was ended or stopped outside its task.")

    def _arm_locked(self, now: float) -> None:
        """Makes sure one timer sends the numbers when the current window ends."""
        if not self._timer_set:
            self._timer_set = True
            self._call_later(max(0.0, self._due - now), self._flush)

    def _flush(self) -> None:
        """Runs on the publisher's thread when a throttle window ends with numbers unsent."""
        with self._lock:
            self._timer_set = False
            if not self._dirty or self._closed:
                return
            now = self._monotonic()
            if now < self._due:
                # The task's thread published since this timer was set: wait for its window.
                self._arm_locked(now)
                return
            self._emit(now)

    def _emit(self, now: float) -> JobState:
        """Runs under the lock: hands a copy of the numbers to the sink."""
        self._due = now + self._throttle
        self._dirty = False
        state = self.state
        state.state = State.PROGRESS
        state.ts = self._time()
        if self._scope is not None:
            state.current, state.total, state.message = self._scope.resolve()
        self._estimate(now)
        sent = dataclasses.replace(state)
        self.sink.publish(sent, self.floor).add_done_callback(self._note_seq)
        return sent

    def _estimate(self, now: float) -> None:
        """Smooths the rate over time (an exponential moving average) and derives the ETA."""
        state = self.state
        elapsed = now - self._sample_time
        if elapsed < 0.05:
            return
        current = float(state.current)
        speed = max(0.0, (current - self._sample_current) / elapsed)
        weight = 1.0 - math.exp(-elapsed * math.log(2) / RATE_HALF_LIFE)
        self._rate = speed if self._rate is None else self._rate + weight * (speed - self._rate)
        self._sample_time, self._sample_current = now, current
        state.rate = self._rate
        if state.total and self._rate:
            state.eta = max(0.0, (float(state.total) - current) / self._rate)
        else:
            state.eta = None


def activate(reporter: JobReporter) -> Token[JobReporter | None]:
    """Makes `reporter` the target of set_progress() in this task call."""
    return _current.set(reporter)


def deactivate(token: Token[JobReporter | None]) -> None:
    _current.reset(token)


# The running job's reporter, None outside a launched job: ContextVar.get itself, so that
# set_progress() (calls.py) pays for no Python call of its own.
current_reporter = _current.get
