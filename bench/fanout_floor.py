"""The fan-out scenario on the floor: bench/floor.py's forwarder and publisher as its target.

Every other column of the fan-out's tables is a ratio of the floor's, from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from typing import Any

from bench.fanout_results import Run
from bench.fanout_sockets import Target, per_tab, run_sockets, tabs_of
from bench.harness import log
from bench.stack import BenchRun
from devstack.processes import PYTHON, RedisServer, Service, free_port, test_env, wait_for


class FloorPublisher:
    """One bench/floor.py publish process: "ready", then "go", then its summary line."""

    def __init__(self, run: BenchRun) -> None:
        self.run = run
        self.child: asyncio.subprocess.Process | None = None
        self.summary: dict[str, Any] | None = None
        self.finished = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None

    async def start(self, redis_url: str, channels: list[str], args: argparse.Namespace) -> None:
        argv = ["publish", "--redis", redis_url, "-S", str(args.states), "-R", str(args.rate)]
        for channel in channels:
            argv += ["--channel", channel]
        self.child = await self.run.spawn("floor", *argv, log_name="floor-publisher.log")
        assert self.child.stdout is not None
        line = await asyncio.wait_for(self.child.stdout.readline(), 45)
        if line.strip() != b"ready":
            raise RuntimeError(f"the floor publisher did not start ({line!r}); see its log")

    async def go(self) -> None:
        assert self.child is not None and self.child.stdin is not None
        self.child.stdin.write(b"go\n")
        await self.child.stdin.drain()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.child is not None and self.child.stdout is not None
        line = await self.child.stdout.readline()
        if line:
            self.summary = json.loads(line)
        self.finished.set()

    async def stop(self) -> None:
        if self.child is not None:
            await self.run.finish(self.child)
        if self.reader is not None:
            self.reader.cancel()


async def floor_part(args: argparse.Namespace, bench: BenchRun, scenarios: list[str]) -> list[Run]:
    """Every scenario on the floor: one forwarder and its redis-server for all of them."""
    redis = await asyncio.to_thread(bench.redis, "floor-redis")
    port = free_port()
    argv = [PYTHON, "-m", "bench.floor", "serve", "--port", str(port), "--redis", redis.url]
    forwarder = bench.service("floor", argv, test_env())
    runs: list[Run] = []
    try:
        await asyncio.to_thread(wait_for, lambda: listening(forwarder), 30)
        log(f"floor: forwarder on port {port}, its redis on port {redis.port}")
        for scenario in scenarios:
            runs.append(await floor_run(args, bench, scenario, port, redis, forwarder))
    finally:
        await asyncio.to_thread(bench.stop, forwarder)
        await asyncio.to_thread(bench.stop, redis)
    return runs


def listening(forwarder: Service) -> bool:
    forwarder.assert_alive()
    return "floor forwarder on port" in forwarder.output()


async def floor_run(
    args: argparse.Namespace,
    bench: BenchRun,
    scenario: str,
    port: int,
    redis: RedisServer,
    forwarder: Service,
) -> Run:
    users = scenario == "users"
    count = args.users if users else int(scenario.removeprefix("M="))
    channels = [f"job:{uuid.uuid4()}" for _ in range(count if users else 1)]
    jobs = [channel.removeprefix("job:") for channel in channels]
    url = f"ws://127.0.0.1:{port}/?channel="
    origin = {"Origin": f"http://127.0.0.1:{port}"}
    if users:
        sockets = [
            {"url": url + channel, "headers": origin}
            for index, channel in enumerate(channels)
            for _tab in range(tabs_of(index, args))
        ]
    else:
        sockets = [{"url": url + channels[0], "headers": origin} for _ in range(count)]
    publisher = FloorPublisher(bench)
    states = {job: args.states + 2 for job in jobs}  # STARTED, S PROGRESS, SUCCESS

    async def launch() -> list[str]:
        await publisher.go()
        return jobs

    async def ended(_jobs: list[str]) -> bool:
        return publisher.finished.is_set()

    async def final_seqs(_jobs: list[str]) -> dict[str, int]:
        return states

    def pids() -> dict[str, int]:
        assert publisher.child is not None and redis.process is not None
        return {
            "forwarder": forwarder.process.pid,
            "publisher": publisher.child.pid,
            "redis": redis.process.pid,
        }

    target = Target(
        "floor",
        pids,
        [forwarder],
        snapshot=False,
        launch=launch,
        ended=ended,
        final_seqs=final_seqs,
        exact=lambda _jobs: states,
        prepare=lambda: publisher.start(redis.url, channels, args),
    )
    try:
        watch = (lambda jobs: per_tab(jobs, args)) if users else (lambda jobs: jobs * count)
        run = await run_sockets(target, scenario, sockets, watch, args, bench)
    finally:
        await publisher.stop()
    late = (publisher.summary or {}).get("late_ms", 0.0)
    if late > 50:
        run.notes.append(f"the floor publisher fell up to {late:.0f} ms behind its schedule")
    return run
