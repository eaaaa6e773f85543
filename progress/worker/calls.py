"""What task code calls: set_progress(), track(), log(), attach_file(). Worker processes.

Each finds the running job's reporter (progress.worker.reporter) and does nothing outside
a launched job; set_progress() and track() are cheap enough for hot loops.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from progress.worker.reporter import current_reporter

T = TypeVar("T")

# A module-level binding: in a loop of a million calls, each attribute lookup saved counts.
_get_reporter = current_reporter


def set_progress(current: float, total: float | None = None, message: str | None = None) -> None:
    """Reports how far the running job is; does nothing outside a launched job."""
    reporter = _get_reporter()
    if reporter is not None:
        reporter.update(current, total, message)


def track(
    iterable: Iterable[T], total: float | None = None, message: str | None = None
) -> Iterator[T]:
    """Yields from `iterable`, reporting one unit of progress per item, like tqdm."""
    reporter = _get_reporter()
    if reporter is None:
        yield from iterable
        return
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    yield from reporter.track(iterable, total, message)


def log(text: object, level: str = "INFO") -> None:
    """Adds a line to the running job's log, shown live on its page; does nothing outside a
    job. Task code's `logging` records reach the same log (PROGRESS["LOG_LEVEL"])."""
    reporter = _get_reporter()
    if reporter is not None:
        reporter.log(text, level)


def attach_file(filename: str, content: bytes | str) -> str:
    """Keeps a file as the running job's result; returns its owner-only download URL."""
    reporter = _get_reporter()
    if reporter is None:
        raise RuntimeError("attach_file() works only inside a job launched through progress.")
    return reporter.sink.attach_file(reporter.state.id, filename, content)
