"""The reporter's throttle, timers, rate and ETA, on a clock the tests advance by hand.

No test here waits on the wall clock or reaches Redis: each reporter gets a
FakeClock and an in-memory sink (progress.testing), and what the sink holds is
what a job's page would have been sent.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime

import pytest
from celery import shared_task
from django import forms
from django.conf import settings
from django.test import override_settings

from progress import attach_file, log, set_progress, track
from progress.core import registry
from progress.models import Job
from progress.protocol.states import JobDict, JobState, State
from progress.testing import FakeClock, MemorySink
from progress.worker.reporter import (
    LOG_BATCH,
    RATE_HALF_LIFE,
    JobEnded,
    JobReporter,
    activate,
    deactivate,
)

# A binary fraction, so that windows end exactly where the clock is advanced to.
THROTTLE = 0.25


class Sink(MemorySink):
    """An in-memory sink that also counts what a worker would have written and sent."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.rows: list[float] = []  # The current of each progress written to the row.
        self.progressed_calls = 0

    def progressed(self, state: JobState, write: bool) -> None:
        self.progressed_calls += 1
        if write:
            self.rows.append(state.current)

    def publish_log(self, job_id: str, owner_id: int, lines: list[str]) -> Future[None]:
        self.batches.append(len(lines))
        return super().publish_log(job_id, owner_id, lines)


def new_state(task: str = "tests.unit.job") -> JobState:
    return JobState(id=str(uuid.uuid4()), owner_id=1, task=task, state=State.PENDING)


def new_reporter(
    throttle: float | None = THROTTLE, task: str = "tests.unit.job"
) -> tuple[JobReporter, FakeClock, Sink]:
    clock, sink = FakeClock(), Sink()
    return JobReporter(new_state(task), clock=clock, sink=sink, throttle=throttle), clock, sink


def progress(sink: MemorySink) -> list[tuple[float, float | None, str]]:
    """What the bar showed: (current, total, message) of each progress state."""
    return [
        (s["current"], s["total"], s["message"]) for s in sink.states if s["state"] == "PROGRESS"
    ]


def last(sink: MemorySink) -> JobDict:
    return sink.states[-1]


@pytest.fixture
def running() -> Iterator[tuple[JobReporter, FakeClock, Sink]]:
    """A started job whose reporter set_progress() and track() reach."""
    reporter, clock, sink = new_reporter()
    token = activate(reporter)
    reporter.start()
    yield reporter, clock, sink
    deactivate(token)


# The throttle: at most one state per window, and never the last numbers lost.


def test_a_burst_shows_its_first_numbers_at_once_and_its_last_when_the_window_ends(
    running: tuple[JobReporter, FakeClock, Sink],
) -> None:
    _reporter, clock, sink = running
    for i in range(1, 200_001):
        set_progress(i, 200_000, "crunching")
    # The first update is not held; the 199,999 after it wait for the window to end.
    assert progress(sink) == [(1, 200_000, "crunching")]
    clock.advance(THROTTLE - 1 / 64)
    assert len(progress(sink)) == 1
    # With no further call, the timer sends the last numbers as the window ends.
    clock.advance(1 / 64)
    assert progress(sink) == [(1, 200_000, "crunching"), (200_000, 200_000, "crunching")]
    assert last(sink)["percent"] == 100
    clock.advance(60)
    assert len(progress(sink)) == 2 and clock.pending == 0


def test_a_fast_loop_publishes_once_per_window_whatever_the_number_of_calls(
    running: tuple[JobReporter, FakeClock, Sink],
) -> None:
    _reporter, clock, sink = running
    calls = 0
    for _ in range(2048):  # Two seconds of calls, ten every ~millisecond.
        for _ in range(10):
            calls += 1
            set_progress(calls, None, "spinning")
        clock.advance(1 / 1024)
    clock.advance(THROTTLE)
    shown = [s for s in sink.states if s["state"] == "PROGRESS"]
    # One at once, one per window after it, and the last numbers after the loop stopped.
    assert 2 / THROTTLE <= len(shown) <= 2 / THROTTLE + 2
    gaps = [b["ts"] - a["ts"] for a, b in itertools.pairwise(shown)]
    assert min(gaps) >= THROTTLE
    assert shown[-1]["current"] == calls == 20_480
    assert [s["seq"] for s in sink.states] == list(range(1, len(sink.states) + 1))


def test_each_window_shows_the_numbers_of_its_end_not_of_its_start(
    running: tuple[JobReporter, FakeClock, Sink],
) -> None:
    _reporter, clock, sink = running
    set_progress(1, 10, "one")
    clock.advance(THROTTLE / 2)
    set_progress(2, 10, "two")
    set_progress(3, None, None)  # total and message keep their values
    clock.advance(THROTTLE / 2)
    assert progress(sink) == [(1, 10, "one"), (3, 10, "two")]


def test_the_first_state_and_each_change_of_state_go_out_at_once() -> None:
    reporter, clock, sink = new_reporter(throttle=60)
    reporter.start()
    assert last(sink)["state"] == "STARTED"
    reporter.update(1, 10, "first")
    # The first progress is not held for the 60 s window.
    assert progress(sink) == [(1, 10, "first")]
    reporter.update(2, 10, "held")
    reporter.retry("flaky")
    assert (last(sink)["state"], last(sink)["current"]) == ("RETRY", 2)
    assert last(sink)["message"] == "Retrying: flaky"
    # The retried attempt's timer, due in 60 s, moves nothing once the job has moved on.
    clock.advance(60)
    assert last(sink)["state"] == "RETRY"

    again = JobReporter(
        JobState.from_dict(dict(last(sink)), owner_id=1), clock=clock, sink=sink, throttle=60
    )
    again.start()
    assert last(sink)["state"] == "STARTED"
    again.update(3, 10, "second attempt")
    again.update(4, 10, "held")
    again.finish(State.SUCCESS, result={"ok": True})
    final = last(sink)
    assert (final["state"], final["current"], final["message"]) == ("SUCCESS", 4, "held")
    assert final["result"] == {"ok": True} and final["eta"] is None
    assert [s["state"] for s in sink.states] == [
        "STARTED", "PROGRESS", "RETRY", "STARTED", "PROGRESS", "SUCCESS",
    ]  # fmt: skip


@pytest.mark.parametrize("final", [State.FAILURE, State.REVOKED])
def test_a_job_that_has_ended_takes_no_other_state(final: State) -> None:
    reporter, clock, sink = new_reporter()
    reporter.start()
    reporter.update(1, 10, None)
    reporter.update(2, 10, None)  # held, with a timer set
    reporter.finish(final, error="boom" if final is State.FAILURE else None)
    clock.advance(THROTTLE)
    # A task that reports on after its job ended (a cancel, a shutdown) is stopped there.
    with pytest.raises(JobEnded):
        reporter.update(3, 10, None)
    assert last(sink)["state"] == final.value and last(sink)["current"] == 2


def test_track_reports_one_unit_per_item(running: tuple[JobReporter, FakeClock, Sink]) -> None:
    _reporter, clock, sink = running
    assert list(track(range(50), message="items")) == list(range(50))
    # 0 at once; the other 50 wait for the window's end.
    assert progress(sink) == [(0, 50, "items")]
    clock.advance(THROTTLE)
    assert progress(sink)[-1] == (50, 50, "items")


def test_unthrottled_every_update_and_every_item_is_shown() -> None:
    reporter, _clock, sink = new_reporter(throttle=0)
    token = activate(reporter)
    try:
        set_progress(1, 3, "a")
        for _ in track(["x", "y"], message="b"):
            pass
    finally:
        deactivate(token)
    assert progress(sink) == [(1, 3, "a"), (0, 2, "b"), (1, 2, "b"), (2, 2, "b")]


def test_the_last_numbers_of_a_long_track_arrive_when_it_ends() -> None:
    reporter, clock, sink = new_reporter()
    token = activate(reporter)
    try:
        for i, _ in enumerate(track(range(100_000), message="items")):
            if i % 1000 == 0:
                clock.advance(1 / 64)  # 100 of them: a loop of about 1.6 s
    finally:
        deactivate(token)
    clock.advance(THROTTLE)
    assert progress(sink)[-1] == (100_000, 100_000, "items")
    assert len(progress(sink)) <= (100 / 64) / THROTTLE + 2


def test_outside_a_job_the_calls_do_nothing() -> None:
    set_progress(1, 2, "nobody listens")
    assert list(track([1, 2, 3])) == [1, 2, 3]
    log("nobody reads this")
    with pytest.raises(RuntimeError, match="only inside a job"):
        attach_file("a.txt", "x")


# The rate and the ETA.


def test_the_rate_and_eta_follow_the_speed() -> None:
    reporter, clock, sink = new_reporter(throttle=0)
    reporter.start()
    # One unit every 0.12 s: about 8.3 units a second.
    for i in range(1, 6):
        clock.advance(0.12)
        reporter.update(i, 1000, None)
    slow = last(sink)
    assert slow["rate"] == pytest.approx(1 / 0.12, rel=1e-3)
    assert slow["eta"] == pytest.approx(995 * 0.12, rel=1e-3)

    # Ten times faster: the estimate forgets the old speed by half every RATE_HALF_LIFE s.
    current = 5
    for _ in range(50):
        clock.advance(0.12)
        current += 10
        reporter.update(current, 1000, None)
    fast = last(sink)
    weight = 1 - math.exp(-50 * 0.12 * math.log(2) / RATE_HALF_LIFE)
    expected = 1 / 0.12 + weight * (10 / 0.12 - 1 / 0.12)
    assert fast["rate"] == pytest.approx(expected, rel=1e-2)
    assert fast["eta"] == pytest.approx((1000 - current) / expected, rel=1e-2)
    assert fast["eta"] is not None and slow["eta"] is not None and fast["eta"] < slow["eta"] / 4


def test_no_total_means_a_rate_but_no_eta() -> None:
    reporter, clock, sink = new_reporter(throttle=0)
    reporter.start()
    clock.advance(1)
    reporter.update(4, None, None)
    assert last(sink)["rate"] == 4 and last(sink)["eta"] is None


def test_updates_closer_than_50_ms_keep_the_previous_estimate() -> None:
    reporter, clock, sink = new_reporter(throttle=0)
    reporter.start()
    clock.advance(1)
    reporter.update(2, 10, None)
    clock.advance(0.01)
    reporter.update(9, 10, None)  # 700 units/s over 10 ms would be noise
    assert last(sink)["rate"] == 2 and last(sink)["eta"] == 4


# Time, the row and a task's own throttle.


def test_every_time_a_job_shows_comes_from_its_clock() -> None:
    clock, sink = FakeClock(start=1_000_000.0), MemorySink()
    reporter = JobReporter(new_state(), clock=clock, sink=sink, throttle=0)
    reporter.start()
    clock.advance(2.5)
    reporter.update(1, 2, None)
    reporter.log("hello")
    clock.advance(1)
    reporter.finish(State.SUCCESS)
    started, progressed, finished = sink.states
    assert started["ts"] == 1_000_000.0 and progressed["ts"] == 1_000_002.5
    assert finished["ts"] == 1_000_003.5 and sink.log_lines[0]["ts"] == 1_000_002.5
    assert started["started"] == datetime.fromtimestamp(1_000_000.0, tz=UTC).isoformat()
    assert finished["finished"] == datetime.fromtimestamp(1_000_003.5, tz=UTC).isoformat()


def test_the_row_is_written_at_a_low_rate_and_only_from_the_tasks_thread() -> None:
    reporter, clock, sink = new_reporter()
    for i in range(1, 21):  # 5 s, an update every THROTTLE
        reporter.update(i, 50, None)
        clock.advance(THROTTLE)
    # DB_WRITE_INTERVAL is 2 s: the first numbers, then one write every 2 s.
    assert sink.rows == [1, 9, 17]
    # Timer-sent states neither write nor fire job_progress.
    reporter.update(51, 60, None)
    reporter.update(52, 60, None)
    calls = sink.progressed_calls
    clock.advance(THROTTLE)
    assert last(sink)["current"] == 52 and sink.progressed_calls == calls


@pytest.mark.django_db
def test_a_reporter_from_a_row_numbers_its_states_above_the_rows(job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(seq=7)
    job.refresh_from_db()
    sink = MemorySink()
    reporter = JobReporter(job, clock=FakeClock(), sink=sink)
    reporter.start()
    assert last(sink)["seq"] == 8 and last(sink)["id"] == str(job.pk)
    reporter.update(1, 2, None)
    assert reporter.floor == 9


@shared_task(name="tests.unit.throttled")
def throttled() -> None:
    """A task registered with its own throttle in one test."""


class NoParams(forms.Form):
    """A task's form without params."""


@pytest.fixture
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))


@pytest.mark.usefixtures("own_registry")
def test_a_task_can_override_the_throttle() -> None:
    registry.register(title="Throttled", form=NoParams, throttle=0)(throttled)
    with override_settings(PROGRESS={**settings.PROGRESS, "THROTTLE": 60}):
        own, _clock, own_sink = new_reporter(throttle=None, task=throttled.name)
        held, clock, held_sink = new_reporter(throttle=None)
    for reporter in (own, held):
        for i in range(1, 4):
            reporter.update(i, 3, None)
    # This task's 0 sends each update; the others wait out THROTTLE's 60 s.
    assert [c for c, _t, _m in progress(own_sink)] == [1, 2, 3]
    assert [c for c, _t, _m in progress(held_sink)] == [1]
    clock.advance(59.9)
    assert [c for c, _t, _m in progress(held_sink)] == [1]
    clock.advance(0.1)
    assert [c for c, _t, _m in progress(held_sink)] == [1, 3]


@pytest.mark.parametrize("throttle", [-1, True, "0.1", float("nan")])
def test_a_bad_task_throttle_is_refused(throttle: object) -> None:
    with pytest.raises(ValueError, match="throttle"):
        registry.register(title="Bad", form=NoParams, throttle=throttle)  # type: ignore[arg-type]


# Log lines: batched once per window, a flood cut to its newest.


def test_log_lines_go_out_at_most_once_per_window() -> None:
    reporter, clock, sink = new_reporter()
    reporter.log("first")  # at once: it opens the window
    reporter.log("second", "WARNING")
    reporter.log("third")
    assert sink.batches == [1]
    clock.advance(THROTTLE)
    assert sink.batches == [1, 2]
    assert [(x["n"], x["level"], x["text"]) for x in sink.log_lines] == [
        (1, "INFO", "first"), (2, "WARNING", "second"), (3, "INFO", "third"),
    ]  # fmt: skip


def test_a_flood_keeps_the_newest_lines_and_says_how_many_were_cut() -> None:
    reporter, clock, sink = new_reporter(throttle=60)
    reporter.log("first")
    for i in range(1000):
        reporter.log(f"line {i}")
    clock.advance(60)
    texts = [line["text"] for line in sink.log_lines]
    assert texts[0] == "first" and texts[-1] == "line 999"
    assert texts[1] == f"… {1000 - LOG_BATCH} lines skipped: more than {LOG_BATCH} at once"
    assert len(texts) == 2 + LOG_BATCH and sink.batches == [1, 1 + LOG_BATCH]


def test_a_finishing_job_sends_its_unsent_lines_before_its_final_state() -> None:
    reporter, _clock, sink = new_reporter(throttle=60)
    reporter.log("first")
    reporter.log("last words")
    reporter.finish(State.SUCCESS)
    assert [line["text"] for line in sink.log_lines] == ["first", "last words"]
    assert last(sink)["state"] == "SUCCESS"


def test_a_long_line_is_cut() -> None:
    reporter, _clock, sink = new_reporter()
    reporter.log("x" * 5000)
    assert len(sink.log_lines[0]["text"]) == 1000


def test_a_task_ended_from_outside_is_stopped_within_a_window_even_while_timers_publish() -> None:
    """A worker's shutdown ended the job while its task reports every half window: the
    timer, not the task, then sends each window's numbers, and the task must still be told
    at its next report, not whenever its own thread happens to find a window over."""
    reporter, clock, sink = new_reporter()
    reporter.start()
    reporter.update(1, 100, None)  # Sent at once: it opens the first window.
    ended = dataclasses.replace(reporter.state, state=State.FAILURE, error="Stopped")
    sink.commit(ended, 0, "")  # The worker's main process ends it.
    step = THROTTLE / 2
    with pytest.raises(JobEnded):
        for done in range(2, 100):
            clock.advance(step)
            reporter.update(done, 100, None)
            # Two reports a window: the timer's refused state told the task by the next one.
            assert done < 2 + 4, "the task ran on for more than a window after its job ended"
