"""Compares ASGI servers for /ws/progress/: memory, handshakes, fan-out latency and CPU.

Each configuration is a real server process serving `tasks_site.asgi:application` against a
private redis-server and a throwaway SQLite database:

    A. uvicorn --ws-per-message-deflate false, as the Procfile runs it (the baseline)
    B. uvicorn with per-message-deflate on        (uvicorn's default)
    C. daphne with its defaults

For each one, in turn and in the same run, the bench
  1. reads the server's RSS idle (after one warm-up socket) and with M idle sockets open;
  2. times the handshake + snapshot frame of those M sockets, opened 50 at a time;
  3. publishes S progress states of one job at R per second, through the project's own
     publisher (Redis + channel layer, as a Celery worker would), to the one user who owns
     all M sockets, and records recv time - ts of every frame on every socket;
  4. reads the server's CPU time (utime + stime) spent during step 3.

    .venv/bin/python bench/asgi_servers.py            # M=1000, S=200, R=20
    .venv/bin/python bench/asgi_servers.py --quick    # M=100, S=50: a smoke run

It exits 1 if a server failed, or a socket failed to open, closed early or missed the final
state.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # Run as a script.

from bench import harness
from bench.harness import CpuMarks, Metric, TextRow, Window, log, median, percentile, rss_kib
from bench.sockets import Fleet, Opening, ServerConfig, ServerResult, chosen, measure_server
from bench.stack import BenchRun, Web, bench_run, error_lines, local_stack
from devstack.processes import PYTHON, web_argv

CONCURRENCY = 50


def _daphne(port: int) -> list[str]:
    return [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
            "tasks_site.asgi:application"]  # fmt: skip


CONFIGS = [
    ServerConfig("uvicorn", "A uvicorn, deflate off", web_argv),
    ServerConfig("uvicorn-deflate", "B uvicorn, deflate on", lambda p: web_argv(p, deflate=True)),
    ServerConfig("daphne", "C daphne", _daphne),
]


@dataclasses.dataclass
class Result(ServerResult):
    rss_after_kib: int = 0
    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    got_final: int = 0
    deliver_s: float = 0.0
    publish_s: float = 0.0
    step3: Window = dataclasses.field(default_factory=Window)
    errors_step3: int = 0

    @property
    def frames(self) -> int:
        return len(self.latencies_ms)

    @property
    def cpu_us_per_frame(self) -> float:
        return self.step3.server * 1e6 / self.frames if self.frames else math.nan

    @property
    def frames_per_s(self) -> float:
        """Frames delivered per second, from the first publish to the last frame received."""
        return self.frames / self.deliver_s if self.deliver_s else math.nan


class Receipts:
    """What the sockets received of one job's PROGRESS frames: latencies, and final states."""

    def __init__(self, job_id: str, final: int) -> None:
        self.job_id = job_id
        self.final = final
        self.latencies: list[float] = []
        self.final_on: set[int] = set()  # id() of each socket that got the final state
        self.target = 0
        self.all_final = asyncio.Event()
        self.last_recv = 0.0

    @property
    def finals(self) -> int:
        return len(self.final_on)

    def __call__(self, conn: object, now: float, message: str | bytes) -> None:
        self.last_recv = now
        frame = json.loads(message)
        job = frame.get("job") or {}
        if frame.get("type") != "job" or job["id"] != self.job_id or job["state"] != "PROGRESS":
            return
        self.latencies.append(now - job["ts"])
        if job["current"] == self.final and id(conn) not in self.final_on:
            self.final_on.add(id(conn))
            if self.finals >= self.target:
                self.all_final.set()


def publish_states(job: Any, states: int, rate: float, stop: threading.Event) -> float:
    """Publishes `states` PROGRESS states of the job at `rate`/s; returns the time it took.
    With 0 states it publishes STARTED, which warms the publisher and the layer."""
    from progress.core.publisher import get_publisher
    from progress.protocol.states import State

    publisher = get_publisher()
    base = job.to_state()
    if not states:
        publisher.publish(dataclasses.replace(base, state=State.STARTED, ts=time.time())).result(30)
        return 0.0
    begin = time.monotonic()
    for i in range(1, states + 1):
        if stop.is_set():
            break
        delay = begin + (i - 1) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        state = dataclasses.replace(
            base, state=State.PROGRESS, current=i, total=states, ts=time.time()
        )
        publisher.publish(state).result(30)
    return time.monotonic() - begin


async def fan_out(
    result: Result,
    web: Web,
    redis_pid: int,
    fleet: Fleet,
    receipts: Receipts,
    job: Any,
    args: argparse.Namespace,
) -> None:
    """Steps 3 and 4 of one configuration, once its sockets are open (the module's docstring)."""
    label, pid = result.config.label, web.pid
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    await loop.run_in_executor(None, publish_states, job, 0, 1.0, stop)
    await asyncio.sleep(1)
    receipts.target = result.opening.opened
    log(f"{label}: step 3 publishing {args.states} states at {args.rate}/s "
        f"to {result.opening.opened} sockets")  # fmt: skip
    begin, wall_begin = CpuMarks.take({"server": pid, "redis": redis_pid}), time.time()
    try:
        result.publish_s = await loop.run_in_executor(
            None, publish_states, job, args.states, args.rate, stop
        )
    finally:
        stop.set()  # On Ctrl-C, ends the publishing thread at its next state.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(receipts.all_final.wait(), args.drain_timeout)
    end = CpuMarks.take({"server": pid, "redis": redis_pid})
    result.step3 = Window.between(begin, end)
    await asyncio.sleep(0.5)  # Let stragglers land, for a fair count.
    result.got_final = receipts.finals
    result.latencies_ms = [value * 1000 for value in receipts.latencies]
    result.deliver_s = max(0.0, receipts.last_recv - wall_begin)
    result.errors_step3 = len(error_lines(web.service))
    result.dropped = list(fleet.dropped)
    if result.dropped:
        log(f"{label}: {len(result.dropped)} sockets closed early, e.g. {result.dropped[0]}")
    web.service.assert_alive()
    await asyncio.sleep(1)
    result.rss_after_kib = rss_kib(pid)
    log(f"{label}: fan-out p50 {percentile(result.latencies_ms, 50):.1f} ms, "
        f"p99 {percentile(result.latencies_ms, 99):.1f} ms; final state on "
        f"{result.got_final}/{result.opening.opened} sockets; server CPU "
        f"{result.step3.server:.2f}s; publishing took {result.publish_s:.1f}s")  # fmt: skip
    log(f"{label}: closing sockets")
    await fleet.close(handshake=True, concurrency=CONCURRENCY)


def run_config(
    config: ServerConfig, run: BenchRun, env: dict[str, str], redis_pid: int,
    args: argparse.Namespace, round_no: int,
) -> Result:  # fmt: skip
    from django.contrib.auth.models import User

    from progress.models import Job

    result = Result(config, Opening(args.sockets))
    username = f"bench-{config.key}-{round_no}"

    def setup(web: Web) -> tuple[Fleet, Coroutine[Any, Any, None]]:
        headers = web.socket_headers(web.login(username))
        job = Job.objects.create(owner=User.objects.get(username=username), task="bench.fanout",
                                 ts=time.time())  # fmt: skip
        receipts = Receipts(str(job.id), final=args.states)
        fleet = Fleet(web.ws_url, [headers], on_message=receipts)
        return fleet, fan_out(result, web, redis_pid, fleet, receipts, job, args)

    measure_server(run, result, f"{config.key}-{round_no}", env, setup, CONCURRENCY, True)
    return result


# The report: medians over rounds, with ratios against A from the same run.

Rounds = list[Result]


def over_rounds(get: Callable[[Result], float]) -> Callable[[Rounds], float]:
    return lambda rounds: median([get(r) for r in rounds if not r.error])


METRICS: list[Metric[Rounds]] = [
    (name, over_rounds(get), digits, relative)
    for name, get, digits, relative in [
        ("idle RSS MiB", lambda r: r.opening.rss_idle_kib / 1024, 1, True),
        ("RSS, M open MiB", lambda r: r.opening.rss_open_kib / 1024, 1, True),
        ("KiB/socket", lambda r: r.opening.kib_per_socket, 1, True),
        ("KiB/socket after fan-out", lambda r: r.opening.kib_per_socket_at(r.rss_after_kib), 1,
         True),
        ("handshake p50 ms", lambda r: percentile(r.opening.handshake_ms, 50), 1, True),
        ("handshake p99 ms", lambda r: percentile(r.opening.handshake_ms, 99), 1, True),
        ("open M total s", lambda r: r.opening.seconds, 2, True),
        ("fan-out p50 ms", lambda r: percentile(r.latencies_ms, 50), 1, True),
        ("fan-out p99 ms", lambda r: percentile(r.latencies_ms, 99), 1, True),
        ("server CPU s (step 3)", lambda r: r.step3.server, 2, True),
        ("server CPU us per frame", lambda r: r.cpu_us_per_frame, 0, True),
        ("frames delivered/s", lambda r: r.frames_per_s, 0, True),
    ]
]  # fmt: skip


def table(results: dict[str, Rounds], args: argparse.Namespace) -> str:
    def each(show: Callable[[Result], str]) -> Callable[[Rounds], str]:
        return lambda rounds: " / ".join("failed" if r.error else show(r) for r in rounds)

    texts: list[TextRow[Result]] = [
        ("sockets opened", lambda r: f"{r.opening.opened}/{args.sockets}"),
        ("final state received", lambda r: f"{r.got_final}/{r.opening.opened}"),
        ("frames received", lambda r: f"{r.frames}/{r.opening.opened * args.states}"),
        ("sockets closed early", lambda r: str(len(r.dropped))),
        ("server errors logged to end of step 3", lambda r: str(r.errors_step3)),
        ("server errors logged in all", lambda r: str(r.errors_total)),
        ("negotiated extension", lambda r: r.opening.extensions.split(";")[0] or "none"),
        ("redis CPU s (step 3)", lambda r: f"{r.step3.redis:.2f}"),
        ("bench client CPU s (step 3)", lambda r: f"{r.step3.own:.2f}"),
        ("other processes' CPU s (step 3)", lambda r: f"{r.step3.other:.2f}"),
        ("first publish to last frame s", lambda r: f"{r.deliver_s:.1f}"),
    ]
    configs = [c for c in CONFIGS if c.key in results]
    columns = [None if all(r.error for r in results[c.key]) else results[c.key] for c in configs]
    baseline = columns[0] if configs and configs[0].key == "uvicorn" else None
    rounds: list[TextRow[Rounds]] = [(name, each(show)) for name, show in texts]
    headers = ["metric"] + [c.label for c in configs]
    return harness.comparison(headers, columns, baseline, METRICS, rounds)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    only = [c.key for c in CONFIGS]
    parser = harness.command_line(__doc__, "a smoke run: M=100, S=50", only, drain=30.0)
    add = parser.add_argument
    add("--sockets", "-M", type=int, default=1000, help="sockets (default 1000)")
    add("--states", "-S", type=int, default=200, help="states (default 200)")
    add("--rate", "-R", type=float, default=20.0, help="states/s (default 20)")
    add("--rounds", type=int, default=1,
        help="repeat each configuration N times in rotating order; medians shown")  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        args.sockets, args.states = 100, 50
    if args.sockets < 1 or args.states < 1 or args.rate <= 0 or args.rounds < 1:
        parser.error("--sockets, --states and --rounds must be >= 1, --rate > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    harness.raise_fd_limit(2 * args.sockets + 1024)
    configs = chosen(CONFIGS, args.only)
    log(f"{harness.about()}; M={args.sockets} sockets, "
        f"S={args.states} states at {args.rate}/s; configurations: "
        f"{', '.join(c.label for c in configs)}")  # fmt: skip
    results: dict[str, Rounds] = {}
    with bench_run("bench-asgi-", args.keep) as run:
        users = [f"bench-{c.key}-{n}" for c in CONFIGS for n in range(args.rounds)]
        # This process publishes as a worker would: on the same database and Redis.
        env, redis = local_stack(run, users, PROGRESS_MAX_SOCKETS="0")  # No cap per user.
        assert redis.process is not None
        for round_no in range(args.rounds):
            # Each round starts with the next configuration, so drift spreads over all.
            order = configs[round_no % len(configs) :] + configs[: round_no % len(configs)]
            if args.rounds > 1:
                log(f"round {round_no + 1}/{args.rounds}")
            for config in order:
                result = run_config(config, run, env, redis.process.pid, args, round_no)
                results.setdefault(config.key, []).append(result)
    if run.interrupted:
        return 130
    print()
    print(f"M={args.sockets} sockets of one user, S={args.states} states at {args.rate}/s, "
          f"handshakes {CONCURRENCY} at a time; {harness.about()}")  # fmt: skip
    print(f"Offered fan-out load: {args.sockets * args.rate:,.0f} frames/s. Ratios (xN) are "
          "against A, uvicorn with deflate off, measured in this same run.")  # fmt: skip
    print()
    print(table(results, args))
    problems = [line for rounds in results.values() for r in rounds
                for line in r.problems(dropped="closed early")]  # fmt: skip
    problems += [
        f"{r.config.label}: only {r.got_final}/{args.sockets} sockets got the final state"
        for rounds in results.values() for r in rounds if not r.error and r.got_final < args.sockets
    ]  # fmt: skip
    for line in problems:
        print(f"\n{line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
