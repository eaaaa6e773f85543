"""The web process's chores: the scheduler every periodic chore runs on, and the process's
maintenance task, which starts once per loop and stops with the server."""

from __future__ import annotations

import asyncio

import pytest
from django.test import override_settings

from progress.web import chores
from progress.web.aio import run_chores
from tests.unit.settings import PROGRESS as UNIT_PROGRESS

pytestmark = pytest.mark.asyncio


async def test_each_chore_runs_at_its_own_interval_and_a_failing_one_stops_none() -> None:
    runs = {"fast": 0, "failing": 0}
    enough = asyncio.Event()

    async def fast() -> None:
        runs["fast"] += 1
        if runs["fast"] >= 5:
            enough.set()

    async def failing() -> None:
        runs["failing"] += 1
        raise ConnectionError("Redis is restarting")

    async def never() -> None:
        raise AssertionError("an interval of 0 turns a chore off")

    task = asyncio.ensure_future(run_chores([(fast, 0.01), (failing, 0.01), (never, 0)], "Test"))
    await asyncio.wait_for(enough.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runs["failing"] >= 3


async def test_the_maintenance_starts_once_per_loop_and_stops_with_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    swept = asyncio.Event()

    async def sweep() -> None:
        # Stands in for the Redis lock and the database sweep, which need services.
        swept.set()

    monkeypatch.setattr(chores, "sweep", sweep)
    with override_settings(
        PROGRESS={"REDIS_URL": "redis://127.0.0.1:1/0", "WORKER_LOST_AFTER": 0.03}
    ):
        first = chores.start()
        assert first is not None and chores.start() is first
        await asyncio.wait_for(swept.wait(), timeout=5)
        await chores.stop()
    assert first.done()


async def test_no_maintenance_runs_when_leases_are_off() -> None:
    with override_settings(PROGRESS={**UNIT_PROGRESS, "WORKER_LOST_AFTER": 0}):
        assert chores.start() is None
