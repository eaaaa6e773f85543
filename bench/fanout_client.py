"""A WebSocket client process of bench/fanout.py: opens sockets, records every frame, reports.

bench/fanout.py starts a few of these, so that receiving 20,000 frames/s does not hinge on one
event loop. It talks JSON lines. The first stdin line is the config:

    {"sockets": [{"url": ..., "headers": {...}, "count": n}, ...],
     "concurrency": 25, "snapshot": true, "results": "/tmp/.../client-0.json"}

Events on stdout: {"e": "open", ...} once the sockets are open (with `snapshot`, once each
socket's first frame, the snapshot, has come), {"e": "final", "job": id, "n": k} whenever one
more socket gets a final state, and {"e": "done"} once the results file is written. A "stop"
line on stdin ends the recording; the end of stdin ends the process at once.

Each socket is websockets' Sans-I/O ClientProtocol driven by an asyncio.Protocol (see
Watcher). While recording, each frame is kept as (time.time() when its bytes arrived, bytes)
and only a frame that may be final is parsed; the rest is parsed after "stop", so that the
receive path stays cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any, cast

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import enable_client_permessage_deflate
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # Run as a script.

from bench.harness import new_loop

FINAL = {"SUCCESS", "FAILURE", "REVOKED"}
FINAL_MARKS = (b"SUCCESS", b"FAILURE", b"REVOKED")


class LagMeter:
    """How late a 10 ms timer fires on this loop: a busy loop delays every frame as much."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.lags_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.lags_ms.clear()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.lags_ms.append(max(0.0, loop.time() - due) * 1000)

    def stop(self) -> list[float]:
        if self._task is not None:
            self._task.cancel()
        return self.lags_ms


class Watcher(asyncio.Protocol):
    """One socket, on websockets' Sans-I/O ClientProtocol driven from an asyncio.Protocol.

    websockets does the handshake (offering permessage-deflate, as browsers do), the framing
    and the answers to pings; there is no task or future per frame, so a frame costs the
    client a few microseconds instead of some forty with the asyncio client. With M = 1,000
    sockets the client reads each state 1,000 times: its cost per frame is part of the
    latency it measures, for every server alike.
    """

    def __init__(self, client: Client, url: str, headers: dict[str, str]) -> None:
        self.client = client
        self.url = url
        self.headers = headers
        self.ws = ClientProtocol(
            parse_uri(url),
            extensions=enable_client_permessage_deflate(None),
            max_size=2**20,
        )
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.first: asyncio.Future[bytes] | None = None
        self.lost: asyncio.Future[None] = loop.create_future()
        self.extensions = ""
        self.partial: list[bytes] = []
        self.frames: list[tuple[float, bytes]] = []
        self.final = False
        self.closed: str | None = None

    async def open(self, snapshot: bool) -> float:
        begin = time.perf_counter()
        uri = parse_uri(self.url)
        loop = asyncio.get_running_loop()
        if snapshot:
            self.first = loop.create_future()
        await asyncio.wait_for(loop.create_connection(lambda: self, uri.host, uri.port), 60)
        await asyncio.wait_for(asyncio.shield(self.opened), 60)
        if self.first is not None:
            first = await asyncio.wait_for(asyncio.shield(self.first), 60)
            if json.loads(first).get("type") != "snapshot":
                raise RuntimeError(f"first frame is not a snapshot: {first[:200]!r}")
        return time.perf_counter() - begin

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass.
        request = self.ws.connect()
        for name, value in self.headers.items():
            request.headers[name] = value
        self.ws.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Response):
                if self.ws.handshake_exc is not None:
                    self._fail(self.ws.handshake_exc)
                else:
                    self.extensions = event.headers.get("Sec-WebSocket-Extensions", "")
                    self.opened.set_result(None)
            elif isinstance(event, Frame):
                self._frame(now, event)
        self._flush()

    def _frame(self, now: float, frame: Frame) -> None:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            if not frame.fin:
                self.partial.append(bytes(frame.data))
                return
            data = b"".join([*self.partial, bytes(frame.data)])
            self.partial.clear()
            if self.first is not None and not self.first.done():
                self.first.set_result(data)
                return
            self.frames.append((now, data))
            if not self.final and any(mark in data for mark in FINAL_MARKS):
                message = json.loads(data)
                job = message.get("job") or {}
                if message.get("type") == "job" and job.get("state") in FINAL:
                    self.final = True
                    self.client.on_final(job["id"])
        elif frame.opcode is Opcode.CLOSE and not self.client.stopping:
            self.closed = f"closed by the server: {self.ws.close_code} {self.ws.close_reason}"

    def _flush(self) -> None:
        assert self.transport is not None
        for data in self.ws.data_to_send():
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    def _fail(self, exc: BaseException) -> None:
        for future in (self.opened, self.first):
            if future is not None and not future.done():
                future.set_exception(exc)
                future.exception()  # Retrieved here, so that asyncio does not log it.

    def connection_lost(self, exc: Exception | None) -> None:
        self.ws.receive_eof()
        self._fail(ConnectionError(f"connection lost: {exc!r}"))
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.client.stopping and self.closed is None and self.opened.done():
            self.closed = f"connection lost: {exc!r} (close code {self.ws.close_code})"

    async def close(self) -> None:
        """The closing handshake, then the TCP close; aborts after 5 s."""
        if self.transport is None or self.transport.is_closing():
            return
        with contextlib.suppress(Exception):
            if self.ws.state is State.OPEN:
                self.ws.send_close(1000)
                self._flush()
            await asyncio.wait_for(asyncio.shield(self.lost), 5)
        if not self.lost.done():
            self.transport.abort()

    def result(self) -> dict[str, Any]:
        """Per job: the seqs and latencies (ms) of its frames, their bytes, and if one was final."""
        jobs: dict[str, dict[str, Any]] = {}
        other: dict[str, int] = {}
        for received, data in self.frames:
            frame = json.loads(data)
            kind = frame.get("type")
            if kind != "job":
                other[str(kind)] = other.get(str(kind), 0) + 1
                continue
            job = frame["job"]
            entry = jobs.setdefault(
                job["id"], {"seqs": [], "lat": [], "bytes": 0, "final": False, "states": {}}
            )
            entry["seqs"].append(job["seq"])
            entry["lat"].append((received - job["ts"]) * 1000)
            entry["bytes"] += len(data)
            entry["states"][job["state"]] = entry["states"].get(job["state"], 0) + 1
            if job["state"] in FINAL:
                entry["final"] = True
        return {"jobs": jobs, "other": other, "closed": self.closed}


class Client:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.watchers = [
            Watcher(self, spec["url"], spec["headers"])
            for spec in config["sockets"]
            for _ in range(spec.get("count", 1))
        ]
        self.finals = 0
        self.stopping = False

    def on_final(self, job_id: str) -> None:
        self.finals += 1
        emit({"e": "final", "job": job_id, "n": self.finals})

    async def open(self) -> None:
        gate = asyncio.Semaphore(self.config["concurrency"])
        handshakes: list[float] = []
        errors: list[str] = []
        extensions: set[str] = set()

        async def one(watcher: Watcher) -> None:
            async with gate:
                try:
                    handshakes.append(await watcher.open(self.config["snapshot"]) * 1000)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    watcher.closed = "never opened"
                    return
            extensions.add(watcher.extensions)

        begin = time.perf_counter()
        await asyncio.gather(*(one(watcher) for watcher in self.watchers))
        emit(
            {
                "e": "open",
                "opened": len(handshakes),
                "errors": errors,
                "handshake_ms": handshakes,
                "seconds": time.perf_counter() - begin,
                "extensions": sorted(extensions),
            }
        )

    async def close(self) -> None:
        self.stopping = True
        gate = asyncio.Semaphore(self.config["concurrency"])

        async def one(watcher: Watcher) -> None:
            async with gate:
                await watcher.close()

        await asyncio.gather(*(one(watcher) for watcher in self.watchers))


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def main() -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    config = json.loads(await stdin.readline())
    client = Client(config)
    try:
        await client.open()
        lag = LagMeter()
        lag.start()
        command = (await stdin.readline()).strip()
        lags = lag.stop()
        if command != b"stop":
            return  # The bench went away: no results, no close handshakes.
        stopped = time.time()
        results = [watcher.result() for watcher in client.watchers]
        Path(config["results"]).write_text(
            json.dumps({"sockets": results, "lag_ms": lags, "stopped": stopped})
        )
        await client.close()
        emit({"e": "done"})
    finally:
        for watcher in client.watchers:
            if watcher.transport is not None:
                watcher.transport.abort()


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(main())
