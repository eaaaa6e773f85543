"""Idle sockets: what one ASGI process pays to hold 10,000 idle /ws/progress/ sockets.

Also measured, in the same run: per-message-deflate on (memory against bytes) and the server's
ping interval (CPU while idle). Each configuration is one web process serving
`tasks_site.asgi:application` as the Procfile runs it (progress.server, which is uvicorn, with
`--lifespan off --ws-per-message-deflate false --ws-max-size 65536`), but for what it changes:

    A. production: deflate off, uvicorn's pings (every 20 s);  --sockets (10,000), --hold (60 s);
    B. per-message-deflate on (uvicorn's default);            --sockets-small, --hold-small;
    C. --ws-ping-interval 60;                                  --sockets-small, --hold-small;
    D. --ws-ping-interval 0: no pings at all;                  --sockets-small, --hold-small.

For each one, against a private redis-server and a throwaway SQLite database, the bench
  1. reads the server's RSS idle, after one warm-up socket came and went;
  2. opens the sockets, --concurrency at a time, each of a logged-in user (--users users, round
     robin) with the session cookie, Origin and the other headers Chrome sends, each waiting
     for its `snapshot` frame; it times this and reads the RSS with them all open;
  3. holds them for the hold time: the clients send nothing and never ping (browsers do not),
     but answer the server's pings. Every 10 s it samples the server's RSS and CPU and counts
     the sockets still open; at the end, whether any dropped, and the server's error lines;
  4. drops them all at once (TCP resets, as a network blip would), waits for the server's CPU
     to go quiet, and counts the error lines that mass disconnect produced.

Every hold should be a whole number of minutes: each socket's periodic work (pings every 20 or
60 s, the hub's renewals every 60 s) then falls into the window the same number of times. Each
user owns --jobs finished jobs and 2 unfinished ones, so the snapshot is a real tab's.

    .venv/bin/python bench/idle_sockets.py                      # A with 10,000; B-D with 1,000
    .venv/bin/python bench/idle_sockets.py --only A --hold 300  # five minutes, A only
    .venv/bin/python bench/idle_sockets.py --quick              # a smoke run: 500 sockets, 10 s

It exits 1 if any socket failed to open or dropped, or a server failed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import sys
import time
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # Run as a script.

from bench import harness
from bench.harness import CpuMarks, Metric, TextRow, Window, log, percentile, rss_kib, until_quiet
from bench.sockets import Fleet, Opening, ServerConfig, ServerResult, chosen, measure_server
from bench.stack import BenchRun, Web, bench_run, error_lines, local_stack
from devstack.processes import cookie_header, web_argv

SAMPLE_EVERY = 10.0
UNFINISHED_JOBS = 2
# Chrome's handshake headers besides the protocol's own, Cookie and Origin: the server keeps
# the request headers of every socket, so their size counts.
BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
BROWSER_HEADERS = {
    "Pragma": "no-cache",
    "Cache-Control": "no-cache",
    "Accept-Encoding": "gzip, deflate, br, zstd",
    "Accept-Language": "en-GB,en-US;q=0.9,en;q=0.8",
}


CONFIGS = [
    ServerConfig("A", "A production", web_argv),
    ServerConfig("B", "B deflate on", lambda port: web_argv(port, deflate=True), full=False),
    ServerConfig("C", "C ping 60 s", lambda port: web_argv(port, "--ws-ping-interval", "60"),
                 full=False),
    ServerConfig("D", "D no pings", lambda port: web_argv(port, "--ws-ping-interval", "0"),
                 full=False),
]  # fmt: skip


@dataclasses.dataclass
class Result(ServerResult):
    hold_s: float = 0.0
    rss_end_kib: int = 0
    rss_peak_kib: int = 0
    hold: Window = dataclasses.field(default_factory=Window)
    wire_bytes_hold: int = 0
    pings_hold: int = 0
    still_open: int = 0
    errors_hold: int = 0
    teardown_s: float = 0.0
    teardown_cpu_s: float = 0.0

    def per_socket_minute(self, value: float) -> float:
        """A total over the hold, per socket held and per minute."""
        opened = self.opening.opened
        return value / opened / self.hold.minutes if opened else math.nan


async def hold(result: Result, web: Web, redis_pid: int, fleet: Fleet) -> None:
    """Steps 3 and 4 of one configuration, once its sockets are open (the module's docstring)."""
    label, pid, opening = result.config.label, web.pid, result.opening
    log(f"{label}: holding {opening.opened} sockets for {result.hold_s:.0f}s")
    begin = CpuMarks.take({"server": pid, "redis": redis_pid})
    pings0, bytes0 = fleet.pings(), fleet.bytes_in()
    end = begin.at + result.hold_s
    last = begin
    result.rss_peak_kib = opening.rss_open_kib
    while (now := time.monotonic()) < end:
        await asyncio.sleep(min(SAMPLE_EVERY, end - now))
        web.service.assert_alive()
        mark, rss = CpuMarks.take({"server": pid}), rss_kib(pid)
        result.rss_peak_kib = max(result.rss_peak_kib, rss)
        log(f"{label}:   {mark.at - begin.at:5.0f}s: {fleet.open_count()}/{opening.opened} open, "
            f"{len(fleet.dropped)} dropped; RSS {rss / 1024:.1f} MiB; server CPU "
            f"{mark.trees['server'] - last.trees['server']:.2f}s in {mark.at - last.at:.0f}s; "
            f"{fleet.pings() - pings0} pings answered")  # fmt: skip
        last = mark
    done = CpuMarks.take({"server": pid, "redis": redis_pid})
    result.hold = Window.between(begin, done)
    result.pings_hold = fleet.pings() - pings0
    result.wire_bytes_hold = fleet.bytes_in() - bytes0
    result.rss_end_kib = rss_kib(pid)
    result.rss_peak_kib = max(result.rss_peak_kib, result.rss_end_kib)
    result.still_open = fleet.open_count()
    result.dropped = list(fleet.dropped)
    missing = opening.opened - result.still_open - len(result.dropped)
    if missing:
        result.dropped.append(f"{missing} more not open at the end")
    result.errors_hold = len(error_lines(web.service))
    log(f"{label}: held {result.hold.seconds:.0f}s: {result.still_open}/{opening.opened} open, "
        f"{len(fleet.dropped)} dropped; server CPU {result.hold.server:.2f}s "
        f"({result.hold.server / result.hold.minutes:.2f}s/min), redis "
        f"{result.hold.redis:.2f}s; {result.pings_hold} pings answered; RSS "
        f"{result.rss_end_kib / 1024:.1f} MiB = "
        f"{opening.kib_per_socket_at(result.rss_end_kib):.1f} KiB/socket; "
        f"{result.errors_hold} error lines in the server log")  # fmt: skip
    if result.dropped:
        log(f"{label}: dropped, e.g. {result.dropped[0]}")

    # The server gets time to finish its disconnect work (its CPU goes quiet) before it is
    # stopped, so that the errors it logs belong here.
    log(f"{label}: dropping all {result.still_open} sockets at once (TCP reset)")
    cpu0, began = CpuMarks.take({"server": pid}), time.monotonic()
    await fleet.close()
    await until_quiet([pid], interval=1.0, timeout=60)
    result.teardown_s = time.monotonic() - began
    result.teardown_cpu_s = cpu0.spent(CpuMarks.take({"server": pid}))["server"]
    log(f"{label}: the server took {result.teardown_s:.0f}s and {result.teardown_cpu_s:.2f}s of "
        "CPU to process the disconnects")  # fmt: skip


def run_config(
    config: ServerConfig,
    run: BenchRun,
    env: dict[str, str],
    redis_pid: int,
    args: argparse.Namespace,
    cookies: dict[str, str],
) -> Result:
    wanted = args.sockets if config.full else args.sockets_small
    result = Result(config, Opening(wanted), hold_s=args.hold if config.full else args.hold_small)

    def setup(web: Web) -> tuple[Fleet, Coroutine[Any, Any, None]]:
        # Sessions live in the database: one login per user serves every server of the run.
        for n in range(args.users):
            cookies.setdefault(f"bench-idle-{n}", cookie_header(web.login(f"bench-idle-{n}")))
        headers = [
            {**BROWSER_HEADERS, "Cookie": cookies[f"bench-idle-{n}"], "Origin": web.base_url}
            for n in range(args.users)
        ]
        fleet = Fleet(web.ws_url, headers, user_agent=BROWSER_UA)
        return fleet, hold(result, web, redis_pid, fleet)

    measure_server(run, result, config.key, env, setup, args.concurrency)
    return result


# The report: ratios against A, from the same run.

METRICS: list[Metric[Result]] = [
    ("idle RSS MiB", lambda r: r.opening.rss_idle_kib / 1024, 1, False),
    ("RSS with all open MiB", lambda r: r.opening.rss_open_kib / 1024, 1, False),
    ("**KiB/socket** (open)", lambda r: r.opening.kib_per_socket, 1, True),
    ("KiB/socket at end of hold", lambda r: r.opening.kib_per_socket_at(r.rss_end_kib), 1, True),
    ("peak RSS during hold MiB", lambda r: r.rss_peak_kib / 1024, 1, False),
    ("time to open all s", lambda r: r.opening.seconds, 1, False),
    ("sockets opened per s", lambda r: r.opening.per_s, 0, True),
    ("handshake+snapshot p50 ms", lambda r: percentile(r.opening.handshake_ms, 50), 0, True),
    ("handshake+snapshot p99 ms", lambda r: percentile(r.opening.handshake_ms, 99), 0, True),
    ("server CPU ms per socket opened", lambda r: r.opening.server_ms_per_socket, 2, True),
    ("server CPU s/min while held", lambda r: r.hold.server / r.hold.minutes, 2, False),
    ("**server CPU s/min per 1000 idle sockets**",
     lambda r: 1000 * r.per_socket_minute(r.hold.server), 3, True),
    ("redis CPU s/min while held (mostly its own idle ticks)",
     lambda r: r.hold.redis / r.hold.minutes, 2, False),
    ("bench client CPU s/min per 1000 sockets",
     lambda r: 1000 * r.per_socket_minute(r.hold.own), 3, True),
    ("pings per socket per min (client count)", lambda r: r.per_socket_minute(r.pings_hold), 2,
     False),
    ("wire bytes in per socket to snapshot",
     lambda r: r.opening.wire_bytes / r.opening.opened if r.opening.opened else math.nan, 0, True),
    ("wire bytes in per socket per min held", lambda r: r.per_socket_minute(r.wire_bytes_hold), 1,
     True),
]  # fmt: skip
TEXTS: list[TextRow[Result]] = [
    ("failed to open", lambda r: str(len(r.opening.errors))),
    ("**dropped during hold**", lambda r: str(len(r.dropped))),
    ("still open at end", lambda r: f"{r.still_open}/{r.opening.opened}"),
    ("server error lines to end of hold", lambda r: str(r.errors_hold)),
    ("server CPU s for the mass disconnect", lambda r: f"{r.teardown_cpu_s:.2f}"),
    ("server error lines in all (incl. mass disconnect)", lambda r: str(r.errors_total)),
    ("snapshot JSON bytes", lambda r: str(r.opening.snapshot_bytes)),
    ("negotiated extension", lambda r: r.opening.extensions.split(";")[0] or "none"),
]


def table(results: list[Result]) -> str:
    columns = [None if r.error and not r.opening.opened else r for r in results]
    baseline = next((r for r in columns if r is not None and r.config.key == "A"), None)
    head: list[TextRow[Result]] = [
        ("sockets held / hold s", lambda r: f"{r.opening.opened}/{r.opening.wanted} for "
         f"{r.hold.seconds:.0f}s"),
    ]  # fmt: skip
    headers = ["metric"] + [r.config.label for r in results]
    return harness.comparison(headers, columns, baseline, METRICS, TEXTS, head)


def summary(result: Result) -> str:
    """The figures of one configuration in a sentence, as docs/performance.md quotes them."""
    o = result.opening
    return (
        f"{result.config.label}: {o.opened} of {o.wanted} sockets opened, held "
        f"{result.hold.seconds:.0f} s: {o.kib_per_socket:.1f} KiB per socket when open, "
        f"{o.kib_per_socket_at(result.rss_end_kib):.1f} at the end; {result.still_open} still "
        f"open, {len(result.dropped)} dropped, {result.errors_hold} server error lines; "
        f"{1000 * result.per_socket_minute(result.hold.server):.2f} CPU-s per minute per "
        "1,000 idle sockets."
    )


def seed_jobs(users: int, finished: int) -> None:
    """Gives each user finished and unfinished jobs, so the snapshot is like a real tab's; the
    unfinished ones run in live workers, as far as the service can tell."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from progress.core.publisher import get_publisher
    from progress.models import Job

    now = timezone.now()
    jobs = []
    for user in User.objects.filter(username__startswith="bench-idle-"):
        for i in range(finished + UNFINISHED_JOBS):
            created = now - timedelta(minutes=10 * (i + 1))
            done = i >= UNFINISHED_JOBS
            jobs.append(
                Job(
                    owner=user,
                    task="demo.count",
                    params={"steps": 100, "delay": 0.2, "fail_at": None},
                    state="SUCCESS" if done else "PROGRESS",
                    current=100 if done else 37,
                    total=100,
                    message="step 100 of 100" if done else "step 37 of 100",
                    result={"counted": 100} if done else None,
                    seq=103 if done else 40,
                    ts=(created + timedelta(seconds=20 if done else 8)).timestamp(),
                    created=created,
                    started=created + timedelta(seconds=0.2),
                    finished=created + timedelta(seconds=20) if done else None,
                )
            )
    Job.objects.bulk_create(jobs)
    # Their workers would renew these leases; without them the web's sweep would end the
    # unfinished jobs as lost mid-hold and send every socket their final states.
    unfinished = [str(job.id) for job in jobs if job.state == "PROGRESS"]
    publisher = get_publisher()
    publisher.call(publisher.store.renew_leases(unfinished, ttl=24 * 3600))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    only = [c.key for c in CONFIGS]
    parser = harness.command_line(__doc__, "a smoke run: 500 sockets everywhere, held 10 s", only)
    add = parser.add_argument
    add("--sockets", "-N", type=int, default=10_000, help="sockets A holds (default 10000)")
    add("--hold", type=float, default=60.0, help="seconds A holds them (default 60)")
    add("--sockets-small", type=int, default=1000, help="sockets B-D hold (default 1000)")
    add("--hold-small", type=float, default=60.0, help="seconds B-D hold them (default 60)")
    add("--concurrency", type=int, default=50, help="handshakes at a time (default 50)")
    add("--users", type=int, default=10, help="users the sockets belong to (default 10)")
    add("--jobs", type=int, default=10, help="finished jobs per user (default 10)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sockets = args.sockets_small = 500
        args.hold = args.hold_small = 10.0
    if min(args.sockets, args.sockets_small, args.concurrency, args.users) < 1 or args.jobs < 0:
        parser.error("--sockets, --sockets-small, --concurrency and --users must be >= 1")
    if min(args.hold, args.hold_small) <= 0:
        parser.error("--hold and --hold-small must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configs = chosen(CONFIGS, args.only)
    # Children inherit the limit: the server needs one fd per socket, as does this client.
    harness.raise_fd_limit(
        max(args.sockets if c.full else args.sockets_small for c in configs) + 1024
    )
    log(f"{harness.about()}; configurations: "
        f"{', '.join(c.label for c in configs)}; A: {args.sockets} sockets for {args.hold:.0f}s, "
        f"B-D: {args.sockets_small} for {args.hold_small:.0f}s; {args.users} users with "
        f"{args.jobs}+{UNFINISHED_JOBS} jobs; handshakes {args.concurrency} at a time")  # fmt: skip
    results: list[Result] = []
    began = time.monotonic()
    with bench_run("bench-idle-", args.keep) as run:
        users = [f"bench-idle-{n}" for n in range(args.users)]
        env, redis = local_stack(run, users, PROGRESS_MAX_SOCKETS="0")  # No cap per user.
        seed_jobs(args.users, args.jobs)
        assert redis.process is not None
        cookies: dict[str, str] = {}
        for config in configs:
            results.append(run_config(config, run, env, redis.process.pid, args, cookies))
    if run.interrupted:
        return 130
    print()
    print(f"Idle sockets on one web process; {harness.about()}; {args.users} users, snapshot of "
          f"{args.jobs}+{UNFINISHED_JOBS} jobs; handshakes {args.concurrency} at a time; run "
          f"took {time.monotonic() - began:.0f}s. Ratios (xN) are against A, from this run; "
          "per-socket and per-1000 figures make different N comparable.")  # fmt: skip
    print()
    print(table(results))
    print()
    problems = [line for r in results for line in r.problems()]
    for r in results:
        if not r.error:
            print(summary(r))
        if r.first_error:
            print(f"{r.config.label}: first server error line: {r.first_error}")
    for line in problems:
        print(f"\n{line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
