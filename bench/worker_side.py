"""The worker side: what set_progress() and track() cost a task, and each way to publish a state.

Runs in this one process, as a Celery worker child would, against a private redis-server and a
throwaway SQLite database:

  1. ns per call of `set_progress(i, n, msg)` and per item of `for _ in track(range(n))` in a
     tight loop of n calls, inside a running job (a real reporter, as progress.worker makes
     it); baselines in the same run: the same loop calling an empty Python function, and a
     minimal Python generator wrapping range(n). It also counts the states that reached
     Redis (seq grows by one per stored state): the throttle bounds them to about
     duration / THROTTLE + 2, whatever n is, and the last numbers must arrive.
  2. U sequential updates of one job through each publish path (bench/worker_paths.py), wall
     time and CPU (this process, all threads; and redis-server) per update, against our
     publisher's (b); then U Redis round trips, blocking and asyncio, for what each costs.

    .venv/bin/python bench/worker_side.py            # n=1,000,000, U=500, 5 rounds
    .venv/bin/python bench/worker_side.py --quick    # n=100,000, U=200, 3 rounds
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # Run as a script.

from bench.harness import code_version, command_line, fmt, log, machine
from bench.stack import bench_run, local_stack
from bench.worker_paths import Jobs, path_table, publish_paths, round_trips, trip_table
from devstack.processes import wait_for


def empty(current: float, total: float | None = None, message: str | None = None) -> None:
    """The baseline: a Python call with set_progress()'s signature that does nothing."""
    return None


def passthrough(iterable: Iterable[int]) -> Iterator[int]:
    """The baseline for track(): the least a Python iterator wrapper can do per item."""
    for item in iterable:  # noqa: UP028 - a wrapper that sees each item, as track() does.
        yield item


@dataclasses.dataclass
class HotRun:
    ns_per_call: float
    seconds: float = 0.0
    stored: int = 0  # States that reached Redis during the loop, the trailing one included.


def time_loop(loop: Callable[[int], None], n: int) -> float:
    """ns per iteration of one run of `loop(n)`."""
    begin = time.perf_counter_ns()
    loop(n)
    return (time.perf_counter_ns() - begin) / n


def loop_empty(n: int) -> None:
    for i in range(1, n + 1):
        empty(i, n, "crunching")


def loop_passthrough(n: int) -> None:
    for _ in passthrough(range(n)):
        continue


def loop_set_progress(n: int) -> None:
    from progress import set_progress

    for i in range(1, n + 1):
        set_progress(i, n, "crunching")


def loop_track(n: int) -> None:
    from progress import track

    for _ in track(range(n), message="crunching"):
        continue


def run_reported(loop: Callable[[int], None], n: int, jobs: Jobs, name: str) -> HotRun:
    """One timed loop inside a running job; then waits for the last numbers to reach Redis."""
    from progress.protocol.states import State
    from progress.worker.reporter import JobReporter, activate, deactivate

    job = jobs.new(name)
    reporter = JobReporter(job)
    token = activate(reporter)
    try:
        reporter.start()
        seq_started = jobs.latest(job)[0]
        begin = time.perf_counter()
        ns = time_loop(loop, n)
        seconds = time.perf_counter() - begin
        wait_for(lambda: jobs.latest(job)[1].get("current") == n, timeout=10)
        stored = jobs.latest(job)[0] - seq_started
        reporter.finish(State.SUCCESS, result=None)
    finally:
        deactivate(token)
    return HotRun(ns, seconds, stored)


def hot_path(n: int, rounds: int, jobs: Jobs, throttle: float) -> dict[str, list[HotRun]]:
    """Every loop `rounds` times, interleaved, so drift on a shared machine hits all alike."""
    runs: dict[str, list[HotRun]] = {}
    for round_no in range(rounds):
        runs.setdefault("empty", []).append(HotRun(time_loop(loop_empty, n)))
        runs.setdefault("passthrough", []).append(HotRun(time_loop(loop_passthrough, n)))
        for name, loop in (("set_progress", loop_set_progress), ("track", loop_track)):
            run = run_reported(loop, n, jobs, f"{name}-{round_no}")
            runs.setdefault(name, []).append(run)
            log(f"round {round_no + 1}/{rounds} {name}: {run.ns_per_call:.0f} ns/call, "
                f"{run.stored} states stored in {run.seconds:.2f} s "
                f"(bound {run.seconds / throttle + 2:.1f})")  # fmt: skip
        log(f"round {round_no + 1}/{rounds} baselines: empty call "
            f"{runs['empty'][-1].ns_per_call:.0f} ns, generator "
            f"{runs['passthrough'][-1].ns_per_call:.0f} ns")  # fmt: skip
    return runs


def hot_table(runs: dict[str, list[HotRun]], n: int, throttle: float) -> str:
    """ns per call against the baselines of the same run, and the states the throttle let
    through against its documented bound (THROTTLE: one state per window per job)."""

    def best(key: str) -> float:
        return min(r.ns_per_call for r in runs[key])

    def mid(key: str) -> float:
        return statistics.median(r.ns_per_call for r in runs[key])

    rows = [
        f"| loop of n calls | ns per call, best of {len(runs['empty'])} | median | x baseline | "
        "states stored (worst round) | bound: s / THROTTLE + 2 |",
        "|---|---:|---:|---:|---:|---:|",
        f"| baseline: empty function call | {fmt(best('empty'), 0)} | {fmt(mid('empty'), 0)} "
        "| 1.0 | - | - |",
        f"| baseline: Python generator over range | {fmt(best('passthrough'), 0)} | "
        f"{fmt(mid('passthrough'), 0)} | {best('passthrough') / best('empty'):.1f} | - | - |",
    ]
    for key, label, base in (
        ("set_progress", "set_progress(i, n, msg)", "empty"),
        ("track", "for _ in track(range(n))", "passthrough"),
    ):
        worst = max(runs[key], key=lambda r: r.stored / max(r.seconds / throttle + 2, 1))
        bound = worst.seconds / throttle + 2
        over = " (over the bound)" if worst.stored > bound else ""
        rows.append(
            f"| {label} | {fmt(best(key), 0)} | {fmt(mid(key), 0)} | "
            f"{best(key) / best(base):.1f} (vs {base}) | "
            f"{worst.stored:,} of {n:,} calls{over} | {bound:.1f} |"
        )
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = command_line(__doc__, "n=100,000, U=200, 3 rounds")
    parser.add_argument("--calls", "-n", type=int, default=1_000_000, help="hot-loop calls")
    parser.add_argument("--updates", "-U", type=int, default=500, help="updates per path")
    parser.add_argument("--rounds", type=int, default=5, help="hot-loop rounds (default 5)")
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.updates, args.rounds = 100_000, 200, 3
    if args.calls < 1 or args.updates < 1 or args.rounds < 1:
        parser.error("--calls, --updates and --rounds must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log(f"machine: {machine()}; n={args.calls:,} calls, U={args.updates} updates per path")
    with bench_run("bench-worker-", args.keep) as run:
        _env, redis = local_stack(run, static=False)
        from channels.layers import get_channel_layer

        from progress.conf import progress_settings

        throttle = float(progress_settings.THROTTLE)
        jobs = Jobs(redis.url)
        assert redis.process is not None
        log(f"hot path, THROTTLE={throttle} s, {args.rounds} rounds")
        runs = hot_path(args.calls, args.rounds, jobs, throttle)
        log(f"publish paths through {type(get_channel_layer()).__name__}")
        paths = publish_paths(args.updates, jobs, redis.url, redis.process.pid)
        log("Redis round trips")
        trips = round_trips(args.updates, redis.url, redis.process.pid)
    if run.interrupted:
        return 130
    print()
    print(f"{machine()}; code {code_version()}; n={args.calls:,}; THROTTLE={throttle} s; "
          "ratios are against baselines measured in this same run.")  # fmt: skip
    print()
    print(hot_table(runs, args.calls, throttle))
    print()
    print(f"U={args.updates} sequential updates per path after 20 warm-up ones; process CPU "
          "counts every thread.")  # fmt: skip
    print()
    print(path_table(paths))
    print()
    print(f"{args.updates} Redis round trips (PING) one after the other, after 20 warm-up ones:")
    print()
    print(trip_table(trips))
    return 0


if __name__ == "__main__":
    sys.exit(main())
