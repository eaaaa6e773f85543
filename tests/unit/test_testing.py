"""progress.testing: task bodies run with an in-memory job, their reports asserted.

No test here has the database (none is marked django_db): a run that wrote job
state, or reached Redis, would fail.
"""

from __future__ import annotations

import datetime
import itertools
import logging
from typing import Any

import pytest
from celery import Task, shared_task
from django import forms
from django.conf import settings
from django.test import override_settings

from progress import (
    JobError,
    ProgressRecorder,
    State,
    attach_file,
    bar,
    log,
    register,
    run_group,
    set_progress,
    stages,
    track,
)
from progress.core import registry
from progress.exceptions import ProgressError
from progress.testing import FakeClock, TaskRun, reporting, run_task
from progress.worker.handlers import INTERNAL_ERROR

logger = logging.getLogger(__name__)


class StepsForm(forms.Form):
    steps = forms.IntegerField(min_value=1)


@pytest.fixture(autouse=True)
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made here are forgotten after each test."""
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))


# Task bodies, as adopters write them.


def count(steps: int) -> dict[str, int]:
    for i in range(1, steps + 1):
        set_progress(i, steps, f"step {i} of {steps}")
    return {"counted": steps}


@shared_task(name="tests.unit.testing.resize")
def resize(images: int) -> dict[str, int]:
    for _ in track(range(images), message="Resizing"):
        pass
    return {"resized": images}


@shared_task(bind=True, name="tests.unit.testing.recorded")
def recorded(self: Task, seconds: int) -> str:
    recorder = ProgressRecorder(self)
    for i in range(seconds):
        meta = recorder.set_progress(i + 1, seconds, description=f"On iteration {i}")
        assert meta["percent"] == round((i + 1) / seconds * 100, 2)
    return "done"


@shared_task(name="tests.unit.testing.grouped")
def grouped(sizes: list[int]) -> None:
    run_group([resize.s(images=size) for size in sizes], units=sizes)


def statement(rows: int) -> dict[str, Any]:
    """Two steps, as statements/tasks.py has them: a helper's bar, then track()."""
    with stages("Fetching", "Writing") as steps:
        steps.next()
        with bar(total=rows, message="rows") as counter:
            for _ in range(rows):
                counter.update()
        steps.next()
        lines = [f"line {n}" for n in track(range(rows), message="lines")]
    url = attach_file("statement.txt", "\n".join(lines))
    return {"download": url, "lines": len(lines)}


def chatty() -> None:
    log("Starting")
    logger.info("Fetched %d rows", 3)
    logger.debug("below PROGRESS['LOG_LEVEL']")
    logging.getLogger("celery.worker").info("the machinery's own line")
    log("Disk almost full", "WARNING")
    try:
        raise ValueError("secret internals")
    except ValueError:
        logger.exception("Step failed")


def failing(kind: str) -> None:
    set_progress(1, 4, "first")
    if kind == "job":
        raise JobError("Disk full\nat /var/lib/x")
    raise RuntimeError("password=hunter2")


# run_task()


def test_a_plain_function_runs_with_every_update_recorded() -> None:
    run = run_task(count, 3)
    assert isinstance(run, TaskRun)
    assert run.result == {"counted": 3} and run.error is None and run.state is State.SUCCESS
    assert run.progress == [(1, 3, "step 1 of 3"), (2, 3, "step 2 of 3"), (3, 3, "step 3 of 3")]
    assert [s["state"] for s in run.states] == ["STARTED", *["PROGRESS"] * 3, "SUCCESS"]
    assert [s["seq"] for s in run.states] == [1, 2, 3, 4, 5]
    assert {s["id"] for s in run.states} == {run.job_id}
    assert run.task == f"{__name__}.count" == run.states[0]["task"]
    final = run.states[-1]
    assert (final["current"], final["total"], final["percent"], final["result"]) == (
        3, 3, 100, {"counted": 3},
    )  # fmt: skip


def test_a_registered_celery_task_runs_with_its_params() -> None:
    register(title="Resize", form=StepsForm)(resize)
    run = run_task(resize, images=4)
    assert run.result == {"resized": 4} and run.task == "tests.unit.testing.resize"
    assert run.progress == [(n, 4, "Resizing") for n in range(5)]


def test_a_bound_task_written_for_celery_progress_reports_through_its_recorder() -> None:
    run = run_task(recorded, 2)
    assert run.result == "done"
    assert run.progress == [(1, 2, "On iteration 0"), (2, 2, "On iteration 1")]


def test_steps_bars_and_files_show_as_the_page_would_show_them() -> None:
    run = run_task(statement, 2)
    assert run.progress == [
        (0, 100, "Step 1 of 2: Fetching"),
        (0, 100, "Step 1 of 2: Fetching — rows (0 / 2)"),
        (25, 100, "Step 1 of 2: Fetching — rows (1 / 2)"),
        (50, 100, "Step 1 of 2: Fetching — rows (2 / 2)"),
        (50, 100, "Step 2 of 2: Writing"),
        (50, 100, "Step 2 of 2: Writing — lines (0 / 2)"),
        (75, 100, "Step 2 of 2: Writing — lines (1 / 2)"),
        (100, 100, "Step 2 of 2: Writing — lines (2 / 2)"),
        (100, 100, "Step 2 of 2: Writing — lines (2 / 2)"),  # the block ends all done
    ]
    assert run.files == {"statement.txt": b"line 0\nline 1"}
    assert run.result == {"download": f"/progress/jobs/{run.job_id}/download/", "lines": 2}


def test_logging_and_log_calls_become_the_jobs_log() -> None:
    run = run_task(chatty)
    assert run.log == ["Starting", "Fetched 3 rows", "Disk almost full", "Step failed"]
    assert [(x["n"], x["level"]) for x in run.log_lines] == [
        (1, "INFO"), (2, "INFO"), (3, "WARNING"), (4, "ERROR"),
    ]  # fmt: skip
    assert "secret internals" not in str(run.log_lines), "a traceback reached the log"


def test_the_log_handler_and_the_root_level_are_put_back() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    run_task(chatty)
    assert root.handlers == handlers and root.level == level
    logger.warning("after the run")  # no job: it reaches no reporter


def test_a_job_error_fails_the_job_with_its_message() -> None:
    run = run_task(failing, "job")
    assert run.state is State.FAILURE and run.result is None
    assert run.error == "Disk full" == run.states[-1]["error"]
    assert isinstance(run.exception, JobError)
    assert run.states[-1]["current"] == 1 and run.progress == [(1, 4, "first")]


def test_any_other_exception_shows_users_an_internal_error_and_staff_its_text() -> None:
    run = run_task(failing, "bug")
    assert run.error == INTERNAL_ERROR == run.states[-1]["error"]
    assert "hunter2" not in str(run.states)
    assert run.error_detail == "builtins.RuntimeError: password=hunter2"
    assert isinstance(run.exception, RuntimeError)


def test_a_result_becomes_json_as_the_page_gets_it() -> None:
    run = run_task(lambda: {"when": datetime.date(2026, 1, 2), "pair": (1, 2)})
    assert run.result == {"when": "2026-01-02", "pair": [1, 2]}
    bad = run_task(object)
    assert bad.state is State.FAILURE
    assert bad.error == "The task returned object, which is not JSON."


def test_run_group_cannot_run_in_memory_and_says_so() -> None:
    with pytest.raises(ProgressError, match=r"run_group\(\) cannot run in memory") as raised:
        run_task(grouped, [2, 3])
    assert not isinstance(raised.value.__cause__, ProgressError)
    with pytest.raises(ProgressError, match="cannot run in memory"), reporting() as run:
        grouped([1])
    assert run.state is State.FAILURE


# The demo project's tasks, as they are (tests/unit does not install their apps).


def test_the_demo_count_task_reports_logs_and_fails_where_asked() -> None:
    from workers import demo

    run = run_task(demo.count, steps=20, delay=0)
    assert run.result == {"counted": 20}
    assert run.progress[-1] == (20, 20, "step 20 of 20") and len(run.progress) == 20
    assert run.log == [f"Counted {i} of 20" for i in range(2, 21, 2)]

    failed = run_task(demo.count, steps=3, delay=0, fail_at=2)
    assert failed.state is State.FAILURE
    assert failed.error == "Failed at step 2 of 3, as asked."
    assert failed.progress == [(1, 3, "step 1 of 3")]
    assert failed.log == ["Counted 1 of 3", "Failing at step 2, as asked"]


def test_the_statements_task_builds_its_file_in_two_steps() -> None:
    from statements.tasks import build

    run = run_task(build, month="2026-01", rows=4, seconds=0)
    assert run.result["rows"] == 4 and run.result["download"].endswith(f"/{run.job_id}/download/")
    fetching = "Step 1 of 2: Fetching transactions — transactions (1 / 4)"
    assert run.progress[2] == (12.5, 100, fetching)
    assert run.progress[-1] == (100, 100, "Step 2 of 2: Writing the statement — lines (4 / 4)")
    assert run.files["statement-2026-01.csv"].startswith(b"line,amount\r\n")


# reporting(): the same as a with-block, with the throttle and the clock at hand.


def test_a_helper_reports_inside_a_block() -> None:
    def helper(items: list[str]) -> int:
        with bar(total=len(items), message="items") as counter:
            for _ in items:
                counter.update()
        return len(items)

    with reporting() as run:
        assert helper(["a", "b"]) == 2
    assert run.progress == [(0, 2, "items"), (1, 2, "items"), (2, 2, "items")]
    assert run.state is State.SUCCESS and run.result is None


def test_an_exception_out_of_the_block_ends_the_job_and_goes_on() -> None:
    with pytest.raises(JobError), reporting() as run:
        raise JobError("No rows to read.")
    assert run.state is State.FAILURE and run.error == "No rows to read."


def test_call_runs_a_task_body_inside_the_block() -> None:
    with reporting("tests.unit.count") as run:
        assert run.call(count, 2) == {"counted": 2}
        with pytest.raises(ProgressError, match="one task body"):
            run.call(count, 2)
    assert run.result == {"counted": 2} and run.states[-1]["task"] == "tests.unit.count"


def test_with_the_throttle_a_loop_shows_one_state_per_window_and_its_last() -> None:
    clock = FakeClock()
    with reporting(throttle=0.25, clock=clock) as run:
        for i in range(1, 101):  # 2 s of calls, one every 20 ms
            set_progress(i, 100, "crunching")
            clock.advance(0.02)
        # The window's timer sent the last numbers once the calls stopped.
        clock.advance(0.25)
        assert run.progress[-1] == (100, 100, "crunching")
    assert 8 <= len(run.progress) <= 2 / 0.25 + 2
    shown = [s for s in run.states if s["state"] == "PROGRESS"]
    assert all(b["ts"] - a["ts"] >= 0.25 - 1e-9 for a, b in itertools.pairwise(shown))
    # The clock moved, so the rate is known: 50 units a second.
    assert shown[-1]["rate"] == pytest.approx(50, rel=0.05)


def test_throttle_true_applies_the_tasks_own_or_the_setting() -> None:
    register(title="Resize", form=StepsForm, throttle=0)(resize)
    with override_settings(PROGRESS={**settings.PROGRESS, "THROTTLE": 60}):
        with reporting("tests.unit.testing.resize", throttle=True) as own:
            own.call(resize, 3)
        with reporting(throttle=True) as held:
            for i in range(1, 4):
                set_progress(i, 3)
    assert len(own.progress) == 4
    # Within THROTTLE's 60 s only the first update shows; the final state has the last.
    assert held.progress == [(1, 3, "")] and held.states[-1]["current"] == 3


def test_time_is_the_fake_clocks() -> None:
    clock = FakeClock(start=1_000_000.0)
    with reporting(clock=clock) as run:
        set_progress(1, 2)
        clock.advance(10)
        log("later")
    assert run.states[0]["ts"] == 1_000_000.0 and run.states[-1]["ts"] == 1_000_010.0
    assert run.log_lines[0]["ts"] == 1_000_010.0


# FakeClock


def test_a_fake_clock_runs_its_timers_in_order_each_at_its_time() -> None:
    clock = FakeClock(start=100.0)
    seen: list[tuple[str, float]] = []
    clock.call_later(2, lambda: seen.append(("b", clock.monotonic())))
    clock.call_later(1, lambda: seen.append(("a", clock.monotonic())))
    clock.call_later(0, lambda: clock.call_later(0.5, lambda: seen.append(("c", clock.time()))))
    assert seen == [] and clock.pending == 3  # never inside call_later
    clock.advance(1.5)
    assert seen == [("c", 100.5), ("a", 1.0)] and clock.monotonic() == 1.5
    clock.advance(0.5)
    assert seen[-1] == ("b", 2.0) and clock.pending == 0
    with pytest.raises(ValueError):
        clock.advance(-1)
