"""Fixtures for the in-process tests: users, jobs and a clean Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from channels.layers import channel_layers

from progress.core.publisher import get_publisher
from progress.web import chores
from tests.helpers.inprocess import awaited

# Fixtures, by name: they take the place of the root conftest's logged-in clients.
from tests.helpers.rows import alice, bob, job, staff

__all__ = ["alice", "bob", "job", "staff"]


@pytest.fixture(autouse=True)
def fresh_channel_layer() -> Iterator[None]:
    """Each test gets channel-layer objects of its own.

    channels-redis keeps one receive lock and one count of pending receives per layer
    object, for the event loop that receives. A receive still pending when an earlier
    test's loop closed (a hub's, whose last socket left just then) never counts itself
    out, and the next test's loop then finds that lock bound to a dead loop.
    """
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def no_process_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process's own sweep (progress.web.chores) stays off in the in-process tests.

    A hub starts it on its first socket, and it would end FAILURE, as a lost worker's,
    any running job a test made without a lease, mid-test, with frames the test never
    asked for. Its scheduler and the sweep are tested on their own (tests/unit/web,
    tests/integration/test_beat_schedule.py, tests/system/test_faults.py).
    """
    monkeypatch.setattr(chores, "start", lambda: None)


@pytest.fixture(autouse=True)
def clean_redis() -> Iterator[None]:
    """Each test starts with empty job states, groups and socket counts."""
    publisher = get_publisher()
    publisher.call(awaited(publisher.store.redis.flushdb()))
    yield
