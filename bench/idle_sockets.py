"""Idle sockets: can one ASGI process hold 10,000 idle /ws/progress/ sockets, and at what cost?

The target (from the issue): 10,000 idle sockets held by one ASGI process at <= 40 KiB RSS each,
with none dropped over 5 minutes. Also measured, in the same run: per-message-deflate on or off
(memory against bytes) and the server's ping interval (CPU while idle).

Each configuration runs for real: one uvicorn subprocess serving `tasks_site.asgi:application`
against a private redis-server and a throwaway SQLite database, with the production flags of the
Procfile (`--lifespan off --ws-per-message-deflate false --ws-max-size 65536`) except where noted:

    A. production flags: deflate off, uvicorn's default pings (every 20 s, 20 s timeout);
       --sockets (10,000) sockets held for --hold (60 s) seconds;
    B. per-message-deflate on (uvicorn's default);            --sockets-small, --hold-small;
    C. --ws-ping-interval 60;                                  --sockets-small, --hold-small;
    D. --ws-ping-interval 0: no pings at all;                  --sockets-small, --hold-small.

For each one the bench
  1. reads the server's RSS idle, after one warm-up socket came and went;
  2. opens the sockets, --concurrency at a time, each of a logged-in user (--users users, round
     robin; PROGRESS_MAX_SOCKETS=0) with the session cookie, Origin and the other headers
     Chrome sends, offering permessage-deflate as browsers do, each waiting for its `snapshot`
     frame; it times this and reads the server's RSS with them all open (KiB per socket);
  3. holds them for the hold time: the clients send nothing and never ping (browsers do not), but
     answer the server's pings (the websockets library does). Every 10 s it samples the server's
     RSS and CPU and counts the sockets still open. At the end it checks that every socket is
     still open and none received a close frame, and counts error lines in the server's log;
  4. drops them all at once (TCP resets, as a network blip would), waits for the server's CPU to
     go quiet, and counts the error lines that mass disconnect produced.

The server's CPU seconds per minute of holding are what idle sockets cost: pings, and whatever
the consumer does periodically. Every hold should be a whole number of minutes (the defaults
are 60 s): each socket's periodic work then falls into the window the same number of times,
whatever its phase (pings every 20 or 60 s, the consumer's HEARTBEAT of 60 s).

Each user owns --jobs finished jobs and 2 unfinished ones, so the snapshot is not empty and
deflate has something to compress. "Wire bytes" are the bytes each client received (HTTP 101
response, snapshot frame, then pings while held).

Run it from the repository root:

    .venv/bin/python bench/idle_sockets.py                     # A with 10,000; B-D with 1,000
    .venv/bin/python bench/idle_sockets.py --only A --hold 300  # the target, in full
    .venv/bin/python bench/idle_sockets.py --quick              # a smoke run: 500 sockets, 10 s

Most of a default run (about 8-12 minutes here) is spent opening sockets: each handshake and
snapshot costs the server 10-15 ms of CPU, so 10,000 take at least 2-3 minutes on one core.

It exits 1 if any socket failed to open or dropped, or a server failed; the KiB target is only
reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode
from websockets.protocol import State

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    ERROR_LINE,
    cpu_seconds,
    fmt,
    log,
    machine,
    markdown_table,
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
from devstack.processes import RedisServer, Service, free_port, login  # noqa: E402

TARGET_SOCKETS = 10_000
TARGET_KIB = 40.0
SAMPLE_EVERY = 10.0
UNFINISHED_JOBS = 2
# What Chrome sends with a WebSocket handshake besides the protocol's own headers, Cookie and
# Origin: the server keeps the request headers of every socket, so their size counts.
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


# The configurations.


@dataclasses.dataclass(frozen=True)
class Config:
    key: str
    label: str
    flags: tuple[str, ...]
    full: bool  # True: --sockets and --hold; False: --sockets-small and --hold-small.

    def argv(self, port: int) -> list[str]:
        return uvicorn_argv(port, *self.flags)


NO_DEFLATE = ("--ws-per-message-deflate", "false")
CONFIGS = [
    Config("A", "A production", NO_DEFLATE, full=True),
    Config("B", "B deflate on", (), full=False),
    Config("C", "C ping 60 s", (*NO_DEFLATE, "--ws-ping-interval", "60"), full=False),
    Config("D", "D no pings", (*NO_DEFLATE, "--ws-ping-interval", "0"), full=False),
]


# The results.


@dataclasses.dataclass
class Result:
    config: Config
    wanted: int
    hold_s: float
    extensions: str = ""
    snapshot_bytes: int = 0
    rss_idle_kib: int = 0
    rss_open_kib: int = 0
    rss_end_kib: int = 0
    rss_peak_kib: int = 0
    opened: int = 0
    open_errors: list[str] = dataclasses.field(default_factory=list)
    handshake_ms: list[float] = dataclasses.field(default_factory=list)
    open_s: float = 0.0
    open_server_cpu_s: float = 0.0
    open_client_cpu_s: float = 0.0
    held_s: float = 0.0
    hold_server_cpu_s: float = 0.0
    hold_redis_cpu_s: float = 0.0
    hold_client_cpu_s: float = 0.0
    wire_bytes_open: int = 0
    wire_bytes_hold: int = 0
    pings_hold: int = 0
    still_open: int = 0
    dropped: list[str] = dataclasses.field(default_factory=list)
    errors_hold: int = 0
    teardown_s: float = 0.0
    teardown_cpu_s: float = 0.0
    errors_total: int = 0
    first_error: str = ""
    error: str | None = None

    @property
    def kib_per_socket(self) -> float:
        return (self.rss_open_kib - self.rss_idle_kib) / self.opened if self.opened else math.nan

    @property
    def kib_per_socket_end(self) -> float:
        if not self.opened or not self.rss_end_kib:
            return math.nan
        return (self.rss_end_kib - self.rss_idle_kib) / self.opened

    @property
    def minutes(self) -> float:
        return self.held_s / 60 if self.held_s else math.nan

    def per_minute_per_k(self, value: float) -> float:
        """A total over the hold, per minute and per 1000 sockets held."""
        return value / self.minutes / (self.opened / 1000) if self.opened else math.nan


# The WebSocket clients.


class CountingConnection(ClientConnection):
    """A client connection that counts the bytes it receives and the pings it answers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bytes_in = 0
        self.pings = 0

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        super().data_received(data)

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            self.pings += 1  # The protocol has already queued the pong.
        super().process_event(event)


class Fleet:
    """The idle sockets, spread over users; a reader per socket notices any close at once."""

    def __init__(self, url: str, headers: list[dict[str, str]]) -> None:
        self.url = url
        self.headers = headers
        self.conns: list[CountingConnection] = []
        self.readers: list[asyncio.Task[None]] = []
        self.dropped: list[str] = []
        self.closing = False
        self.began = time.monotonic()

    async def open_one(self, index: int) -> tuple[CountingConnection, float, int]:
        """One socket, up to its snapshot frame: (connection, seconds, snapshot bytes)."""
        begin = time.perf_counter()
        conn = await connect(
            self.url,
            additional_headers=self.headers[index % len(self.headers)],
            create_connection=CountingConnection,
            user_agent_header=BROWSER_UA,
            open_timeout=60,
            ping_interval=None,  # Browsers do not ping; the server's pings are answered.
            close_timeout=5,
            max_size=2**20,
        )  # Offers permessage-deflate, as browsers do.
        assert isinstance(conn, CountingConnection)
        try:
            message = await asyncio.wait_for(conn.recv(), 60)
            frame = json.loads(message)
        except BaseException:
            conn.transport.abort()
            raise
        elapsed = time.perf_counter() - begin
        if frame.get("type") != "snapshot":
            conn.transport.abort()
            raise RuntimeError(f"first frame is not a snapshot: {frame!r:.200}")
        return conn, elapsed, len(message)

    async def open(self, count: int, concurrency: int, result: Result, label: str) -> None:
        gate = asyncio.Semaphore(concurrency)
        done = 0
        step = max(1, count // 5)

        async def one(index: int) -> None:
            nonlocal done
            async with gate:
                try:
                    conn, elapsed, _size = await self.open_one(index)
                except Exception as exc:
                    result.open_errors.append(f"{type(exc).__name__}: {exc}")
                    return
            self.conns.append(conn)
            self.readers.append(asyncio.create_task(self._read(conn)))
            result.handshake_ms.append(elapsed * 1000)
            done += 1
            if count >= 500 and done % step == 0:
                log(f"{label}:   {done}/{count} open")

        await asyncio.gather(*(one(i) for i in range(count)))

    async def _read(self, conn: CountingConnection) -> None:
        """Idle sockets get nothing after the snapshot; any close is a drop."""
        try:
            async for _message in conn:
                pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self.closing:
                self.dropped.append(self._when() + f"{type(exc).__name__}: {exc}")
            return
        if not self.closing:
            self.dropped.append(
                self._when() + f"closed by the server: {conn.close_code} {conn.close_reason!r}"
            )

    def _when(self) -> str:
        return f"after {time.monotonic() - self.began:.0f}s: "

    def open_count(self) -> int:
        return sum(1 for conn in self.conns if conn.state is State.OPEN)

    def pings(self) -> int:
        return sum(conn.pings for conn in self.conns)

    def bytes_in(self) -> int:
        return sum(conn.bytes_in for conn in self.conns)

    async def close(self) -> None:
        """Drops every socket at once (TCP reset): fast, and leaves no TIME_WAIT behind."""
        self.closing = True
        for conn in self.conns:
            with contextlib.suppress(Exception):
                conn.transport.abort()
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        self.conns.clear()
        self.readers.clear()


# One configuration, start to end.


async def measure(result: Result, server: Service, redis: RedisServer, fleet: Fleet,
                  args: argparse.Namespace) -> None:  # fmt: skip
    pid = server.process.pid
    redis_process = redis_pid(redis)
    label = result.config.label

    # Step 1: a warm-up socket through the whole path: lazy imports and pools are in the idle RSS.
    conn, _elapsed, result.snapshot_bytes = await fleet.open_one(0)
    response = conn.response
    assert response is not None  # Set once the handshake is done.
    result.extensions = response.headers.get("Sec-WebSocket-Extensions", "") or "none"
    await conn.close()
    await asyncio.sleep(1.5)
    result.rss_idle_kib = rss_kib(pid)
    log(f"{label}: idle RSS {result.rss_idle_kib / 1024:.1f} MiB; snapshot frame "
        f"{result.snapshot_bytes} bytes of JSON; extensions: {result.extensions}")  # fmt: skip

    # Step 2: open them all.
    log(f"{label}: opening {result.wanted} sockets, {args.concurrency} at a time")
    server0, own0 = cpu_seconds(pid), own_cpu_seconds()
    begin = time.perf_counter()
    await fleet.open(result.wanted, args.concurrency, result, label)
    result.open_s = time.perf_counter() - begin
    result.open_server_cpu_s = cpu_seconds(pid) - server0
    result.open_client_cpu_s = own_cpu_seconds() - own0
    result.opened = len(fleet.conns)
    result.wire_bytes_open = fleet.bytes_in()
    server.assert_alive()
    if result.open_errors:
        log(f"{label}: {len(result.open_errors)} sockets failed to open, "
            f"e.g. {result.open_errors[0]}")  # fmt: skip
    await asyncio.sleep(2)
    result.rss_open_kib = rss_kib(pid)
    log(f"{label}: {result.opened}/{result.wanted} open in {result.open_s:.1f}s "
        f"({result.opened / result.open_s:.0f}/s, handshake+snapshot p50 "
        f"{percentile(result.handshake_ms, 50):.0f} ms, p99 "
        f"{percentile(result.handshake_ms, 99):.0f} ms); RSS {result.rss_open_kib / 1024:.1f} "
        f"MiB = {result.kib_per_socket:.1f} KiB/socket")  # fmt: skip

    # Step 3: hold them, idle.
    log(f"{label}: holding {result.opened} sockets for {result.hold_s:.0f}s")
    cpu0, redis0, own0 = cpu_seconds(pid), cpu_seconds(redis_process), own_cpu_seconds()
    pings0, bytes0 = fleet.pings(), fleet.bytes_in()
    start = time.monotonic()
    end = start + result.hold_s
    last_t, last_cpu = start, cpu0
    result.rss_peak_kib = result.rss_open_kib
    while (now := time.monotonic()) < end:
        await asyncio.sleep(min(SAMPLE_EVERY, end - now))
        server.assert_alive()
        now, cpu, rss = time.monotonic(), cpu_seconds(pid), rss_kib(pid)
        result.rss_peak_kib = max(result.rss_peak_kib, rss)
        log(f"{label}:   {now - start:5.0f}s: {fleet.open_count()}/{result.opened} open, "
            f"{len(fleet.dropped)} dropped; RSS {rss / 1024:.1f} MiB; server CPU "
            f"{cpu - last_cpu:.2f}s in {now - last_t:.0f}s; "
            f"{fleet.pings() - pings0} pings answered")  # fmt: skip
        last_t, last_cpu = now, cpu
    result.held_s = time.monotonic() - start
    result.hold_server_cpu_s = cpu_seconds(pid) - cpu0
    result.hold_redis_cpu_s = cpu_seconds(redis_process) - redis0
    result.hold_client_cpu_s = own_cpu_seconds() - own0
    result.pings_hold = fleet.pings() - pings0
    result.wire_bytes_hold = fleet.bytes_in() - bytes0
    result.rss_end_kib = rss_kib(pid)
    result.rss_peak_kib = max(result.rss_peak_kib, result.rss_end_kib)
    result.still_open = fleet.open_count()
    result.dropped = list(fleet.dropped)
    if result.still_open + len(result.dropped) != result.opened:
        result.dropped.append(
            f"{result.opened - result.still_open - len(result.dropped)} more not open at the end"
        )
    errors = ERROR_LINE.findall(server.output())
    result.errors_hold = len(errors)
    log(f"{label}: held {result.held_s:.0f}s: {result.still_open}/{result.opened} still open, "
        f"{len(fleet.dropped)} dropped; server CPU {result.hold_server_cpu_s:.2f}s "
        f"({result.hold_server_cpu_s / result.minutes:.2f}s/min), redis "
        f"{result.hold_redis_cpu_s:.2f}s; {result.pings_hold} pings answered; RSS "
        f"{result.rss_end_kib / 1024:.1f} MiB = {result.kib_per_socket_end:.1f} KiB/socket; "
        f"{result.errors_hold} error lines in the server log")  # fmt: skip
    if result.dropped:
        log(f"{label}: dropped, e.g. {result.dropped[0]}")

    # Then all at once, as a network blip or a proxy restart would: the server's disconnect work
    # gets time to finish (its CPU goes quiet) before it is stopped, so errors it logs belong here.
    log(f"{label}: dropping all {result.still_open} sockets at once (TCP reset)")
    cpu0, begin = cpu_seconds(pid), time.monotonic()
    await fleet.close()
    last = cpu0
    while time.monotonic() - begin < 60:
        await asyncio.sleep(1)
        cpu = cpu_seconds(pid)
        if cpu - last < 0.05:
            break
        last = cpu
    result.teardown_s = time.monotonic() - begin
    result.teardown_cpu_s = cpu_seconds(pid) - cpu0
    log(f"{label}: the server took {result.teardown_s:.0f}s and {result.teardown_cpu_s:.2f}s of "
        "CPU to process the disconnects")  # fmt: skip


def run_config(
    config: Config,
    env: dict[str, str],
    workdir: Path,
    redis: RedisServer,
    args: argparse.Namespace,
    running: list[Service],
    cookies: dict[str, str],
) -> Result:
    wanted = args.sockets if config.full else args.sockets_small
    result = Result(config, wanted=wanted, hold_s=args.hold if config.full else args.hold_small)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log(f"{config.label}: starting uvicorn on port {port} with {' '.join(config.argv(port)[5:])}")
    server = Service(config.key, config.argv(port), env, workdir / f"{config.key}.log")
    running.append(server)
    try:
        wait_serving(server, base_url)
        # Sessions live in the database: one login per user serves every server of the run.
        for n in range(args.users):
            username = f"bench-idle-{n}"
            if username not in cookies:
                client = login(base_url, username, PASSWORD)
                cookies[username] = cookie_header(client.cookies)
                client.close()
        headers = [{**BROWSER_HEADERS, "Cookie": cookies[f"bench-idle-{n}"], "Origin": base_url}
                   for n in range(args.users)]  # fmt: skip
        ws_url = base_url.replace("http://", "ws://") + "/ws/progress/"
        with asyncio.Runner(loop_factory=new_loop) as runner:
            fleet = Fleet(ws_url, headers)
            try:
                run_measurement(runner, measure(result, server, redis, fleet, args))
            finally:
                with contextlib.suppress(Exception):
                    runner.run(fleet.close())
    except Exception as exc:
        result.error = server_failed(config.label, server, exc)
    finally:
        log(f"{config.label}: stopping the server")
        server.stop(timeout=20)
        errors = ERROR_LINE.findall(server.output())
        result.errors_total = len(errors)
        result.first_error = errors[0][:200] if errors else ""
        running.remove(server)
    return result


# The report.


Metric = tuple[str, Callable[[Result], float], int, bool]
# (name, value, digits, show a ratio against A)
METRICS: list[Metric] = [
    ("idle RSS MiB", lambda r: r.rss_idle_kib / 1024, 1, False),
    ("RSS with all open MiB", lambda r: r.rss_open_kib / 1024, 1, False),
    ("**KiB/socket** (open)", lambda r: r.kib_per_socket, 1, True),
    ("KiB/socket at end of hold", lambda r: r.kib_per_socket_end, 1, True),
    ("peak RSS during hold MiB", lambda r: r.rss_peak_kib / 1024, 1, False),
    ("time to open all s", lambda r: r.open_s, 1, False),
    ("sockets opened per s", lambda r: r.opened / r.open_s if r.open_s else math.nan, 0, True),
    ("handshake+snapshot p50 ms", lambda r: percentile(r.handshake_ms, 50), 0, True),
    ("handshake+snapshot p99 ms", lambda r: percentile(r.handshake_ms, 99), 0, True),
    ("server CPU ms per socket opened",
     lambda r: r.open_server_cpu_s * 1000 / r.opened if r.opened else math.nan, 2, True),
    ("server CPU s/min while held", lambda r: r.hold_server_cpu_s / r.minutes, 2, False),
    ("**server CPU s/min per 1000 idle sockets**",
     lambda r: r.per_minute_per_k(r.hold_server_cpu_s), 3, True),
    ("redis CPU s/min while held (mostly its own idle ticks)",
     lambda r: r.hold_redis_cpu_s / r.minutes, 2, False),
    ("bench client CPU s/min per 1000 sockets",
     lambda r: r.per_minute_per_k(r.hold_client_cpu_s), 3, True),
    ("pings per socket per min (client count)",
     lambda r: r.pings_hold / r.opened / r.minutes if r.opened else math.nan, 2, False),
    ("wire bytes in per socket to snapshot",
     lambda r: r.wire_bytes_open / r.opened if r.opened else math.nan, 0, True),
    ("wire bytes in per socket per min held",
     lambda r: r.wire_bytes_hold / r.opened / r.minutes if r.opened else math.nan, 1, True),
]  # fmt: skip


def table(results: list[Result]) -> str:
    ref = next((r for r in results if r.config.key == "A" and not r.error), None)
    headers = ["metric"] + [r.config.label for r in results]
    rows: list[list[str]] = [
        ["sockets held / hold s"] + [f"{r.opened}/{r.wanted} for {r.held_s:.0f}s" for r in results],
    ]
    for name, get, digits, vs_a in METRICS:
        row = [name]
        for r in results:
            if r.error and not r.opened:
                row.append("failed")
                continue
            value = get(r)
            cell = fmt(value, digits)
            if vs_a and ref is not None and r is not ref:
                cell += ratio(value, get(ref))
            row.append(cell)
        rows.append(row)
    extra: list[tuple[str, Callable[[Result], str]]] = [
        ("failed to open", lambda r: str(len(r.open_errors))),
        ("**dropped during hold**", lambda r: str(len(r.dropped))),
        ("still open at end", lambda r: f"{r.still_open}/{r.opened}"),
        ("server error lines to end of hold", lambda r: str(r.errors_hold)),
        ("server CPU s for the mass disconnect", lambda r: f"{r.teardown_cpu_s:.2f}"),
        ("server error lines in all (incl. mass disconnect)", lambda r: str(r.errors_total)),
        ("snapshot JSON bytes", lambda r: str(r.snapshot_bytes)),
        ("negotiated extension", lambda r: r.extensions.split(";")[0] or "none"),
    ]
    for name, show in extra:
        rows.append([name, *(show(r) for r in results)])
    return markdown_table(headers, rows)


def verdict(results: list[Result]) -> str:
    a = next((r for r in results if r.config.key == "A"), None)
    if a is None:
        return "Target: not assessed (configuration A did not run)."
    if a.error and not a.opened:
        return f"Target: NOT MET, A failed: {a.error}"
    kib_ok = a.kib_per_socket <= TARGET_KIB
    held_ok = not a.dropped and not a.open_errors and not a.error
    scope = (
        f"N={a.opened}/{a.wanted} over {a.held_s:.0f}s"
        + ("" if a.wanted >= TARGET_SOCKETS else f" (below the target's N={TARGET_SOCKETS:,})")
        + ("" if a.held_s >= 300 else " (the target's hold is 300 s)")
    )
    return (
        f"Target (<= {TARGET_KIB:.0f} KiB/socket, {TARGET_SOCKETS:,} sockets, none dropped "
        f"over 5 min), A at {scope}: {a.kib_per_socket:.1f} KiB/socket -> "
        f"{'MET' if kib_ok else 'NOT MET'}; {len(a.open_errors)} failed to open, "
        f"{len(a.dropped)} dropped -> {'MET' if held_ok else 'NOT MET'}."
    )


# Setup and teardown.


def prepare(workdir: Path, redis: RedisServer, args: argparse.Namespace) -> dict[str, str]:
    env = django_env(workdir, redis, PROGRESS_MAX_SOCKETS="0")
    log(f"migrate, collectstatic, {args.users} users with {args.jobs}+{UNFINISHED_JOBS} jobs each")
    migrate(env)
    create_users(env, (f"bench-idle-{n}" for n in range(args.users)))
    setup_django(env)
    seed_jobs(args.users, args.jobs)
    return env


def seed_jobs(users: int, finished: int) -> None:
    """Gives each user finished and unfinished jobs, so the snapshot is like a real tab's."""
    from django.contrib.auth.models import User
    from django.utils import timezone

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


def code_version() -> str:
    """The commit the servers ran, and whether the application code had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "progress", "tasks_site"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in progress/ or tasks_site/" if dirty.strip() else "")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sockets", "-N", type=int, default=TARGET_SOCKETS,
                        help=f"sockets A holds (default {TARGET_SOCKETS})")  # fmt: skip
    parser.add_argument("--hold", type=float, default=60.0,
                        help="seconds A holds them (default 60; the target is 300)")  # fmt: skip
    parser.add_argument("--sockets-small", type=int, default=1000,
                        help="sockets B, C and D hold (default 1000)")  # fmt: skip
    parser.add_argument("--hold-small", type=float, default=60.0,
                        help="seconds B, C and D hold them (default 60)")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=50,
                        help="handshakes in flight at a time (default 50)")  # fmt: skip
    parser.add_argument("--users", type=int, default=10,
                        help="users the sockets belong to, round robin (default 10)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=10,
                        help="finished jobs per user, for the snapshot (default 10)")  # fmt: skip
    parser.add_argument("--only", action="append", choices=[c.key for c in CONFIGS],
                        help="run only this configuration (repeatable)")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 500 sockets everywhere, held 10 s")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
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
    os.chdir(ROOT)
    configs = [c for c in CONFIGS if not args.only or c.key in args.only]
    most = max(args.sockets if c.full else args.sockets_small for c in configs)
    # Children inherit the limit: the server needs one fd per socket, as does this client.
    raise_fd_limit(most + 1024)
    log(f"machine: {machine()}; configurations: {', '.join(c.label for c in configs)}; "
        f"A: {args.sockets} sockets for {args.hold:.0f}s, B-D: {args.sockets_small} for "
        f"{args.hold_small:.0f}s; {args.users} users; "
        f"handshakes {args.concurrency} at a time")  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    redis = RedisServer(workdir / "redis")
    running: list[Service] = []
    results: list[Result] = []
    cookies: dict[str, str] = {}
    began = time.monotonic()
    try:
        with terminate_as_interrupt():
            start_redis(redis)
            env = prepare(workdir, redis, args)
            for config in configs:
                log(f"{config.label}: code {code_version()}")
                results.append(run_config(config, env, workdir, redis, args, running, cookies))
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        clean_up(workdir, args.keep, redis, running)
    print()
    print(f"Idle sockets on one uvicorn process; {machine()}; {args.users} users, snapshot of "
          f"{args.jobs}+{UNFINISHED_JOBS} jobs; handshakes {args.concurrency} at a time; run "
          f"took {time.monotonic() - began:.0f}s. Ratios (xN) are against A, from this run; "
          "per-socket and per-1000 figures make different N comparable. Code: "
          f"{code_version()}.")  # fmt: skip
    print()
    print(table(results))
    print()
    print(verdict(results))
    status = 0
    for r in results:
        if r.error:
            print(f"\n{r.config.label} failed: {r.error}")
            status = 1
        if r.open_errors:
            print(f"\n{r.config.label}: {len(r.open_errors)} sockets failed to open: "
                  f"{sorted(set(r.open_errors))[:3]}")  # fmt: skip
            status = 1
        if r.dropped:
            print(f"\n{r.config.label}: {len(r.dropped)} sockets dropped: {r.dropped[:3]}")
            status = 1
        if r.first_error:
            print(f"\n{r.config.label}: first server error line: {r.first_error}")
    return status


if __name__ == "__main__":
    sys.exit(main())
