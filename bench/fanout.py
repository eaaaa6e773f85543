"""Progress that reaches a thousand tabs in milliseconds: ours against a floor and polling.

The scenario: one job of S = 200 steps at 20 steps/s (demo.count steps=200 delay=0.05, launched
with POST /api/jobs/ and run by a real Celery worker), watched by M = 10, 100 and 1,000
WebSockets of its owner (one session cookie, Origin set, permessage-deflate offered as browsers
do). Plus "users": 100 users with one socket and one running job each, at the same time.

Measured in the same run, through the public protocol only (HTTP and WebSocket frames):

  floor    bench/floor.py: a bare `websockets` + Redis pub/sub forwarder, no Django, fed by a
           tiny publisher process with S + 2 job frames of our size at 20/s per job.
  redis    ours, CHANNEL_LAYER=redis (channels-redis core layer): the Procfile's web + worker.
  pubsub   ours, CHANNEL_LAYER=pubsub (RedisPubSubChannelLayer); web and worker restarted.
  polling  as celery-progress does it: M pollers GET /api/jobs/<id>/ 500 ms after each answer
           (httpx, logged in), against the redis stack's web process, while the real job runs.
  users    100 users x (1 socket + 1 job), on each layer run (and on the floor), the worker
           restarted with --pool threads --concurrency 100.

Each Django stack has its own redis-server, SQLite database and static root in a temp dir. The
sockets live in client subprocesses (bench/fanout_client.py), whose CPU is measured too, since
they share the machine's cores with the servers. The parts: fanout_floor.py, fanout_stack.py
and fanout_polling.py run them, fanout_sockets.py holds the sockets, fanout_results.py scores
them and fanout_report.py prints the tables.

    .venv/bin/python bench/fanout.py                 # M = 10, 100, 1000; S = 200 (~5 min)
    .venv/bin/python bench/fanout.py --quick         # M = 10, 100; S = 50
    .venv/bin/python bench/fanout.py --sockets 1000 --only floor --only redis
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # Run as a script.

from bench.fanout_floor import floor_part
from bench.fanout_polling import polling_run
from bench.fanout_report import report
from bench.fanout_results import PARTS, Run
from bench.fanout_stack import Stack, ours_run, users_run
from bench.harness import (
    code_version,
    command_line,
    log,
    machine,
    new_loop,
    raise_fd_limit,
    run_measurement,
)
from bench.stack import BenchRun, bench_run


async def stack_part(
    layer: str, args: argparse.Namespace, bench: BenchRun, sweep: bool, polling: bool, users: bool
) -> list[Run]:
    """One stack on `layer`: its M scenarios, polling (on the redis one), then users."""
    stack = Stack(layer, bench, args.throttle)
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
                runs.append(await polling_run(stack, scenario, args))
            elif scenario == "users":
                runs.append(await users_run(stack, args))
            else:
                runs.append(await ours_run(stack, scenario, args))
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


async def all_parts(args: argparse.Namespace, bench: BenchRun, runs: list[Run]) -> None:
    """The floor's scenarios, then each layer's stack; each run lands in `runs` when done, so
    that an interrupted bench still reports what it measured."""
    parts = set(args.only or PARTS)
    configs = parts & {"floor", "redis", "pubsub"}
    users_on = (configs or {"floor", "redis", "pubsub"}) if "users" in parts else set()
    if "floor" in parts or "floor" in users_on:
        scenarios = (args.scenarios if "floor" in parts else []) + (
            ["users"] if "floor" in users_on else []
        )
        try:
            runs += await floor_part(args, bench, scenarios)
        except Exception as exc:
            log(f"floor FAILED: {type(exc).__name__}: {exc}")
            runs += [Run("floor", s, 0, failure=str(exc)) for s in scenarios]
    for layer in ("redis", "pubsub"):
        sweep = layer in parts
        polling = layer == "redis" and "polling" in parts
        users = layer in users_on
        if sweep or polling or users:
            runs += await stack_part(layer, args, bench, sweep, polling, users)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    only = ("run only this part (repeatable); users runs on the selected floor/redis/pubsub, "
            "or on all three if none is selected")  # fmt: skip
    parser = command_line(__doc__, "M = 10, 100 and S = 50", PARTS, only, drain=20.0)
    add = parser.add_argument
    add("--sockets", help="comma-separated M values (default 10,100,1000)")
    add("--states", "-S", type=int, help="steps of the job (default 200)")
    add("--rate", "-R", type=float, default=20.0, help="steps/s (default 20)")
    add("--users", type=int, default=100, help="users scenario size (default 100)")
    add("--tabs", type=int, default=1,
        help="in the users scenario, user i has 1 + i %% TABS sockets: 5 gives per-user groups "
        "of 1 to 5 sockets (default 1: one socket each)")  # fmt: skip
    add("--throttle", type=float, default=0.02,
        help="PROGRESS THROTTLE for ours (default 0.02 s publishes every step of 20/s, as the "
        "floor does; the service's default of 0.1 s would publish every other)")  # fmt: skip
    add("--client-procs", type=int, default=0,
        help="client processes (default: 1, or 1 per 500 sockets)")  # fmt: skip
    args = parser.parse_args(argv)
    default_sockets = "10,100" if args.quick else "10,100,1000"
    args.sockets = [int(m) for m in (args.sockets or default_sockets).split(",")]
    args.states = args.states or (50 if args.quick else 200)
    args.scenarios = [f"M={m}" for m in args.sockets]
    if min(args.sockets) < 1 or args.states < 1 or args.rate <= 0 or min(args.users, args.tabs) < 1:
        parser.error("M, S, --users and --tabs must be >= 1 and --rate > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit(4 * max(args.sockets) + 2048)
    code = code_version()
    parts = set(args.only or PARTS)
    log(f"machine: {machine()}; code {code}; M = {', '.join(map(str, args.sockets))}; "
        f"S = {args.states} at {args.rate:g}/s; ours with THROTTLE {args.throttle:g} s; "
        f"parts: {', '.join(p for p in PARTS if p in parts)}")  # fmt: skip
    started = time.monotonic()
    runs: list[Run] = []
    with (
        bench_run("bench-fanout-", args.keep) as bench,
        asyncio.Runner(loop_factory=new_loop) as runner,
    ):
        try:
            run_measurement(runner, all_parts(args, bench, runs))
        finally:
            # Helpers end on their loop, before it closes; bench_run stops the servers.
            runner.run(bench.finish_all())
    report(runs, args, time.monotonic() - started, code)
    if bench.interrupted:
        return 130
    return 1 if any(run.failure for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
