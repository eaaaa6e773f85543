"""Progress that reaches a thousand tabs in milliseconds: ours against a floor and polling.

The scenario: one job of S = 200 steps at 20 steps/s (demo.count steps=200 delay=0.05, launched
with POST /api/jobs/ and run by a real Celery worker), watched by M = 10, 100 and 1,000
WebSockets of its owner (one session cookie, Origin set, permessage-deflate offered as browsers
do). Plus "users": 100 users with one socket and one running job each, at the same time.

Measured in the same run, through the public protocol only (HTTP and WebSocket frames):

  floor    bench/floor.py: a bare `websockets` + Redis pub/sub forwarder, no Django, fed by a
           tiny publisher process with S + 2 job frames of our size at 20/s per job.
  redis    ours, CHANNEL_LAYER=redis (channels-redis core layer): uvicorn + Celery prefork.
  pubsub   ours, CHANNEL_LAYER=pubsub (RedisPubSubChannelLayer); web and worker restarted.
  polling  as celery-progress does it: M pollers GET /api/jobs/<id>/ 500 ms after each answer
           (httpx, logged in), against the redis stack's uvicorn, while the real job runs.
  users    100 users x (1 socket + 1 job), on each layer run (and on the floor), the worker
           restarted with --pool threads --concurrency 100.

Each Django stack has its own redis-server, SQLite database and static root in a temp dir. The
sockets live in client subprocesses (bench/fanout_client.py), whose CPU is measured too, since
they share the machine's cores with the servers.

    .venv/bin/python bench/fanout.py                 # M = 10, 100, 1000; S = 200 (~5 min)
    .venv/bin/python bench/fanout.py --quick         # M = 10, 100; S = 50
    .venv/bin/python bench/fanout.py --only floor --only redis
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import math
import random
import re
import shutil
import signal
import ssl
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fanout_client import FINAL, LagMeter  # noqa: E402
from bench.harness import (  # noqa: E402
    cpu_seconds,
    fmt,
    log,
    machine,
    machine_busy_seconds,
    markdown_table,
    median,
    new_loop,
    own_cpu_seconds,
    percentile,
    raise_fd_limit,
    ratio,
)
from bench.stack import (  # noqa: E402
    PASSWORD,
    cookie_header,
    django_env,
    redis_pid,
    uvicorn_argv,
    wait_serving,
)
from devstack.processes import (  # noqa: E402
    PYTHON,
    RedisServer,
    Service,
    free_port,
    login,
    manage,
    test_env,
    wait_for,
)

PARTS = ("floor", "redis", "pubsub", "polling", "users")
LABELS = {
    "floor": "floor",
    "redis": "ours (redis)",
    "pubsub": "ours (pubsub)",
    "polling": "polling",
}
HANDSHAKES = 50  # Sockets opened at a time, over all client processes.
POLL_INTERVAL = 0.5
USER_COUNT = 100
# An error line: uvicorn's "ERROR:", Django's "<date> <time> ERROR name:", Celery's "[...: ERROR/",
# or the same at CRITICAL (the worker's log too, hence wider than harness.ERROR_LINE).
ERROR_LINE = re.compile(
    r"^(?:(?:ERROR|CRITICAL):|\S+ \S+ (?:ERROR|CRITICAL) |\[[^]]*: (?:ERROR|CRITICAL)/)", re.M
)
LOCKED = "database is locked"


# The results.


@dataclasses.dataclass
class Run:
    """One configuration (floor, redis, pubsub, polling) x one scenario (M=10, ..., users)."""

    part: str
    scenario: str
    watchers: int
    jobs: int = 1
    opened: int = 0
    open_errors: list[str] = dataclasses.field(default_factory=list)
    extensions: str = ""
    published: list[int] = dataclasses.field(default_factory=list)  # per job
    unseen: int = 0  # seqs up to the final one that no client saw, over all jobs
    shares: list[float] = dataclasses.field(default_factory=list)  # delivered/published per client
    finals: int = 0
    disorder: int = 0  # frames whose seq was not above the last one the client had
    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    delivered: int = 0
    payload_bytes: int = 0
    requests: int = 0
    request_errors: int = 0
    cpu: dict[str, float] = dataclasses.field(default_factory=dict)
    client_cpu_s: float = 0.0
    client_peak: float = 0.0  # the busiest client process's share of one core
    lag_p99_ms: float = math.nan
    other_cpu_s: float = 0.0
    window_s: float = 0.0
    launch_s: float = 0.0
    procs: int = 0  # client processes
    client_idle_s: float = 0.0  # what the clients would have spent idle over the window
    closed_early: list[str] = dataclasses.field(default_factory=list)
    errors: int = 0
    locked: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)
    failure: str | None = None

    @property
    def label(self) -> str:
        return LABELS[self.part]

    @property
    def cpu_s(self) -> float:
        return sum(self.cpu.values())

    @property
    def cpu_per_1000(self) -> float:
        return self.cpu_s * 1000 / self.delivered if self.delivered else math.nan

    @property
    def burst_ms(self) -> float:
        """Client CPU to read one state on all the sockets of one client process: a share of
        the latency at large M is this queue inside the client, for any server."""
        if not self.delivered or not self.procs or self.part == "polling":
            return math.nan
        busy = max(0.0, self.client_cpu_s - self.client_idle_s)
        return busy / self.delivered * self.watchers / self.procs * 1000

    @property
    def noise(self) -> float:
        """Cores that other processes on the machine kept busy during the window, on average."""
        return self.other_cpu_s / self.window_s if self.window_s else math.nan

    @property
    def complete(self) -> bool:
        """Every client got every published state and the final one."""
        return (
            self.failure is None
            and self.opened == self.watchers
            and self.finals == self.watchers
            and bool(self.shares)
            and min(self.shares) >= 1.0
        )


@dataclasses.dataclass
class Marks:
    """CPU readings at one instant: the server's process trees, the clients', the machine's."""

    at: float
    server: dict[str, float]
    clients: list[float]
    own: float
    busy: float

    @classmethod
    def take(cls, server: dict[str, int], clients: list[int]) -> Marks:
        return cls(
            at=time.monotonic(),
            server={name: cpu_seconds(pid) for name, pid in server.items()},
            clients=[cpu_seconds(pid) for pid in clients],
            own=own_cpu_seconds(),
            busy=machine_busy_seconds(),
        )

    def charge(self, end: Marks, run: Run, own_is_client: bool) -> None:
        """Fills the run's CPU figures with what was spent from this mark to `end`."""
        run.window_s = end.at - self.at
        run.cpu = {name: end.server[name] - self.server[name] for name in self.server}
        spent = [b - a for a, b in zip(self.clients, end.clients, strict=True)]
        own = end.own - self.own
        if own_is_client:
            spent.append(own)
        run.client_cpu_s = sum(spent)
        run.client_peak = max(spent, default=0.0) / run.window_s if run.window_s else math.nan
        total = run.cpu_s + run.client_cpu_s + (0.0 if own_is_client else own)
        run.other_cpu_s = max(0.0, end.busy - self.busy - total)


# Every process the bench starts, so that all of them stop whatever happens.


class Processes:
    def __init__(self) -> None:
        self.services: list[Service] = []
        self.redises: list[RedisServer] = []
        self.children: list[asyncio.subprocess.Process] = []

    def stop_children(self) -> None:
        for child in self.children:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
        self.children.clear()

    def stop_all(self) -> None:
        self.stop_children()
        for service in reversed(self.services):
            with contextlib.suppress(Exception):
                service.stop(timeout=10)
        self.services.clear()
        for server in self.redises:
            with contextlib.suppress(Exception):
                server.stop()
        self.redises.clear()


PROCS = Processes()


async def spawn(*argv: str, stderr: Path) -> asyncio.subprocess.Process:
    """A helper process with JSON lines on stdin and stdout, in its own session (no Ctrl-C)."""
    with stderr.open("ab") as err:
        child = await asyncio.create_subprocess_exec(
            *argv,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            start_new_session=True,
            limit=2**24,
        )
    PROCS.children.append(child)
    return child


async def finish(child: asyncio.subprocess.Process, timeout: float = 10) -> None:
    """Closes the child's stdin, which ends it, and waits; kills it if it lingers."""
    if child.stdin is not None and not child.stdin.is_closing():
        child.stdin.close()
    try:
        await asyncio.wait_for(child.wait(), timeout)
    except TimeoutError:
        child.kill()
        await child.wait()
    with contextlib.suppress(ValueError):
        PROCS.children.remove(child)


# The WebSocket clients, in subprocesses.


class Clients:
    """A few bench/fanout_client.py processes sharing the sockets, in order."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.workdir = workdir
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
    def pids(self) -> list[int]:
        return [child.pid for child in self.children]

    async def start(self, sockets: list[dict[str, Any]], snapshot: bool, processes: int) -> None:
        processes = max(1, min(processes, len(sockets)))
        size = math.ceil(len(sockets) / processes)
        chunks = [sockets[i : i + size] for i in range(0, len(sockets), size)]
        for index, chunk in enumerate(chunks):
            child = await spawn(
                PYTHON,
                str(ROOT / "bench" / "fanout_client.py"),
                stderr=self.workdir / f"{self.name}-client-{index}.log",
            )
            config = {
                "sockets": chunk,
                "concurrency": max(1, HANDSHAKES // len(chunks)),
                "snapshot": snapshot,
                "results": str(self.workdir / f"{self.name}-client-{index}.json"),
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
                raise RuntimeError(f"a client process exited; see {self.workdir}/*-client-*.log")
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
            path = self.workdir / f"{self.name}-client-{index}.json"
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
            await finish(child)
        for pump in self.pumps:
            pump.cancel()
        self.children.clear()


async def settle(pids: dict[str, int], label: str, timeout: float = 20.0) -> None:
    """Waits until the server's processes are idle (< 10% of a core over 0.5 s), so that the
    work of the handshakes or of a previous run stays out of the CPU window."""
    deadline = time.monotonic() + timeout
    before = sum(cpu_seconds(pid) for pid in pids.values())
    while True:
        await asyncio.sleep(0.5)
        now = sum(cpu_seconds(pid) for pid in pids.values())
        if now - before < 0.05:
            return
        if time.monotonic() > deadline:
            log(
                f"{label}: the server still used {2 * (now - before):.0%} of a core after "
                f"{timeout:.0f} s; measuring anyway"
            )
            return
        before = now


# Waiting for the end of a job, without hanging.


async def wait_end(
    label: str,
    done: asyncio.Event,
    expected: int,
    got: Callable[[], int],
    jobs: list[str],
    jobs_final: Callable[[], set[str]],
    ended: Callable[[], Awaitable[bool]],
    duration: float,
    drain: float,
    services: list[Service],
) -> None:
    """Waits until `done`, or until the jobs ended and `drain` more seconds passed.

    A job has ended when a client saw its final state, or when `ended()` says so; that is
    asked every 2 s once the job should be over. Logs a line for what never came. Raises if
    one of the server's `services` exited.
    """
    begin = time.monotonic()
    ended_at: float | None = None
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
        elif now > ended_at + drain:
            log(
                f"{label}: only {got()}/{expected} clients saw the final state "
                f"{drain:.0f} s after the job ended; giving up on the rest"
            )
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.25)


# Turning the clients' records into figures.


def score(
    run: Run,
    sockets: list[dict[str, Any]],
    watch: list[str],
    finals: dict[str, int],
    exact: dict[str, int] | None = None,
) -> None:
    """Fills the delivery figures. `watch[i]` is the job socket i watches; `finals` each job's
    final seq (from its final row); `exact` the published counts when they are known (floor).

    Without `exact`, a job's published states are the distinct seqs of it that any client or
    its final row shows.
    """
    seen: dict[str, set[int]] = {job: set() for job in watch}
    for record, job in zip(sockets, watch, strict=True):
        seen[job].update(record["jobs"].get(job, {}).get("seqs", []))
    published: dict[str, int] = {}
    for job, seqs in seen.items():
        final = finals.get(job, 0)
        published[job] = exact[job] if exact else len(seqs | ({final} if final else set()))
        run.unseen += len(set(range(1, (exact[job] if exact else final) + 1)) - seqs)
    run.published = [published[job] for job in dict.fromkeys(watch)]
    for record, job in zip(sockets, watch, strict=True):
        entry = record["jobs"].get(job)
        if record["closed"]:
            run.closed_early.append(record["closed"])
        for other in record["jobs"]:
            if other != job:
                run.notes.append(f"a socket got frames of a job it does not watch ({other})")
        for kind, count in record["other"].items():
            run.notes.append(f"clients got {kind!r} frames besides the snapshot (e.g. {count})")
        if entry is None:
            run.shares.append(0.0)
            continue
        seqs = entry["seqs"]
        run.shares.append(len(set(seqs)) / published[job] if published[job] else 0.0)
        run.disorder += sum(1 for a, b in itertools.pairwise(seqs) if b <= a)
        run.finals += bool(entry["final"])
        run.latencies_ms.extend(entry["lat"])
        run.delivered += len(seqs)
        run.payload_bytes += entry["bytes"]


def log_run(run: Run) -> None:
    if run.failure:
        log(f"{run.label} {run.scenario}: FAILED: {run.failure}")
        return
    log(
        f"{run.label} {run.scenario}: p50 {fmt(percentile(run.latencies_ms, 50))} ms, "
        f"p99 {fmt(percentile(run.latencies_ms, 99))} ms; final on {run.finals}/{run.watchers}; "
        f"delivered/published min {fmt(100 * min(run.shares, default=math.nan))}%; "
        f"server CPU {run.cpu_s:.2f} s; client busiest {100 * run.client_peak:.0f}% of a core"
    )


def count_log_lines(services: list[Service], offsets: dict[str, int], run: Run) -> None:
    for service in services:
        text = service.output()[offsets.get(service.name, 0) :]
        run.errors += len(ERROR_LINE.findall(text))
        run.locked += text.count(LOCKED)


def log_offsets(services: list[Service]) -> dict[str, int]:
    return {service.name: len(service.output()) for service in services}


# One run over WebSockets: the floor's or ours.


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
    workdir: Path,
) -> Run:
    run = Run(target.part, scenario, watchers=len(sockets))
    label = f"{run.label} {scenario}"
    name = f"{target.part}-{scenario.replace('=', '')}"
    clients = Clients(workdir, name)
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
            log(
                f"{label}: {len(run.open_errors)} sockets failed to open, e.g. {run.open_errors[0]}"
            )
        if target.prepare is not None:
            await target.prepare()
        pids = target.pids()
        idle = Marks.take(pids, clients.pids)
        await settle(pids, label)
        offsets = log_offsets(target.services)
        begin = Marks.take(pids, clients.pids)
        idle_rate = (sum(begin.clients) - sum(idle.clients)) / (begin.at - idle.at)
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
            args.states / args.rate,
            args.drain_timeout,
            target.services,
        )
        end = Marks.take(pids, clients.pids)
        begin.charge(end, run, own_is_client=False)
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


# The floor.


async def floor_part(args: argparse.Namespace, workdir: Path, scenarios: list[str]) -> list[Run]:
    redis = RedisServer(workdir / "floor-redis")
    PROCS.redises.append(redis)
    await asyncio.to_thread(redis.start)
    port = free_port()
    argv = [PYTHON, str(ROOT / "bench" / "floor.py"), "serve", "--port", str(port),
            "--redis", redis.url]  # fmt: skip
    forwarder = Service("floor", argv, test_env(), workdir / "floor.log")
    PROCS.services.append(forwarder)

    def listening() -> bool:
        forwarder.assert_alive()
        return "floor forwarder on port" in forwarder.output()

    runs: list[Run] = []
    try:
        await asyncio.to_thread(wait_for, listening, 30)
        log(f"floor: forwarder on port {port}, its redis on port {redis.port}")
        for scenario in scenarios:
            runs.append(await floor_run(args, workdir, scenario, port, redis, forwarder))
    finally:
        await asyncio.to_thread(forwarder.stop)
        PROCS.services.remove(forwarder)
        await asyncio.to_thread(redis.stop)
        PROCS.redises.remove(redis)
    return runs


async def floor_run(
    args: argparse.Namespace,
    workdir: Path,
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
    publisher = FloorPublisher()

    async def prepare() -> None:
        await publisher.start(redis.url, channels, args, workdir / "floor-publisher.log")

    async def launch() -> list[str]:
        await publisher.go()
        return jobs

    async def ended(_jobs: list[str]) -> bool:
        return publisher.finished.is_set()

    async def final_seqs(jobs: list[str]) -> dict[str, int]:
        return {job: args.states + 2 for job in jobs}

    def pids() -> dict[str, int]:
        assert publisher.child is not None
        return {
            "forwarder": forwarder.process.pid,
            "publisher": publisher.child.pid,
            "redis": redis_pid(redis),
        }

    target = Target(
        "floor",
        pids,
        [forwarder],
        snapshot=False,
        launch=launch,
        ended=ended,
        final_seqs=final_seqs,
        exact=lambda jobs: {job: args.states + 2 for job in jobs},
        prepare=prepare,
    )
    try:
        run = await run_sockets(
            target,
            scenario,
            sockets,
            lambda jobs: per_tab(jobs, args) if users else jobs * count,
            args,
            workdir,
        )
    finally:
        await publisher.stop()
    late = (publisher.summary or {}).get("late_ms", 0.0)
    if late > 50:
        run.notes.append(f"the floor publisher fell up to {late:.0f} ms behind its schedule")
    return run


class FloorPublisher:
    """One bench/floor.py publish process: "ready", then "go", then its summary line."""

    def __init__(self) -> None:
        self.child: asyncio.subprocess.Process | None = None
        self.summary: dict[str, Any] | None = None
        self.finished = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None

    async def start(
        self, redis_url: str, channels: list[str], args: argparse.Namespace, stderr: Path
    ) -> None:
        argv = [PYTHON, str(ROOT / "bench" / "floor.py"), "publish", "--redis", redis_url,
                "-S", str(args.states), "-R", str(args.rate)]  # fmt: skip
        for channel in channels:
            argv += ["--channel", channel]
        self.child = await spawn(*argv, stderr=stderr)
        assert self.child.stdout is not None
        line = await asyncio.wait_for(self.child.stdout.readline(), 45)
        if line.strip() != b"ready":
            raise RuntimeError(f"the floor publisher did not start ({line!r}); see {stderr}")

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
            await finish(self.child)
        if self.reader is not None:
            self.reader.cancel()


# Our stack: a private redis-server, SQLite, uvicorn and a Celery worker, as in the Procfile.


class Stack:
    def __init__(self, layer: str, workdir: Path, throttle: float) -> None:
        self.layer = layer
        self.throttle = throttle
        self.dir = workdir / f"stack-{layer}"
        self.redis = RedisServer(self.dir / "redis")
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws/progress/"
        self.env: dict[str, str] = {}
        self.web: Service | None = None
        self.worker: Service | None = None
        self.pool = ""
        self.cookie_name = "sessionid"
        self.sessions: dict[str, str] = {}

    @property
    def services(self) -> list[Service]:
        return [s for s in (self.web, self.worker) if s is not None]

    def pids(self) -> dict[str, int]:
        assert self.web is not None and self.worker is not None
        return {
            "web": self.web.process.pid,
            "worker": self.worker.process.pid,
            "redis": redis_pid(self.redis),
        }

    async def start(self, form_users: list[str], session_users: list[str]) -> None:
        self.dir.mkdir(parents=True)
        PROCS.redises.append(self.redis)
        await asyncio.to_thread(self.redis.start)
        self.env = django_env(
            self.dir,
            self.redis,
            CHANNEL_LAYER=self.layer,
            PROGRESS_MAX_SOCKETS="0",  # No cap on one user's sockets.
            # Unfinished jobs per user (0 would mean no limit too); the users scenario has 1 each.
            PROGRESS_MAX_RUNNING_JOBS="1000",
            PROGRESS_THROTTLE=str(self.throttle),
        )
        log(f"{self.layer} stack: redis on port {self.redis.port}; migrate, collectstatic, users")
        await asyncio.gather(
            asyncio.to_thread(manage, self.env, "migrate", "--noinput", "-v0"),
            asyncio.to_thread(manage, self.env, "collectstatic", "--noinput", "-v0"),
        )
        # One password hash for all (PBKDF2 takes 0.7 s a user). The users scenario's users get
        # their sessions from Django's force_login: 100 logins through the form would cost the
        # web ~70 s of PBKDF2. The M scenarios' users log in through the form.
        script = (
            "import json; from django.conf import settings; "
            "from django.contrib.auth.hashers import make_password; "
            "from django.contrib.auth.models import User; from django.test import Client; "
            f"h = make_password({PASSWORD!r}); "
            f"User.objects.bulk_create([User(username=n, password=h) "
            f"for n in {form_users + session_users!r}]); "
            "out = {}\n"
            f"for n in {session_users!r}:\n"
            "    c = Client(); c.force_login(User.objects.get(username=n)); "
            "out[n] = c.cookies[settings.SESSION_COOKIE_NAME].value\n"
            "print(json.dumps({'cookie': settings.SESSION_COOKIE_NAME, 'sessions': out}))"
        )
        made = json.loads(
            (await asyncio.to_thread(manage, self.env, "shell", "-c", script))
            .strip()
            .splitlines()[-1]
        )
        self.cookie_name, self.sessions = made["cookie"], made["sessions"]
        # As the Procfile runs them.
        argv = uvicorn_argv(self.port, "--ws-per-message-deflate", "false")
        web = self.web = Service(f"web-{self.layer}", argv, self.env, self.dir / "web.log")
        PROCS.services.append(web)
        await self.start_worker("prefork", 2)
        await asyncio.to_thread(wait_serving, web, self.base_url)
        log(f"{self.layer} stack: uvicorn on port {self.port}, celery worker {self.pool}")

    async def start_worker(self, pool: str, concurrency: int) -> None:
        """The Procfile's worker (prefork, 2 children), or threads for the users scenario."""
        if self.worker is not None:
            await asyncio.to_thread(self.worker.stop)
            PROCS.services.remove(self.worker)
        argv = [PYTHON, "-m", "celery", "-A", "tasks_site", "worker", "--loglevel", "info",
                "--without-mingle", "--without-gossip"]  # fmt: skip
        if pool == "threads":
            argv += ["--pool", "threads", "--concurrency", str(concurrency)]
            self.pool = f"--pool threads --concurrency {concurrency}"
        else:
            argv += ["--concurrency", "2"]
            self.pool = "prefork --concurrency 2"
        self.worker = Service(
            f"worker-{self.layer}-{pool}", argv, self.env, self.dir / f"worker-{pool}.log"
        )
        PROCS.services.append(self.worker)
        worker = self.worker

        def ready() -> bool:
            worker.assert_alive()
            return " ready." in worker.output()

        await asyncio.to_thread(wait_for, ready, 60, 0.2)

    async def stop(self) -> None:
        for service in self.services:
            await asyncio.to_thread(service.stop)
            PROCS.services.remove(service)
        self.web = self.worker = None
        await asyncio.to_thread(self.redis.stop)
        PROCS.redises.remove(self.redis)

    async def form_login(self, username: str) -> httpx.Cookies:
        client = await asyncio.to_thread(login, self.base_url, username, PASSWORD)
        cookies = httpx.Cookies(client.cookies)
        client.close()
        return cookies

    async def csrf_token(self) -> str:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as client:
            await client.get("/accounts/login/")
            return str(client.cookies["csrftoken"])


class Owners:
    """The logged-in users who launch and read the jobs, one per job, over fresh connections.

    uvicorn closes a connection idle for 5 s; reusing one as it does so fails the request, so
    each call opens its own (and a read is tried twice).
    """

    def __init__(self, base_url: str, cookies: list[httpx.Cookies | dict[str, str]]) -> None:
        self.base_url = base_url
        self.cookies = cookies

    def client(self, cookies: httpx.Cookies | dict[str, str]) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, cookies=cookies, timeout=60)

    async def launch(self, args: argparse.Namespace) -> list[str]:
        """POST /api/jobs/ for demo.count, one job per owner, all at once; returns the ids."""
        params = {"steps": args.states, "delay": round(1 / args.rate, 6)}

        async def one(cookies: httpx.Cookies | dict[str, str]) -> str:
            async with self.client(cookies) as api:
                response = await api.post(
                    "/api/jobs/",
                    json={"task": "demo.count", "params": params},
                    headers={"X-CSRFToken": api.cookies["csrftoken"]},
                )
            if response.status_code != 201:
                raise RuntimeError(
                    f"POST /api/jobs/ answered {response.status_code}: {response.text[:300]}"
                )
            return str(response.json()["id"])

        return list(await asyncio.gather(*(one(cookies) for cookies in self.cookies)))

    async def fetch(self, jobs: list[str]) -> list[dict[str, Any]]:
        """GET /api/jobs/<id>/ of each job, with its owner's cookies."""

        async def one(cookies: httpx.Cookies | dict[str, str], job: str) -> dict[str, Any]:
            for attempt in (1, 2):
                try:
                    async with self.client(cookies) as api:
                        response = await api.get(f"/api/jobs/{job}/")
                    response.raise_for_status()
                    data: dict[str, Any] = response.json()
                    return data
                except httpx.HTTPError:
                    if attempt == 2:
                        raise
                    await asyncio.sleep(0.5)
            raise AssertionError("unreachable")

        pairs = zip(self.cookies, jobs, strict=True)
        return list(await asyncio.gather(*(one(cookies, job) for cookies, job in pairs)))

    async def ended(self, jobs: list[str]) -> bool:
        try:
            return all(job["state"] in FINAL for job in await self.fetch(jobs))
        except httpx.HTTPError as exc:
            log(f"could not read the jobs' states ({exc!r}); trying again")
            return False


def note_coalescing(run: Run, args: argparse.Namespace) -> None:
    """Says so when ours published far fewer states than its documented throttle allows.

    docs/protocol.md: progress goes out at most once per THROTTLE per job, the last of a
    burst always; with PENDING, STARTED and the final state that is about S / (R x T) + 3.
    """
    if run.failure or not run.published:
        return
    expected = args.states * min(1.0, 1 / (args.rate * args.throttle)) + 3
    got = median([float(n) for n in run.published])
    if got < 0.8 * expected:
        run.notes.append(
            f"ours published a median of {got:.0f} states per job, where one progress state "
            f"per {args.throttle:g} s (THROTTLE) gives about {expected:.0f}: the rest were "
            "coalesced before they got a seq"
        )


def ours_target(stack: Stack, owners: Owners, args: argparse.Namespace) -> Target:
    async def final_seqs(jobs: list[str]) -> dict[str, int]:
        return {row["id"]: int(row["seq"]) for row in await owners.fetch(jobs)}

    return Target(
        stack.layer,
        stack.pids,
        stack.services,
        snapshot=True,
        launch=lambda: owners.launch(args),
        ended=owners.ended,
        final_seqs=final_seqs,
    )


async def ours_run(stack: Stack, scenario: str, args: argparse.Namespace, workdir: Path) -> Run:
    count = int(scenario.removeprefix("M="))
    cookies = await stack.form_login(f"fan-{count}")
    headers = {"Cookie": cookie_header(cookies), "Origin": stack.base_url}
    sockets = [{"url": stack.ws_url, "headers": headers} for _ in range(count)]
    target = ours_target(stack, Owners(stack.base_url, [cookies]), args)
    run = await run_sockets(target, scenario, sockets, lambda jobs: jobs * count, args, workdir)
    note_coalescing(run, args)
    return run


def tabs_of(user: int, args: argparse.Namespace) -> int:
    """How many tabs the user number `user` has open in the users scenario: 1 to --tabs."""
    return 1 + user % args.tabs


def per_tab(jobs: list[str], args: argparse.Namespace) -> list[str]:
    """The job each socket of the users scenario watches: its user's, once per tab."""
    return [job for index, job in enumerate(jobs) for _tab in range(tabs_of(index, args))]


async def users_run(stack: Stack, args: argparse.Namespace, workdir: Path) -> Run:
    log(f"{stack.layer} stack: restarting the worker with --pool threads for the users scenario")
    await stack.start_worker("threads", max(2, args.users))
    csrf = await stack.csrf_token()
    names = sorted(stack.sessions)
    owners = Owners(
        stack.base_url,
        [{stack.cookie_name: stack.sessions[name], "csrftoken": csrf} for name in names],
    )
    sockets = [
        {
            "url": stack.ws_url,
            "headers": {
                "Cookie": f"{stack.cookie_name}={stack.sessions[name]}; csrftoken={csrf}",
                "Origin": stack.base_url,
            },
        }
        for index, name in enumerate(names)
        for _tab in range(tabs_of(index, args))
    ]
    target = ours_target(stack, owners, args)
    run = await run_sockets(
        target, "users", sockets, lambda jobs: per_tab(jobs, args), args, workdir
    )
    note_coalescing(run, args)
    run.notes.append(
        f"worker ran with {stack.pool} (prefork's 2 children cannot run {len(names)} jobs at once)"
    )
    run.notes.append(
        f"the {len(names)} POSTs took {run.launch_s:.1f} s; '{LOCKED}' appeared {run.locked} "
        "times in the server logs"
    )
    return run


# Polling, as celery-progress does it.


@dataclasses.dataclass
class Poller:
    seqs: list[int] = dataclasses.field(default_factory=list)
    lags_ms: list[float] = dataclasses.field(default_factory=list)
    requests: int = 0
    errors: int = 0
    bytes: int = 0
    final: bool = False


async def poll(
    api: httpx.AsyncClient, job: str, poller: Poller, on_final: Callable[[], None]
) -> None:
    """GETs the job, then again POLL_INTERVAL after each answer, until a final state."""
    await asyncio.sleep(random.uniform(0, POLL_INTERVAL))  # Tabs do not open in step.
    last = 0
    while True:
        try:
            response = await api.get(f"/api/jobs/{job}/")
        except httpx.HTTPError:
            poller.errors += 1
            await asyncio.sleep(POLL_INTERVAL)
            continue
        received = time.time()
        poller.requests += 1
        poller.bytes += len(response.content)
        if response.status_code != 200:
            poller.errors += 1
        else:
            state = response.json()
            if state["seq"] > last:  # The seq rule: a newly seen state.
                last = state["seq"]
                poller.seqs.append(last)
                poller.lags_ms.append((received - state["ts"]) * 1000)
            if state["state"] in FINAL:
                poller.final = True
                on_final()
                return
        await asyncio.sleep(POLL_INTERVAL)


async def polling_run(stack: Stack, scenario: str, args: argparse.Namespace, workdir: Path) -> Run:
    count = int(scenario.removeprefix("M="))
    run = Run("polling", scenario, count, opened=count, extensions="n/a (HTTP)", procs=1)
    label = f"{run.label} {scenario}"
    cookies = await stack.form_login(f"poll-{count}")
    # One WebSocket (not a poller) watches the job too, to count the states it publishes.
    reference = Clients(workdir, f"polling-{count}-ref")
    owners = Owners(stack.base_url, [cookies])
    # One client (connection) per poller, as each tab has its own: one shared pool of 1,000
    # connections costs httpx several times the CPU per request. One SSL context for all keeps
    # creating them cheap.
    context = ssl.create_default_context()
    clients = [
        httpx.AsyncClient(base_url=stack.base_url, cookies=cookies, timeout=120, verify=context)
        for _ in range(count)
    ]
    pollers = [Poller() for _ in range(count)]
    tasks: list[asyncio.Task[None]] = []
    lag = LagMeter()
    try:
        headers = {"Cookie": cookie_header(cookies), "Origin": stack.base_url}
        await reference.start([{"url": stack.ws_url, "headers": headers}], True, 1)
        pids = stack.pids()
        await settle(pids, label)
        offsets = log_offsets(stack.services)
        lag.start()
        begin = Marks.take(pids, reference.pids)
        [job] = await owners.launch(args)
        run.launch_s = time.monotonic() - begin.at
        log(f"{label}: job launched; {count} pollers GET it every {POLL_INTERVAL * 1000:.0f} ms")
        done = asyncio.Event()
        finals = 0

        def on_final() -> None:
            nonlocal finals
            finals += 1
            if finals == count:
                done.set()

        tasks = [
            asyncio.create_task(poll(client, job, poller, on_final))
            for client, poller in zip(clients, pollers, strict=True)
        ]

        async def ended() -> bool:
            return await owners.ended([job])

        await wait_end(
            label,
            done,
            count,
            lambda: finals,
            [job],
            lambda: reference.jobs_final | ({job} if finals else set()),
            ended,
            args.states / args.rate,
            args.drain_timeout,
            stack.services,
        )
        end = Marks.take(pids, reference.pids)
        begin.charge(end, run, own_is_client=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        run.lag_p99_ms = percentile(lag.stop(), 99)
        records, _lags = await reference.stop()
        row = (await owners.fetch([job]))[0]
        score_polling(run, pollers, records[0]["jobs"].get(job, {}).get("seqs", []), row)
        count_log_lines(stack.services, offsets, run)
        run.notes.append("states published also counts one WebSocket that watched the job")
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        run.failure = f"{type(exc).__name__}: {exc}"
    finally:
        lag.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await reference.close()
        await asyncio.gather(*(client.aclose() for client in clients))
    log_run(run)
    return run


def score_polling(
    run: Run, pollers: list[Poller], reference: list[int], row: dict[str, Any]
) -> None:
    final = int(row["seq"])
    seen = set(reference) | {final}
    for poller in pollers:
        seen.update(poller.seqs)
    run.published = [len(seen)]
    run.unseen = len(set(range(1, final + 1)) - seen)
    for poller in pollers:
        run.shares.append(len(poller.seqs) / len(seen))
        run.finals += poller.final
        run.latencies_ms.extend(poller.lags_ms)
        run.delivered += len(poller.seqs)
        run.payload_bytes += poller.bytes
        run.requests += poller.requests
        run.request_errors += poller.errors


# One stack per layer: its M scenarios, polling on the redis one, then the users scenario.


async def stack_part(
    layer: str, args: argparse.Namespace, workdir: Path, sweep: bool, polling: bool, users: bool
) -> list[Run]:
    stack = Stack(layer, workdir, args.throttle)
    form_users = [f"fan-{m}" for m in args.sockets] + [f"poll-{m}" for m in args.sockets]
    session_users = [f"user-{i:03d}" for i in range(args.users)] if users else []
    runs: list[Run] = []
    planned = (
        ([(layer, s) for s in args.scenarios] if sweep else [])
        + ([("polling", s) for s in args.scenarios] if polling else [])
        + ([(layer, "users")] if users else [])
    )
    try:
        await stack.start(form_users, session_users)
        for part, scenario in planned:
            if part == "polling":
                runs.append(await polling_run(stack, scenario, args, workdir))
            elif scenario == "users":
                runs.append(await users_run(stack, args, workdir))
            else:
                runs.append(await ours_run(stack, scenario, args, workdir))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log(f"{layer} stack FAILED: {type(exc).__name__}: {exc}")
        for service in stack.services:
            tail = service.output()[-1500:].strip()
            if tail:
                log(f"{service.name}, last output:\n{tail}")
        done = {(r.part, r.scenario) for r in runs}
        for part, scenario in planned:
            if (part, scenario) not in done:
                runs.append(Run(part, scenario, watchers=0, failure=f"{type(exc).__name__}: {exc}"))
    finally:
        with contextlib.suppress(Exception):
            await stack.stop()
    return runs


# The report.


def vs_floor(runs: dict[str, Run], get: Callable[[Run], float], digits: int) -> dict[str, str]:
    floor = runs.get("floor")
    cells = {}
    for part, run in runs.items():
        value = get(run)
        cell = fmt(value, digits)
        if part != "floor" and floor is not None and not floor.failure:
            cell += ratio(value, get(floor))
        cells[part] = cell
    return cells


def cpu_split(run: Run) -> str:
    return " / ".join(f"{name} {seconds:.2f}" for name, seconds in run.cpu.items())


def published_cell(run: Run, args: argparse.Namespace) -> str:
    if not run.published:
        return "n/a"
    low, high = min(run.published), max(run.published)
    text = str(low) if low == high else f"{low}..{high}"
    return f"{text} (exact)" if run.part == "floor" else text


def table(runs: dict[str, Run], args: argparse.Namespace) -> str:
    parts = [part for part in LABELS if part in runs]
    text_rows: list[tuple[str, Callable[[Run], str]]] = [
        ("clients open (sockets or pollers)", lambda r: f"{r.opened}/{r.watchers}"),
        ("states published per job", lambda r: published_cell(r, args)),
        (
            "delivered/published per client, min %",
            lambda r: fmt(100 * min(r.shares, default=math.nan)),
        ),
        (
            "delivered/published per client, mean %",
            lambda r: fmt(100 * sum(r.shares) / len(r.shares) if r.shares else math.nan),
        ),
        ("final state seen by", lambda r: f"{r.finals}/{r.watchers}"),
    ]
    ratio_rows: list[tuple[str, Callable[[Run], float], int]] = [
        ("latency ts->receipt p50 ms", lambda r: percentile(r.latencies_ms, 50), 1),
        ("latency p90 ms", lambda r: percentile(r.latencies_ms, 90), 1),
        ("latency p99 ms", lambda r: percentile(r.latencies_ms, 99), 1),
        ("latency max ms", lambda r: max(r.latencies_ms, default=math.nan), 1),
        ("updates delivered", lambda r: float(r.delivered), 0),
        ("server CPU s, total", lambda r: r.cpu_s, 2),
        ("server CPU s per 1,000 updates", lambda r: r.cpu_per_1000, 3),
        (
            "payload bytes per update",
            lambda r: r.payload_bytes / r.delivered if r.delivered else math.nan,
            0,
        ),
    ]
    tail_rows: list[tuple[str, Callable[[Run], str]]] = [
        ("server CPU split s", cpu_split),
        (
            "HTTP requests (body bytes each)",
            lambda r: f"{r.requests} ({r.payload_bytes / r.requests:.0f})" if r.requests else "-",
        ),
        ("seqs up to the final one no client saw", lambda r: str(r.unseen)),
        ("frames out of order or repeated", lambda r: str(r.disorder)),
        (
            "client CPU s (busiest process, % of a core)",
            lambda r: f"{r.client_cpu_s:.2f} ({100 * r.client_peak:.0f}%)",
        ),
        (
            "client processes (client CPU ms to read one state on all its sockets)",
            lambda r: f"{r.procs} ({fmt(r.burst_ms)})" if r.part != "polling" else "1 (main)",
        ),
        ("client loop lag p99 ms", lambda r: fmt(r.lag_p99_ms)),
        (
            "other processes' CPU s (noise, cores on average)",
            lambda r: f"{r.other_cpu_s:.2f} ({fmt(r.noise, 2)})",
        ),
        ("window s (launch to last final)", lambda r: f"{r.window_s:.1f}"),
        ("launch s (POST /api/jobs/, or the floor's go)", lambda r: f"{r.launch_s:.1f}"),
        (
            "closed early / failed to open / HTTP errors",
            lambda r: f"{len(r.closed_early)} / {len(r.open_errors)} / {r.request_errors}",
        ),
        ("server ERROR lines", lambda r: str(r.errors)),
        ("negotiated WebSocket extension", lambda r: r.extensions or "none"),
    ]
    rows: list[list[str]] = []
    for name, show in text_rows:
        rows.append([name, *("failed" if runs[p].failure else show(runs[p]) for p in parts)])
    ok = {p: r for p, r in runs.items() if not r.failure}
    for name, get, digits in ratio_rows:
        cells = vs_floor(ok, get, digits)
        rows.append([name, *(cells.get(p, "failed") for p in parts)])
    for name, show in tail_rows:
        rows.append([name, *("failed" if runs[p].failure else show(runs[p]) for p in parts)])
    return markdown_table(["", *(LABELS[p] for p in parts)], rows)


def scenario_title(scenario: str, args: argparse.Namespace) -> str:
    job = f"demo.count steps={args.states} delay={1 / args.rate:g}"
    if scenario == "users":
        tabs = "1 socket" if args.tabs == 1 else f"1 to {args.tabs} sockets (tabs)"
        return (
            f"users: {args.users} users, each with {tabs} and 1 job ({job}) at once; "
            f"ours with the worker on --pool threads --concurrency {max(2, args.users)}"
        )
    return f"{scenario}: one job ({job}) watched by {scenario[2:]} sockets (pollers) of its owner"


def verdicts(by: dict[str, dict[str, Run]], args: argparse.Namespace) -> list[str]:
    lines: list[str] = []
    layers = [p for p in ("redis", "pubsub") if any(p in runs for runs in by.values())]
    sweep = [s for s in args.scenarios if s in by]

    def mark(ok: bool | None) -> str:
        return "n/a " if ok is None else "PASS" if ok else "FAIL"

    def against_floor(layer: str, claim: str, check: Callable[[Run, Run], tuple[bool, str]]) -> str:
        """The verdict on `claim`, checked on the layer's run and the floor's at every M."""
        pairs = [(s, by[s][layer], by[s].get("floor")) for s in sweep if layer in by[s]]
        checked = [(s, r, f) for s, r, f in pairs if f and not f.failure and not r.failure]
        parts = []
        ok = bool(checked) and len(checked) == len(pairs)
        for s, r, f in checked:
            passed, figures = check(r, f)
            ok = ok and passed
            parts.append(f"{s} {figures}")
        return (
            f"[{mark(ok if checked else None)}] {LABELS[layer]}: {claim}: "
            f"{'; '.join(parts) or 'floor not run'}"
        )

    def latency(r: Run, f: Run) -> tuple[bool, str]:
        p50 = percentile(r.latencies_ms, 50) / percentile(f.latencies_ms, 50)
        p99 = percentile(r.latencies_ms, 99) / percentile(f.latencies_ms, 99)
        return p50 <= 2 and p99 <= 3, f"p50 x{p50:.1f}, p99 x{p99:.1f}"

    def cpu(r: Run, f: Run) -> tuple[bool, str]:
        x = r.cpu_per_1000 / f.cpu_per_1000
        return x <= 3, f"x{x:.1f}"

    for layer in layers:
        runs = [(s, by[s][layer]) for s in [*sweep, "users"] if s in by and layer in by[s]]
        bad = [
            f"{s} (min {fmt(100 * min(r.shares, default=0))}%, final {r.finals}/{r.watchers}"
            + (f", {r.failure}" if r.failure else "")
            + ")"
            for s, r in runs
            if not r.complete
        ]
        lines.append(
            f"[{mark(not bad)}] {LABELS[layer]}: every client receives every published "
            f"state and the final one ({', '.join(s for s, _ in runs)})"
            + (f": not at {'; '.join(bad)}" if bad else "")
        )
    claims = [
        ("p50 <= 2x floor and p99 <= 3x floor at every M", latency),
        ("server CPU per 1,000 delivered updates <= 3x floor at every M", cpu),
    ]
    for claim, check in claims:
        lines += [against_floor(layer, claim, check) for layer in layers]
    top = f"M={max(args.sockets)}"
    for layer in layers:
        ours, polling = by.get(top, {}).get(layer), by.get(top, {}).get("polling")
        if ours is None or polling is None or ours.failure or polling.failure:
            lines.append(
                f"[n/a ] {LABELS[layer]}: lag at {top} >= 100x better than polling: not measured"
            )
            continue
        p50 = percentile(polling.latencies_ms, 50) / percentile(ours.latencies_ms, 50)
        p99 = percentile(polling.latencies_ms, 99) / percentile(ours.latencies_ms, 99)
        lines.append(
            f"[{mark(p50 >= 100)}] {LABELS[layer]}: lag at {top} >= 100x better than "
            f"polling (p50): p50 {fmt(percentile(polling.latencies_ms, 50))} vs "
            f"{fmt(percentile(ours.latencies_ms, 50))} ms = {p50:.0f}x, p99 "
            f"{fmt(percentile(polling.latencies_ms, 99))} vs "
            f"{fmt(percentile(ours.latencies_ms, 99))} ms = {p99:.0f}x"
        )
    return lines


def bottleneck(runs: list[Run]) -> list[str]:
    """Whether the client kept up, and how much of the latency is its own read queue."""
    ok = [r for r in runs if not r.failure]
    if not ok:
        return ["Client: no run to judge."]
    peak = max(ok, key=lambda r: r.client_peak)
    lag = max(ok, key=lambda r: 0.0 if math.isnan(r.lag_p99_ms) else r.lag_p99_ms)
    lines = [
        f"Client: the busiest client process used at most {100 * peak.client_peak:.0f}% of a "
        f"core ({peak.label} {peak.scenario}); event-loop lag p99 was at most "
        f"{fmt(lag.lag_p99_ms)} ms ({lag.label} {lag.scenario})."
    ]
    flagged = []
    for r in ok:
        p50 = percentile(r.latencies_ms, 50)
        if r.client_peak > 0.85:
            flagged.append(f"{r.label} {r.scenario} ({100 * r.client_peak:.0f}% of a core)")
        elif r.lag_p99_ms > 50 and r.lag_p99_ms > 0.1 * p50:
            flagged.append(
                f"{r.label} {r.scenario} (loop lag p99 {fmt(r.lag_p99_ms)} ms, latency p50 "
                f"{fmt(p50)} ms)"
            )
    if flagged:
        lines.append(f"It may have held back the results in: {'; '.join(flagged)}.")
    else:
        lines.append(
            "It kept up everywhere (no process above 85% of a core, and no loop lag above "
            "50 ms that mattered next to the latency): not a bottleneck."
        )
    queue = [
        f"{r.label} {r.scenario} {fmt(r.burst_ms)} of {fmt(percentile(r.latencies_ms, 50))} ms"
        for r in ok
        if r.burst_ms > 0.3 * percentile(r.latencies_ms, 50)
    ]
    if queue:
        lines.append(
            "But each state reaches a client process's sockets one after the other: where "
            "reading one state on all of them takes it a fair share of the p50 latency, part of "
            "every server's latency is the client's own queue (client CPU ms per state vs p50): "
            + "; ".join(queue)
            + "."
        )
    return lines


def noise(runs: dict[str, Run]) -> str | None:
    busy = {r.label: r.noise for r in runs.values() if not r.failure and not math.isnan(r.noise)}
    if not busy or max(busy.values()) < 0.25:
        return None
    cores = ", ".join(f"{label} {value:.2f}" for label, value in busy.items())
    return (
        f"noise: other processes kept these cores busy on average during the windows: {cores}; "
        "ratios between columns are less reliable where these differ"
    )


def report(runs: list[Run], args: argparse.Namespace, elapsed: float) -> None:
    by: dict[str, dict[str, Run]] = {}
    for run in runs:
        by.setdefault(run.scenario, {})[run.part] = run
    print()
    print(
        f"Fan-out bench, {machine()}; total {elapsed / 60:.1f} min. S={args.states} states at "
        f"{args.rate:g}/s; sockets opened {HANDSHAKES} at a time; drain timeout "
        f"{args.drain_timeout:g} s. Ratios (xN) are against the floor in the same run."
    )
    for scenario in [*args.scenarios, "users"]:
        if scenario not in by:
            continue
        print()
        print(f"### {scenario_title(scenario, args)}")
        print()
        print(table(by[scenario], args))
        warning = noise(by[scenario])
        if warning:
            print(f"- {warning}")
        for run in by[scenario].values():
            for note in dict.fromkeys(run.notes):
                print(f"- {run.label}: {note}")
            if run.failure:
                print(f"- {run.label}: FAILED: {run.failure}")
            if run.unseen and not run.failure:
                print(
                    f"- {run.label}: {run.unseen} seqs up to a job's final one reached no client, "
                    "so 'states published' may undercount"
                )
            if run.closed_early:
                print(f"- {run.label}: sockets closed early: {sorted(set(run.closed_early))[:3]}")
            if run.open_errors:
                print(f"- {run.label}: sockets failed to open: {sorted(set(run.open_errors))[:3]}")
    print()
    print(
        "How it counts:\n"
        "- latency = receipt time.time() - job.ts, over every job frame of every client "
        "(polling: the first answer that shows a seq);\n"
        "- states published = S + 2 for the floor (STARTED, S PROGRESS, SUCCESS); for ours "
        "and polling, the distinct seqs of the job that any client or its final row "
        "(GET /api/jobs/<id>/) shows; in users, per job, with one socket per job;\n"
        "- delivered/published per client = distinct seqs it got / published;\n"
        "- server CPU = utime + stime of the process trees (ours: web + worker + redis; floor: "
        "forwarder + publisher + redis) from just before the launch to the last final state; "
        "ratios of CPU use the per-1,000-updates figure;\n"
        "- payload bytes = WebSocket message bytes (polling: response bodies, per newly seen "
        "state, and per request)."
    )
    print()
    print("Verdicts:")
    for line in verdicts(by, args):
        print(f"- {line}")
    print()
    for line in bottleneck(runs):
        print(line)


# Setup and teardown.


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="M = 10, 100 and S = 50")
    parser.add_argument(
        "--only",
        action="append",
        choices=PARTS,
        help="run only this part (repeatable); users runs on the selected floor/redis/pubsub, "
        "or on all three if none is selected",
    )
    parser.add_argument("--sockets", help="comma-separated M values (default 10,100,1000)")
    parser.add_argument("--states", "-S", type=int, help="steps of the job (default 200)")
    parser.add_argument("--rate", "-R", type=float, default=20.0, help="steps/s (default 20)")
    parser.add_argument("--users", type=int, default=USER_COUNT, help="users scenario size")
    parser.add_argument(
        "--tabs",
        type=int,
        default=1,
        help="in the users scenario, user i has 1 + i %% TABS sockets: 5 gives per-user groups "
        "of 1 to 5 sockets (default 1: one socket each)",
    )
    parser.add_argument(
        "--throttle",
        type=float,
        default=0.02,
        help="PROGRESS THROTTLE for ours (default 0.02 s: every step of 20/s is published, "
        "as the floor publishes them; the service's default of 0.1 s publishes every other)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=20.0,
        help="seconds to wait for final states after the job ended",
    )
    parser.add_argument(
        "--client-procs",
        type=int,
        default=0,
        help="client processes (default: 1, or 1 per 500 sockets)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    args = parser.parse_args(argv)
    default_sockets = "10,100" if args.quick else "10,100,1000"
    args.sockets = [int(m) for m in (args.sockets or default_sockets).split(",")]
    args.states = args.states or (50 if args.quick else 200)
    args.scenarios = [f"M={m}" for m in args.sockets]
    if min(args.sockets) < 1 or args.states < 1 or args.rate <= 0 or min(args.users, args.tabs) < 1:
        parser.error("M, S, --users and --tabs must be >= 1 and --rate > 0")
    return args


async def amain(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    assert task is not None
    interrupted = False

    def on_signal() -> None:
        nonlocal interrupted
        if not interrupted:
            interrupted = True
            task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, on_signal)
    parts = set(args.only or PARTS)
    configs = parts & {"floor", "redis", "pubsub"}
    users_on = (configs or {"floor", "redis", "pubsub"}) if "users" in parts else set()
    log(
        f"machine: {machine()}; M = {', '.join(map(str, args.sockets))}; S = {args.states} at "
        f"{args.rate:g}/s; ours with THROTTLE {args.throttle:g} s; "
        f"parts: {', '.join(p for p in PARTS if p in parts)}"
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    started = time.monotonic()
    runs: list[Run] = []
    try:
        if "floor" in parts or "floor" in users_on:
            scenarios = (args.scenarios if "floor" in parts else []) + (
                ["users"] if "floor" in users_on else []
            )
            try:
                runs += await floor_part(args, workdir, scenarios)
            except Exception as exc:
                log(f"floor FAILED: {type(exc).__name__}: {exc}")
                runs += [Run("floor", s, 0, failure=str(exc)) for s in scenarios]
        for layer in ("redis", "pubsub"):
            sweep = layer in parts
            polling = layer == "redis" and "polling" in parts
            users = layer in users_on
            if sweep or polling or users:
                runs += await stack_part(layer, args, workdir, sweep, polling, users)
    except asyncio.CancelledError:
        if not interrupted:
            raise
        log("interrupted; stopping every process")
    finally:
        PROCS.stop_children()
        await asyncio.to_thread(PROCS.stop_all)
        if args.keep:
            log(f"kept {workdir} (server logs)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(runs, args, time.monotonic() - started)
    if interrupted:
        return 130
    return 1 if any(run.failure for run in runs) else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit(4 * max(args.sockets) + 2048)
    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
