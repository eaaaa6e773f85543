"""States on their way through the publisher, and how a batch of them coalesces. Any process."""

from __future__ import annotations

import concurrent.futures
from concurrent.futures import Future
from dataclasses import dataclass, field

from progress.core.store import Latest
from progress.protocol.states import JobState, Mark, State

__all__ = ["SUPERSEDED", "Outgoing", "PublishDeferred", "coalesce"]

# What a progress state's future gives when a newer state of its job replaced it before
# Redis saw it: not numbered, but not refused either (None: the job has ended).
SUPERSEDED = Mark("", 0)


class PublishDeferred(Exception):
    """A state Redis could not take at once; the publisher keeps retrying it in the background."""


@dataclass(slots=True)
class Outgoing:
    """A state on its way through the publisher, and the future its caller waits on."""

    state: JobState
    floor: int
    future: concurrent.futures.Future[Mark | None] = field(default_factory=Future)
    # Once Redis has numbered the state; a retry then only sends it.
    numbered: Latest | None = None
    # The monotonic time after which a state that keeps failing is given up.
    give_up_at: float = 0.0
    # For a group job's sum of its parts: the sum's version (see store._SAVE_STATE).
    version: int = 0

    def resolve(self, mark: Mark | None) -> None:
        if not self.future.done():
            self.future.set_result(mark)

    def defer(self, exc: BaseException) -> None:
        """Runs on a first failure: a waiting caller moves on while the retries go on."""
        if not self.future.done():
            self.future.set_exception(PublishDeferred(repr(exc)))


def coalesce(batch: list[Outgoing]) -> list[Outgoing]:
    """The batch without progress states that a later state of the same job supersedes."""
    last = {item.state.id: index for index, item in enumerate(batch)}
    kept = []
    for index, item in enumerate(batch):
        if item.state.state is State.PROGRESS and last[item.state.id] != index:
            item.resolve(SUPERSEDED)
        else:
            kept.append(item)
    return kept
