"""Reporting from helpers: stages() splits a job into steps, bar() counts like tqdm.

Unthrottled, in memory (progress.testing): every update is a state, so each one
can be checked, and none needs Redis.
"""

from __future__ import annotations

import pytest

from progress import bar, set_progress, stages, track
from progress.testing import TaskRun, reporting
from progress.worker.reporter import current_reporter


def shown(run: TaskRun) -> tuple[float, float | None, str]:
    """What the bar shows now."""
    return run.progress[-1]


def test_steps_name_the_step_and_fill_only_its_share_of_the_bar() -> None:
    with reporting() as run, stages("Downloading", "Parsing", "Uploading") as steps:
        steps.next()
        set_progress(5, 10, "file 5")
        # The job's numbers are percent of the whole; the step's own counts are in the message.
        assert shown(run) == (16.67, 100, "Step 1 of 3: Downloading — file 5 (5 / 10)")
        assert run.states[-1]["percent"] == 16.67
        steps.next()
        assert shown(run) == (33.33, 100, "Step 2 of 3: Parsing")
        for _ in track(range(4)):
            pass
        assert shown(run) == (66.67, 100, "Step 2 of 3: Parsing — 4 / 4")
        steps.next()
        set_progress(1, 2)
        assert shown(run) == (83.33, 100, "Step 3 of 3: Uploading — 1 / 2")
    # The block ends with its whole share done.
    assert shown(run)[:2] == (100, 100) and run.states[-1]["percent"] == 100


def test_nested_steps_divide_their_step_and_weights_divide_the_whole() -> None:
    with reporting() as run:
        for name in stages("Fetch", "Build", weights=[1, 3]):
            if name == "Fetch":
                assert shown(run) == (0, 100, "Step 1 of 2: Fetch")
                continue
            for inner in stages("Compile", "Link"):
                if inner == "Link":
                    set_progress(1, 2, "libfoo")
                    # Fetch (a quarter) + half of Build (37.5) + half of Link's half (18.75).
                    assert shown(run) == (
                        25 + 37.5 + 18.75,
                        100,
                        "Step 2 of 2: Build — Step 2 of 2: Link — libfoo (1 / 2)",
                    )
    assert shown(run)[:2] == (100, 100)


def test_a_bar_counts_like_tqdm_inside_a_step() -> None:
    with reporting() as run, stages("One", "Two") as steps:
        steps.next("Counting rows")
        with bar(total=4, message="rows") as counter:
            counter.update()
            counter.update(2)
            assert shown(run) == (0.75 * 50, 100, "Step 1 of 2: Counting rows — rows (3 / 4)")
            counter.set(4, "all rows")
        assert shown(run) == (50, 100, "Step 1 of 2: Counting rows — all rows (4 / 4)")


def test_an_exception_inside_steps_leaves_the_job_level_reporting_again() -> None:
    with reporting() as run:
        with pytest.raises(RuntimeError), stages("Only") as steps:
            steps.next()
            raise RuntimeError("boom")
        reporter = current_reporter()
        assert reporter is not None and reporter.scope is None
        set_progress(7, 9, "plain")
        assert shown(run) == (7, 9, "plain")


def test_outside_a_job_steps_and_bars_do_nothing_but_still_run() -> None:
    assert list(stages("a", "b")) == ["a", "b"]
    with bar(total=3) as counter:
        counter.update()
    assert counter.n == 1


@pytest.mark.parametrize(
    ("names", "weights"), [((), None), (("a", "b"), [1]), (("a",), [0]), (("a",), [True])]
)
def test_bad_steps_are_refused(names: tuple[str, ...], weights: list[float] | None) -> None:
    with pytest.raises(ValueError):
        stages(*names, weights=weights)


def test_one_step_too_many_is_an_error() -> None:
    with stages("a") as steps:
        steps.next()
        with pytest.raises(ValueError, match="already started"):
            steps.next()


@pytest.mark.parametrize("tail", [0, 1, 5])
def test_a_job_that_ends_inside_a_throttle_window_ends_with_its_last_words(tail: int) -> None:
    """The last update lands inside the throttle window on purpose (the clock never moves):
    the final state must carry the last counts the task reported, not the last ones sent."""
    with reporting(throttle=1.0) as run, stages("Summing") as steps:
        steps.next()
        for done in range(1, 21 - tail):
            set_progress(done, 20, "sums")
        for done in range(21 - tail, 21):
            set_progress(done, 20, "sums")
    final = run.states[-1]
    assert final["state"] == "SUCCESS"
    assert (final["current"], final["total"], final["percent"]) == (100, 100, 100)
    assert final["message"] == "Step 1 of 1: Summing — sums (20 / 20)"
    # The window held back what came after the first state: it was never sent before the end.
    assert all("(20 / 20)" not in state["message"] for state in run.states[:-1])


def test_a_job_without_steps_ends_with_the_numbers_and_words_it_reported_last() -> None:
    with reporting(throttle=1.0) as run:
        for done in range(1, 41):
            set_progress(done, 40, f"rows ({done} / 40)")
    final = run.states[-1]
    assert final["state"] == "SUCCESS"
    assert (final["current"], final["total"], final["message"]) == (40, 40, "rows (40 / 40)")
