"""In-process WebSocket clients against one server at a time, and one configuration's run.

A fleet of logged-in sockets opened to their snapshot, the server's memory around it (steps 1
and 2 of idle_sockets.py and asgi_servers.py), and one configuration's run from its server's
start to its stop.

fanout.py reads 20,000 frames/s, which wants the leaner clients of fanout_client.py in
processes of their own; these are websockets' asyncio client, which also answers pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode
from websockets.http11 import USER_AGENT
from websockets.protocol import State

from bench.harness import (
    INTERRUPTED,
    cpu_seconds,
    log,
    new_loop,
    own_cpu_seconds,
    percentile,
    rss_kib,
    run_measurement,
)
from bench.stack import BenchRun, Web, serve

# Called with the socket, time.time() as a message after its snapshot arrives, and the message.
OnMessage = Callable[["CountingConnection", float, str | bytes], None]


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


@dataclasses.dataclass
class Opening:
    """Steps 1 and 2: the server's RSS idle and with the sockets open, and the handshakes."""

    wanted: int
    extensions: str = ""
    snapshot_bytes: int = 0
    rss_idle_kib: int = 0
    rss_open_kib: int = 0
    opened: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)
    handshake_ms: list[float] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    wire_bytes: int = 0

    @property
    def kib_per_socket(self) -> float:
        return (self.rss_open_kib - self.rss_idle_kib) / self.opened if self.opened else math.nan

    def kib_per_socket_at(self, rss_kib: int) -> float:
        """KiB per open socket when the server's RSS is `rss_kib` (later in its run)."""
        return (rss_kib - self.rss_idle_kib) / self.opened if self.opened and rss_kib else math.nan

    @property
    def per_s(self) -> float:
        return self.opened / self.seconds if self.seconds else math.nan

    @property
    def server_ms_per_socket(self) -> float:
        return self.server_cpu_s * 1000 / self.opened if self.opened else math.nan


class Fleet:
    """Sockets of logged-in users (round robin over `headers`), each opened up to its
    snapshot frame, offering permessage-deflate as browsers do; a reader per socket passes
    what follows to `on_message` and notices any close at once."""

    def __init__(
        self,
        url: str,
        headers: list[dict[str, str]],
        on_message: OnMessage | None = None,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.url = url
        self.headers = headers
        self.on_message = on_message
        self.user_agent = user_agent
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
            user_agent_header=self.user_agent,
            proxy=None,
            open_timeout=60,
            ping_interval=None,  # Browsers do not ping; the server's pings are answered.
            close_timeout=5,
            max_size=2**20,
        )
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

    async def open(self, opening: Opening, concurrency: int, label: str) -> None:
        """Opens `opening.wanted` sockets, `concurrency` handshakes at a time."""
        count = opening.wanted
        gate = asyncio.Semaphore(concurrency)
        done = 0
        step = max(1, count // 5)

        async def one(index: int) -> None:
            nonlocal done
            async with gate:
                try:
                    conn, elapsed, _size = await self.open_one(index)
                except Exception as exc:
                    opening.errors.append(f"{type(exc).__name__}: {exc}")
                    return
            self.conns.append(conn)
            self.readers.append(asyncio.create_task(self._read(conn)))
            opening.handshake_ms.append(elapsed * 1000)
            done += 1
            if count >= 500 and done % step == 0:
                log(f"{label}:   {done}/{count} open")

        await asyncio.gather(*(one(i) for i in range(count)))

    async def _read(self, conn: CountingConnection) -> None:
        try:
            async for message in conn:
                if self.on_message is not None:
                    self.on_message(conn, time.time(), message)
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

    async def close(self, handshake: bool = False, concurrency: int = 50) -> None:
        """Closes every socket with a closing handshake, or else drops them all at once (a
        TCP reset, as a network blip would: fast, and no TIME_WAIT left behind)."""
        self.closing = True
        gate = asyncio.Semaphore(concurrency)

        async def one(conn: CountingConnection) -> None:
            async with gate:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 10)

        if handshake:
            await asyncio.gather(*(one(conn) for conn in self.conns))
        for conn in self.conns:
            with contextlib.suppress(Exception):
                conn.transport.abort()
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        self.conns.clear()
        self.readers.clear()


async def open_fleet(
    fleet: Fleet, pid: int, opening: Opening, concurrency: int, label: str
) -> None:
    """Steps 1 and 2 on the server `pid`: its idle RSS after a warm-up socket came and went
    (lazy imports and pools are then in it), then the sockets opened, timed, and its RSS with
    them all open."""
    conn, _elapsed, opening.snapshot_bytes = await fleet.open_one(0)
    response = conn.response
    assert response is not None  # Set once the handshake is done.
    opening.extensions = response.headers.get("Sec-WebSocket-Extensions", "") or "none"
    await conn.close()
    await asyncio.sleep(1.5)
    opening.rss_idle_kib = rss_kib(pid)
    log(f"{label}: idle RSS {opening.rss_idle_kib / 1024:.1f} MiB; snapshot frame "
        f"{opening.snapshot_bytes} bytes of JSON; extensions: {opening.extensions}")  # fmt: skip

    log(f"{label}: opening {opening.wanted} sockets, {concurrency} at a time")
    server0, own0 = cpu_seconds(pid), own_cpu_seconds()
    begin = time.perf_counter()
    await fleet.open(opening, concurrency, label)
    opening.seconds = time.perf_counter() - begin
    opening.server_cpu_s = cpu_seconds(pid) - server0
    opening.client_cpu_s = own_cpu_seconds() - own0
    opening.opened = len(fleet.conns)
    opening.wire_bytes = fleet.bytes_in()
    if opening.errors:
        log(f"{label}: {len(opening.errors)} sockets failed to open, e.g. {opening.errors[0]}")
    await asyncio.sleep(2)
    opening.rss_open_kib = rss_kib(pid)
    log(f"{label}: {opening.opened}/{opening.wanted} open in {opening.seconds:.1f}s "
        f"({opening.per_s:.0f}/s, handshake+snapshot p50 "
        f"{percentile(opening.handshake_ms, 50):.0f} ms, p99 "
        f"{percentile(opening.handshake_ms, 99):.0f} ms); RSS {opening.rss_open_kib / 1024:.1f} "
        f"MiB = {opening.kib_per_socket:.1f} KiB/socket")  # fmt: skip


# One configuration of a bench that runs its servers one after the other.


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    key: str
    label: str
    argv: Callable[[int], list[str]]  # the server's command line on a port
    full: bool = True  # idle_sockets.py: the full count of sockets, or the small one


def chosen(configs: Sequence[ServerConfig], only: list[str] | None) -> list[ServerConfig]:
    """The configurations --only names (all without it), in their order."""
    return [c for c in configs if not only or c.key in only]


@dataclasses.dataclass
class ServerResult:
    """What every configuration's run records, besides its own figures."""

    config: ServerConfig
    opening: Opening
    dropped: list[str] = dataclasses.field(default_factory=list)
    errors_total: int = 0
    first_error: str = ""
    error: str | None = None

    def problems(self, dropped: str = "dropped") -> list[str]:
        """What went wrong, a line each: the run failed, sockets failed to open or closed."""
        label, errors = self.config.label, self.opening.errors
        lines = [f"{label} failed: {self.error}"] if self.error else []
        if errors:
            lines.append(
                f"{label}: {len(errors)} sockets failed to open: {sorted(set(errors))[:3]}"
            )
        if self.dropped:
            lines.append(f"{label}: {len(self.dropped)} sockets {dropped}: {self.dropped[:3]}")
        return lines


# Makes a configuration's fleet once its server answers, and what to measure once it is open.
Setup = Callable[[Web], tuple[Fleet, Coroutine[Any, Any, None]]]


def measure_server(
    run: BenchRun, result: ServerResult, name: str, env: dict[str, str], setup: Setup,
    concurrency: int, handshake: bool = False,
) -> None:  # fmt: skip
    """One configuration on a server of its own: steps 1 and 2 (open_fleet) with the fleet
    `setup(web)` makes, then the rest of its measurement, on a loop of their own; then the
    sockets close (with closing handshakes if `handshake` and not interrupted) and the server
    stops."""

    async def steps(web: Web, fleet: Fleet, rest: Coroutine[Any, Any, None]) -> None:
        try:
            await open_fleet(fleet, web.pid, result.opening, concurrency, result.config.label)
            web.service.assert_alive()
        except BaseException:
            rest.close()  # Never started: no "never awaited" warning.
            raise
        await rest

    def measure(web: Web) -> None:
        fleet, rest = setup(web)
        with asyncio.Runner(loop_factory=new_loop) as runner:
            try:
                run_measurement(runner, steps(web, fleet, rest))
            finally:
                with contextlib.suppress(Exception):
                    runner.run(fleet.close(handshake and not INTERRUPTED.is_set()))

    served = serve(run, result.config.label, name, result.config.argv, env, measure)
    result.error, result.errors_total = served.error, len(served.errors)
    result.first_error = served.errors[0][:200] if served.errors else ""
