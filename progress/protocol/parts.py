"""Group maths: a group job's figures from the sum of its parts. Pure; any process."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from progress.protocol.states import JobState, State


class PartsSum(Protocol):
    """A group job's sum of its parts (store.GroupSum)."""

    @property
    def parts(self) -> int: ...
    @property
    def current(self) -> float: ...
    @property
    def total(self) -> float | None: ...
    @property
    def done(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def revoked(self) -> int: ...


def group_progress(group: JobState, parts: PartsSum, now: float) -> None:
    """Makes `group` (its newest stored state) the PROGRESS state that `parts` sum up to.

    The rate is the average since the group started: parts run side by side and
    start and stop at random, so any shorter window would make the ETA jump.
    """
    group.state = State.PROGRESS
    group.current, group.total, group.ts = parts.current, parts.total, now
    ended = parts.done + parts.failed + parts.revoked
    message = f"{ended} of {parts.parts} parts done"
    if parts.failed:
        message += f", {parts.failed} failed"
    if parts.revoked:
        message += f", {parts.revoked} cancelled"
    group.message = message
    started = datetime.fromisoformat(group.started).timestamp() if group.started else 0.0
    elapsed = now - started
    if started and elapsed > 0.5 and parts.current > 0:
        group.rate = parts.current / elapsed
        left = None if parts.total is None else max(0.0, parts.total - parts.current)
        group.eta = None if left is None else left / group.rate
    else:
        group.rate = group.eta = None
