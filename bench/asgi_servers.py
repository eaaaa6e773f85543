"""Compares ASGI servers for /ws/progress/: memory, handshakes, fan-out latency and CPU.

Each configuration runs for real, as a subprocess serving `tasks_site.asgi:application`
against a private redis-server and a throwaway SQLite database:

    A. uvicorn --ws-per-message-deflate false   (the baseline)
    B. uvicorn with per-message-deflate on        (uvicorn's default)
    C. daphne

For each one, in turn and in the same run, the bench
  1. reads the server's RSS idle (after one warm-up socket) and with M idle sockets open;
  2. times the handshake + snapshot frame of those M sockets, opened 50 at a time;
  3. publishes S progress states of one job at R per second, through the project's own
     publisher (Redis + channel layer, as a Celery worker would), to the one user who owns
     all M sockets, and records recv time - ts of every frame on every socket;
  4. reads the server's CPU time (utime + stime) spent during step 3.

Run it from the repository root:

    .venv/bin/python bench/asgi_servers.py            # M=1000, S=200, R=20
    .venv/bin/python bench/asgi_servers.py --quick    # M=100, S=50: a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    ERROR_LINE,
    INTERRUPTED,
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
    rss_kib,
    run_measurement,
    terminate_as_interrupt,
)
from bench.stack import (  # noqa: E402
    PASSWORD,
    clean_up,
    cookie_header,
    create_users,
    django_env,
    migrate,
    redis_pid,
    server_failed,
    setup_django,
    start_redis,
    uvicorn_argv,
    wait_serving,
)
from devstack.processes import PYTHON, RedisServer, Service, free_port, login  # noqa: E402

CONCURRENCY = 50


# The configurations.


@dataclasses.dataclass(frozen=True)
class Config:
    key: str
    label: str
    argv: Callable[[int], list[str]]


def _uvicorn(deflate: bool) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        return uvicorn_argv(port, *([] if deflate else ["--ws-per-message-deflate", "false"]))

    return argv


def _daphne(port: int) -> list[str]:
    return [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
            "tasks_site.asgi:application"]  # fmt: skip


CONFIGS = [
    Config("uvicorn", "A uvicorn, deflate off", _uvicorn(deflate=False)),
    Config("uvicorn-deflate", "B uvicorn, deflate on", _uvicorn(deflate=True)),
    Config("daphne", "C daphne", _daphne),
]


# The results.


@dataclasses.dataclass
class Result:
    config: Config
    extensions: str = ""
    rss_idle_kib: int = 0
    rss_open_kib: int = 0
    rss_after_kib: int = 0
    opened: int = 0
    open_errors: list[str] = dataclasses.field(default_factory=list)
    handshake_ms: list[float] = dataclasses.field(default_factory=list)
    open_total_s: float = 0.0
    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    frames: int = 0
    got_final: int = 0
    fanout_s: float = 0.0
    deliver_s: float = 0.0
    publish_s: float = 0.0
    server_cpu_s: float = 0.0
    redis_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    other_cpu_s: float = 0.0
    dropped: list[str] = dataclasses.field(default_factory=list)
    errors_step3: int = 0
    errors_total: int = 0
    error: str | None = None

    @property
    def kib_per_socket(self) -> float:
        return (self.rss_open_kib - self.rss_idle_kib) / self.opened if self.opened else math.nan

    @property
    def cpu_us_per_frame(self) -> float:
        return self.server_cpu_s * 1e6 / self.frames if self.frames else math.nan

    @property
    def frames_per_s(self) -> float:
        """Frames delivered per second, from the first publish to the last frame received."""
        return self.frames / self.deliver_s if self.deliver_s else math.nan

    @property
    def kib_per_socket_after(self) -> float:
        return (self.rss_after_kib - self.rss_idle_kib) / self.opened if self.opened else math.nan


# The WebSocket clients.


class Sockets:
    """M sockets of one user; each records the latency of every PROGRESS frame of one job."""

    def __init__(self, url: str, headers: dict[str, str], job_id: str, final: int) -> None:
        self.url = url
        self.headers = headers
        self.job_id = job_id
        self.final = final
        self.conns: list[Any] = []
        self.readers: list[asyncio.Task[None]] = []
        self.latencies: list[float] = []
        self.finals = 0
        self.all_final = asyncio.Event()
        self.target = 0
        self.closing = False
        self.last_recv = 0.0
        self.dropped: list[str] = []

    async def open_one(self) -> tuple[Any, float]:
        begin = time.perf_counter()
        conn = await connect(
            self.url,
            additional_headers=self.headers,
            open_timeout=60,
            ping_interval=None,  # Browsers do not ping; pings would add load of their own.
            close_timeout=5,
            max_size=2**20,
        )  # Offers permessage-deflate, as browsers do.
        try:
            frame = json.loads(await asyncio.wait_for(conn.recv(), 60))
        except BaseException:
            await conn.close()
            raise
        elapsed = time.perf_counter() - begin
        if frame.get("type") != "snapshot":
            await conn.close()
            raise RuntimeError(f"first frame is not a snapshot: {frame!r:.200}")
        return conn, elapsed

    async def open(self, count: int, result: Result | None) -> None:
        gate = asyncio.Semaphore(CONCURRENCY)
        done = 0

        async def one() -> None:
            nonlocal done
            async with gate:
                try:
                    conn, elapsed = await self.open_one()
                except Exception as exc:
                    if result is not None:
                        result.open_errors.append(repr(exc))
                    return
            self.conns.append(conn)
            self.readers.append(asyncio.create_task(self._read(conn)))
            if result is not None:
                result.handshake_ms.append(elapsed * 1000)
            done += 1
            if count >= 200 and done % (count // 4) == 0:
                log(f"    {done}/{count} sockets open")

        await asyncio.gather(*(one() for _ in range(count)))

    async def _read(self, conn: Any) -> None:
        final_seen = False
        try:
            async for message in conn:
                now = time.time()
                self.last_recv = now
                frame = json.loads(message)
                if frame.get("type") != "job":
                    continue
                job = frame["job"]
                if job["id"] != self.job_id or job["state"] != "PROGRESS":
                    continue
                self.latencies.append(now - job["ts"])
                if job["current"] == self.final and not final_seen:
                    final_seen = True
                    self.finals += 1
                    if self.finals >= self.target:
                        self.all_final.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.dropped.append(f"{type(exc).__name__}: {exc}")
            return
        if not self.closing:
            # The server closed the socket: keep the close code and reason.
            self.dropped.append(f"closed by the server: {conn.close_code} {conn.close_reason}")

    async def close(self, fast: bool = False) -> None:
        """Closes every socket with a close handshake, or drops them all at once if `fast`."""
        self.closing = True
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(conn: Any) -> None:
            async with gate:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 10)

        if fast:
            for conn in self.conns:
                conn.transport.abort()
        else:
            await asyncio.gather(*(one(conn) for conn in self.conns))
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        self.conns.clear()
        self.readers.clear()


# Publishing, as a worker would, from this process.


def publish_states(
    job: Any, states: int, rate: float, stop: threading.Event, warmup: bool = False
) -> float:
    """Publishes `states` PROGRESS states of the job at `rate`/s; returns the time it took."""
    from progress.core.publisher import get_publisher
    from progress.protocol.states import State

    publisher = get_publisher()
    base = job.to_state()
    if warmup:
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


# One configuration, start to end.


async def measure(
    result: Result,
    server: Service,
    redis: RedisServer,
    sockets: Sockets,
    args: argparse.Namespace,
    job: Any,
) -> None:
    pid = server.process.pid
    label = result.config.label
    loop = asyncio.get_running_loop()

    # Warm-up: one socket through the whole path, so lazy imports and pools are in the idle RSS.
    warm = Sockets(sockets.url, sockets.headers, sockets.job_id, sockets.final)
    conn, _elapsed = await warm.open_one()
    result.extensions = conn.response.headers.get("Sec-WebSocket-Extensions", "") or "none"
    await conn.close()
    await asyncio.sleep(1.5)
    result.rss_idle_kib = rss_kib(pid)
    log(f"{label}: step 1 idle RSS {result.rss_idle_kib / 1024:.1f} MiB "
        f"(negotiated extensions: {result.extensions})")  # fmt: skip

    log(f"{label}: steps 1-2 opening {args.sockets} sockets, {CONCURRENCY} at a time")
    begin = time.perf_counter()
    await sockets.open(args.sockets, result)
    result.open_total_s = time.perf_counter() - begin
    result.opened = len(sockets.conns)
    server.assert_alive()
    if result.open_errors:
        log(f"{label}: {len(result.open_errors)} sockets failed to open, "
            f"e.g. {result.open_errors[0]}")  # fmt: skip
    await asyncio.sleep(2)
    result.rss_open_kib = rss_kib(pid)
    log(
        f"{label}: {result.opened} open in {result.open_total_s:.1f}s, "
        f"handshake p50 {percentile(result.handshake_ms, 50):.0f} ms; "
        f"RSS {result.rss_open_kib / 1024:.1f} MiB ({result.kib_per_socket:.1f} KiB/socket)"
    )

    # Step 3: fan-out. A STARTED state first warms the publisher and the layer.
    stop = threading.Event()
    await loop.run_in_executor(None, lambda: publish_states(job, 0, 1, stop, warmup=True))
    await asyncio.sleep(1)
    sockets.target = result.opened
    log(f"{label}: step 3 publishing {args.states} states at {args.rate}/s "
        f"to {result.opened} sockets")  # fmt: skip
    cpu0, redis0, own0 = cpu_seconds(pid), cpu_seconds(redis_pid(redis)), own_cpu_seconds()
    busy0 = machine_busy_seconds()
    begin, wall_begin = time.monotonic(), time.time()
    try:
        result.publish_s = await loop.run_in_executor(
            None, lambda: publish_states(job, args.states, args.rate, stop)
        )
    finally:
        stop.set()  # On Ctrl-C, ends the publishing thread at its next state.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(sockets.all_final.wait(), args.drain_timeout)
    result.fanout_s = time.monotonic() - begin
    result.server_cpu_s = cpu_seconds(pid) - cpu0
    result.redis_cpu_s = cpu_seconds(redis_pid(redis)) - redis0
    result.client_cpu_s = own_cpu_seconds() - own0
    # Whatever else ran on the machine meanwhile: the noise to keep in mind.
    result.other_cpu_s = max(
        0.0,
        machine_busy_seconds()
        - busy0
        - result.server_cpu_s
        - result.redis_cpu_s
        - result.client_cpu_s,
    )
    await asyncio.sleep(0.5)  # Let stragglers land, for a fair count.
    result.got_final = sockets.finals
    result.latencies_ms = [value * 1000 for value in sockets.latencies]
    result.frames = len(sockets.latencies)
    result.deliver_s = max(0.0, sockets.last_recv - wall_begin)
    result.errors_step3 = len(ERROR_LINE.findall(server.output()))
    result.dropped = list(sockets.dropped)
    if result.dropped:
        log(f"{label}: {len(result.dropped)} sockets closed early, e.g. {result.dropped[0]}")
    server.assert_alive()
    await asyncio.sleep(1)
    result.rss_after_kib = rss_kib(pid)
    log(
        f"{label}: fan-out p50 {percentile(result.latencies_ms, 50):.1f} ms, "
        f"p99 {percentile(result.latencies_ms, 99):.1f} ms; final state on "
        f"{result.got_final}/{result.opened} sockets; server CPU {result.server_cpu_s:.2f}s; "
        f"publishing took {result.publish_s:.1f}s"
    )

    log(f"{label}: closing sockets")
    await sockets.close()


def run_config(
    config: Config,
    env: dict[str, str],
    workdir: Path,
    redis: RedisServer,
    args: argparse.Namespace,
    running: list[Service],
    round_no: int,
) -> Result:
    from django.contrib.auth.models import User

    from progress.models import Job

    result = Result(config)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log(f"{config.label}: starting on port {port}")
    server = Service(config.key, config.argv(port), env, workdir / f"{config.key}-{round_no}.log")
    running.append(server)
    client: httpx.Client | None = None
    try:
        wait_serving(server, base_url)
        username = f"bench-{config.key}-{round_no}"
        client = login(base_url, username, PASSWORD)
        cookie = cookie_header(client.cookies)
        user = User.objects.get(username=username)
        job = Job.objects.create(owner=user, task="bench.fanout", ts=time.time())
        sockets_headers = {"Cookie": cookie, "Origin": base_url}
        ws_url = base_url.replace("http://", "ws://") + "/ws/progress/"
        with asyncio.Runner(loop_factory=new_loop) as runner:
            sockets = Sockets(ws_url, sockets_headers, str(job.id), final=args.states)
            try:
                run_measurement(runner, measure(result, server, redis, sockets, args, job))
            finally:
                with contextlib.suppress(Exception):
                    runner.run(sockets.close(fast=INTERRUPTED.is_set()))
    except Exception as exc:
        result.error = server_failed(config.label, server, exc)
    finally:
        if client is not None:
            client.close()
        log(f"{config.label}: stopping the server")
        server.stop()
        result.errors_total = len(ERROR_LINE.findall(server.output()))
        running.remove(server)
    return result


# The report.


METRICS: list[tuple[str, Callable[[Result], float], int]] = [
    ("idle RSS MiB", lambda r: r.rss_idle_kib / 1024, 1),
    ("RSS, M open MiB", lambda r: r.rss_open_kib / 1024, 1),
    ("KiB/socket", lambda r: r.kib_per_socket, 1),
    ("KiB/socket after fan-out", lambda r: r.kib_per_socket_after, 1),
    ("handshake p50 ms", lambda r: percentile(r.handshake_ms, 50), 1),
    ("handshake p99 ms", lambda r: percentile(r.handshake_ms, 99), 1),
    ("open M total s", lambda r: r.open_total_s, 2),
    ("fan-out p50 ms", lambda r: percentile(r.latencies_ms, 50), 1),
    ("fan-out p99 ms", lambda r: percentile(r.latencies_ms, 99), 1),
    ("server CPU s (step 3)", lambda r: r.server_cpu_s, 2),
    ("server CPU us per frame", lambda r: r.cpu_us_per_frame, 0),
    ("frames delivered/s", lambda r: r.frames_per_s, 0),
]


def table(results: dict[str, list[Result]], args: argparse.Namespace) -> str:
    """Medians over rounds of each metric, with ratios against uvicorn with deflate off."""
    configs = [c for c in CONFIGS if c.key in results]
    headers = ["metric"] + [c.label for c in configs]
    rows: list[list[str]] = []
    for name, get, digits in METRICS:
        values = {c.key: median([get(r) for r in results[c.key] if not r.error]) for c in configs}
        ref = values.get("uvicorn", math.nan)
        row = [name]
        for c in configs:
            value = values[c.key]
            cell = "failed" if all(r.error for r in results[c.key]) else fmt(value, digits)
            if c.key != "uvicorn":
                cell += ratio(value, ref)
            row.append(cell)
        rows.append(row)
    extra: list[tuple[str, Callable[[Result], str]]] = [
        ("sockets opened", lambda r: f"{r.opened}/{args.sockets}"),
        ("final state received", lambda r: f"{r.got_final}/{r.opened}"),
        ("frames received", lambda r: f"{r.frames}/{r.opened * args.states}"),
        ("sockets closed early", lambda r: str(len(r.dropped))),
        ("server errors logged to end of step 3", lambda r: str(r.errors_step3)),
        ("server errors logged in all", lambda r: str(r.errors_total)),
        ("negotiated extension", lambda r: r.extensions.split(";")[0] or "none"),
        ("redis CPU s (step 3)", lambda r: f"{r.redis_cpu_s:.2f}"),
        ("bench client CPU s (step 3)", lambda r: f"{r.client_cpu_s:.2f}"),
        ("other processes' CPU s (step 3)", lambda r: f"{r.other_cpu_s:.2f}"),
        ("first publish to last frame s", lambda r: f"{r.deliver_s:.1f}"),
    ]
    for name, show in extra:
        cells = [
            " / ".join("failed" if r.error else show(r) for r in results[c.key]) for c in configs
        ]
        rows.append([name, *cells])
    return markdown_table(headers, rows)


# Setup and teardown.


def prepare(workdir: Path, redis: RedisServer, rounds: int) -> dict[str, str]:
    env = django_env(workdir, redis, PROGRESS_MAX_SOCKETS="0")
    log("migrate, collectstatic, users")
    migrate(env)
    create_users(env, (f"bench-{c.key}-{n}" for c in CONFIGS for n in range(rounds)))
    # This process publishes like a worker: Django against the same database and Redis.
    setup_django(env)
    return env


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sockets", "-M", type=int, default=1000, help="sockets (default 1000)")
    parser.add_argument("--states", "-S", type=int, default=200, help="states (default 200)")
    parser.add_argument("--rate", "-R", type=float, default=20.0, help="states/s (default 20)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: M=100, S=50")
    parser.add_argument(
        "--only", action="append", choices=[c.key for c in CONFIGS],
        help="run only this configuration (repeatable); the default runs all three",
    )  # fmt: skip
    parser.add_argument(
        "--drain-timeout", type=float, default=30.0,
        help="seconds to wait after the last publish for every socket's final state",
    )  # fmt: skip
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="repeat every configuration N times in rotating order; the table shows medians",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sockets, args.states = 100, 50
    if args.sockets < 1 or args.states < 1 or args.rate <= 0 or args.rounds < 1:
        parser.error("--sockets, --states and --rounds must be >= 1, --rate > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    raise_fd_limit(2 * args.sockets + 1024)
    configs = [c for c in CONFIGS if not args.only or c.key in args.only]
    log(f"machine: {machine()}; M={args.sockets} sockets, S={args.states} states "
        f"at {args.rate}/s; configurations: {', '.join(c.label for c in configs)}")  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="bench-asgi-"))
    redis = RedisServer(workdir / "redis")
    running: list[Service] = []
    results: dict[str, list[Result]] = {}
    try:
        with terminate_as_interrupt():
            start_redis(redis)
            env = prepare(workdir, redis, args.rounds)
            for round_no in range(args.rounds):
                # Each round starts with the next configuration, so drift spreads over all.
                order = configs[round_no % len(configs) :] + configs[: round_no % len(configs)]
                if args.rounds > 1:
                    log(f"round {round_no + 1}/{args.rounds}")
                for config in order:
                    runs = results.setdefault(config.key, [])
                    runs.append(run_config(config, env, workdir, redis, args, running, round_no))
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        clean_up(workdir, args.keep, redis, running)
    print()
    print(f"M={args.sockets} sockets of one user, S={args.states} states at {args.rate}/s, "
          f"handshakes {CONCURRENCY} at a time; {machine()}")  # fmt: skip
    print(f"Offered fan-out load: {args.sockets * args.rate:,.0f} frames/s. Ratios (xN) are "
          "against A, uvicorn with deflate off, measured in this same run.")  # fmt: skip
    print()
    print(table(results, args))
    every = [r for runs in results.values() for r in runs]
    failed = [r for r in every if r.error]
    for r in failed:
        print(f"\n{r.config.label} failed: {r.error}")
    for r in every:
        if r.dropped:
            print(f"\n{r.config.label}: {len(r.dropped)} sockets closed early: "
                  f"{sorted(set(r.dropped))[:3]}")  # fmt: skip
    incomplete = [r for r in every if not r.error and r.got_final < args.sockets]
    for r in incomplete:
        print(f"\n{r.config.label}: only {r.got_final}/{args.sockets} sockets got the final state")
    return 1 if failed or incomplete else 0


if __name__ == "__main__":
    sys.exit(main())
