"""The fan-out scenario over WebSockets: the client processes, the wait, one run of a target.

The fanout_client.py processes hold the sockets; a run waits for every final state, against a
target that is the floor's or ours.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.fanout_results import HANDSHAKES, Run, count_log_lines, log_offsets, log_run, score
from bench.harness import CpuMarks, fmt, log, percentile, until_quiet
from bench.stack import BenchRun
from devstack.processes import Service


def tabs_of(user: int, args: argparse.Namespace) -> int:
    """How many tabs the user number `user` has open in the users scenario: 1 to --tabs."""
    return 1 + user % args.tabs


def per_tab(jobs: list[str], args: argparse.Namespace) -> list[str]:
    """The job each socket of the users scenario watches: its user's, once per tab."""
    return [job for index, job in enumerate(jobs) for _tab in range(tabs_of(index, args))]


class Clients:
    """A few bench/fanout_client.py processes sharing the sockets, in order."""

    def __init__(self, run: BenchRun, name: str) -> None:
        self.run = run
        self.name = name
        self.children: list[asyncio.subprocess.Process] = []
        self.pumps: list[asyncio.Task[None]] = []
        self.opened_events: list[dict[str, Any]] = []
        self.done = 0
        self.finals = 0
        self.jobs_final: set[str] = set()
        self.all_final = asyncio.Event()
        self.changed = asyncio.Event()
        self.opened = 0

    @property
    def pids(self) -> dict[str, int]:
        return {f"client-{i}": child.pid for i, child in enumerate(self.children)}

    def _results(self, index: int) -> str:
        return str(self.run.workdir / f"{self.name}-client-{index}.json")

    async def start(self, sockets: list[dict[str, Any]], snapshot: bool, processes: int) -> None:
        processes = max(1, min(processes, len(sockets)))
        size = math.ceil(len(sockets) / processes)
        chunks = [sockets[i : i + size] for i in range(0, len(sockets), size)]
        for index, chunk in enumerate(chunks):
            log_name = f"{self.name}-client-{index}.log"
            child = await self.run.spawn("fanout_client", log_name=log_name)
            config = {
                "sockets": chunk,
                "concurrency": max(1, HANDSHAKES // len(chunks)),
                "snapshot": snapshot,
                "results": self._results(index),
            }
            assert child.stdin is not None
            child.stdin.write(json.dumps(config).encode() + b"\n")
            await child.stdin.drain()
            self.children.append(child)
            self.pumps.append(asyncio.create_task(self._pump(child)))
        limit = 30 + len(sockets) * 0.2
        deadline = time.monotonic() + limit
        while len(self.opened_events) < len(self.children):
            if time.monotonic() > deadline:
                raise RuntimeError(f"sockets still opening after {limit:.0f} s")
            if any(child.returncode is not None for child in self.children):
                raise RuntimeError(
                    f"a client process exited; see {self.run.workdir}/*-client-*.log"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._next_change(), 1)
        self.opened = sum(event["opened"] for event in self.opened_events)

    async def _next_change(self) -> None:
        self.changed.clear()
        await self.changed.wait()

    async def _pump(self, child: asyncio.subprocess.Process) -> None:
        assert child.stdout is not None
        async for line in child.stdout:
            event = json.loads(line)
            if event["e"] == "open":
                self.opened_events.append(event)
            elif event["e"] == "final":
                self.finals += 1
                self.jobs_final.add(event["job"])
                if self.opened and self.finals >= self.opened:
                    self.all_final.set()
            elif event["e"] == "done":
                self.done += 1
            self.changed.set()
        self.changed.set()

    def open_summary(self) -> tuple[list[str], list[float], float, str]:
        errors = [e for event in self.opened_events for e in event["errors"]]
        handshakes = [ms for event in self.opened_events for ms in event["handshake_ms"]]
        seconds = max((event["seconds"] for event in self.opened_events), default=0.0)
        extensions = {x or "none" for event in self.opened_events for x in event["extensions"]}
        return errors, handshakes, seconds, ", ".join(sorted(extensions)) or "none"

    async def stop(self) -> tuple[list[dict[str, Any]], list[float]]:
        """Ends the recording; returns every socket's result, in order, and the loop lags."""
        for child in self.children:
            assert child.stdin is not None
            child.stdin.write(b"stop\n")
            with contextlib.suppress(ConnectionError):
                await child.stdin.drain()
        deadline = time.monotonic() + 120
        while self.done < len(self.children) and time.monotonic() < deadline:
            if all(pump.done() for pump in self.pumps):
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._next_change(), 1)
        sockets: list[dict[str, Any]] = []
        lags: list[float] = []
        for index in range(len(self.children)):
            path = self.run.workdir / f"{self.name}-client-{index}.json"
            if not path.exists():
                raise RuntimeError(f"client process {index} wrote no results; see its log")
            data = json.loads(path.read_text())
            sockets.extend(data["sockets"])
            lags.extend(data["lag_ms"])
            path.unlink()
        await self.close()
        return sockets, lags

    async def close(self) -> None:
        for child in self.children:
            await self.run.finish(child)
        for pump in self.pumps:
            pump.cancel()
        self.children.clear()


async def settle(pids: dict[str, int], label: str, timeout: float = 20.0) -> None:
    """Waits until the server's processes are idle (< 10% of a core over 0.5 s), so that the
    work of the handshakes or of a previous run stays out of the CPU window."""
    if not await until_quiet(list(pids.values()), interval=0.5, timeout=timeout):
        log(f"{label}: the server was still busy after {timeout:.0f} s; measuring anyway")


async def wait_end(
    label: str,
    done: asyncio.Event,
    expected: int,
    got: Callable[[], int],
    jobs: list[str],
    jobs_final: Callable[[], set[str]],
    ended: Callable[[], Awaitable[bool]],
    args: argparse.Namespace,
    services: list[Service],
) -> None:
    """Waits until `done`, or until the jobs ended and --drain-timeout more seconds passed.

    A job has ended when a client saw its final state, or when `ended()` says so; that is
    asked every 2 s once the job should be over. Logs a line for what never came. Raises if
    one of the server's `services` exited.
    """
    begin = time.monotonic()
    ended_at: float | None = None
    duration = args.states / args.rate
    next_check = begin + duration + 3
    give_up = begin + duration + 90
    while not done.is_set():
        now = time.monotonic()
        for service in services:
            service.assert_alive()
        if ended_at is None:
            if set(jobs) <= jobs_final():
                ended_at = now
            elif now >= next_check:
                next_check = now + 2
                if await ended():
                    ended_at = now
            if ended_at is None and now > give_up:
                log(f"{label}: the job never ended ({now - begin:.0f} s after launch); giving up")
                return
        elif now > ended_at + args.drain_timeout:
            log(
                f"{label}: only {got()}/{expected} clients saw the final state "
                f"{args.drain_timeout:.0f} s after the job ended; giving up on the rest"
            )
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.25)


@dataclasses.dataclass
class Target:
    """What a WebSocket run needs of the server side, floor or ours."""

    part: str
    pids: Callable[[], dict[str, int]]
    services: list[Service]
    snapshot: bool
    launch: Callable[[], Awaitable[list[str]]]  # starts the jobs, returns their ids
    ended: Callable[[list[str]], Awaitable[bool]]
    final_seqs: Callable[[list[str]], Awaitable[dict[str, int]]]
    exact: Callable[[list[str]], dict[str, int]] | None = None
    # Runs once the sockets are open, before the CPU window opens.
    prepare: Callable[[], Awaitable[None]] | None = None


async def run_sockets(
    target: Target,
    scenario: str,
    sockets: list[dict[str, Any]],
    watch: Callable[[list[str]], list[str]],
    args: argparse.Namespace,
    bench: BenchRun,
) -> Run:
    """Opens the sockets, launches the jobs, waits for every final state, and scores it."""
    run = Run(target.part, scenario, watchers=len(sockets))
    label = f"{run.label} {scenario}"
    clients = Clients(bench, f"{target.part}-{scenario.replace('=', '')}")
    procs = args.client_procs or (1 if len(sockets) <= 200 else math.ceil(len(sockets) / 500))
    run.procs = min(procs, len(sockets))
    try:
        log(f"{label}: opening {len(sockets)} sockets in {procs} client process(es)")
        await clients.start(sockets, target.snapshot, procs)
        run.opened = clients.opened
        run.open_errors, handshakes, seconds, run.extensions = clients.open_summary()
        log(
            f"{label}: {run.opened}/{len(sockets)} open in {seconds:.1f} s, handshake p50 "
            f"{fmt(percentile(handshakes, 50))} ms, p99 {fmt(percentile(handshakes, 99))} ms"
        )
        if run.open_errors:
            log(f"{label}: {len(run.open_errors)} failed to open, e.g. {run.open_errors[0]}")
        if target.prepare is not None:
            await target.prepare()
        pids = target.pids()
        idle = CpuMarks.take(clients.pids)
        await settle(pids, label)
        offsets = log_offsets(target.services)
        begin = CpuMarks.take({**pids, **clients.pids})
        idle_rate = sum(idle.spent(begin).values()) / (begin.at - idle.at)
        jobs = await target.launch()
        run.jobs = len(jobs)
        run.launch_s = time.monotonic() - begin.at
        log(
            f"{label}: {len(jobs)} job(s) launched in {run.launch_s:.1f} s; "
            "waiting for the final state on every socket"
        )
        await wait_end(
            label,
            clients.all_final,
            clients.opened,
            lambda: clients.finals,
            jobs,
            lambda: clients.jobs_final,
            lambda: target.ended(jobs),
            args,
            target.services,
        )
        run.charge(begin, CpuMarks.take({**pids, **clients.pids}), pids, own_is_client=False)
        run.client_idle_s = idle_rate * run.window_s
        records, lags = await clients.stop()
        run.lag_p99_ms = percentile(lags, 99)
        finals = await target.final_seqs(jobs)
        exact = target.exact(jobs) if target.exact else None
        score(run, records, watch(jobs), finals, exact)
        count_log_lines(target.services, offsets, run)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        run.failure = f"{type(exc).__name__}: {exc}"
    finally:
        await clients.close()
    log_run(run)
    return run
