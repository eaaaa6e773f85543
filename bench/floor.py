"""The floor for bench/fanout.py: the least a Redis pub/sub to WebSocket fan-out costs, no Django.

Two commands, each a process of its own so that /proc times them apart:

    python -m bench.floor serve --port 8765 --redis redis://127.0.0.1:6390/0
        A `websockets` server (no compression, as ours runs without it). A client connects to
        ws://host:port/?channel=<name>; the server SUBSCRIBEs to <name> on Redis while the
        channel has sockets, and forwards each message's text verbatim, in one text frame, to
        every socket of that channel (websockets' broadcast()). No auth, no per-socket state.

    python -m bench.floor publish --redis URL --channel job:<uuid> [--channel ...] -S 200 -R 20
        The life of one job per channel, as demo.count's would go: STARTED, S PROGRESS states
        at R per second, then SUCCESS, so S + 2 states with seq 1..S+2. Each is a job frame the
        size of ours (~330 bytes), its `ts` the time.time() just before its PUBLISH. It prints
        "ready" once every channel has a subscriber, starts on a "go" line on stdin, prints
        {"published": n, "seconds": s, "late_ms": l} when done, and exits at the end of stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis
import redis.asyncio
from websockets.asyncio.server import ServerConnection, broadcast, serve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # Run as a script.

from bench.harness import new_loop

# The server keeps one subscription at all times, so that its reader has something to read.
CONTROL = b"floor:control"


# The forwarder.


async def forward(port: int, redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(CONTROL)
    channels: dict[bytes, set[ServerConnection]] = {}

    async def handler(ws: ServerConnection) -> None:
        name = parse_qs(urlsplit(ws.request.path if ws.request else "").query).get("channel")
        if not name or not name[0]:
            await ws.close(1008, "?channel=<name> is required")
            return
        key = name[0].encode()
        members = channels.get(key)
        if members is None:
            members = channels[key] = set()
            await pubsub.subscribe(key)
        members.add(ws)
        try:
            await ws.wait_closed()
        finally:
            members.discard(ws)
            if not members and channels.get(key) is members:
                del channels[key]
                await pubsub.unsubscribe(key)

    async def relay() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                members = channels.get(message["channel"])
                if members:
                    broadcast(members, message["data"], text=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve(handler, "127.0.0.1", port, compression=None, max_size=65536):
        reader = asyncio.create_task(relay())
        print(f"floor forwarder on port {port}", flush=True)
        await stop.wait()
        reader.cancel()
    await pubsub.aclose()
    await client.aclose()


# The publisher.


def job_frame(job_id: str, seq: int, state: str, current: int, total: int, created: str) -> str:
    """A job frame with the fields, order and formatting of ours (docs/protocol.md)."""
    final = state == "SUCCESS"
    job: dict[str, Any] = {
        "id": job_id,
        "task": "demo.count",
        "state": state,
        "current": current,
        "total": total,
        "percent": round(current * 100 / total, 2),
        "message": f"step {current} of {total}" if current else "",
        "seq": seq,
        "ts": time.time(),
        "eta": None if final or not current else round((total - current) / 20, 1),
        "rate": 20.0 if current else None,
        "result": {"counted": total} if final else None,
        "error": None,
        "created": created,
        "started": created,
        "finished": datetime.now(UTC).isoformat() if final else None,
    }
    return json.dumps({"type": "job", "job": job}, separators=(",", ":"))


def publish(redis_url: str, channels: list[str], states: int, rate: float) -> None:
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 30
    while True:
        counts = dict(client.pubsub_numsub(*channels))
        if all(counts.get(name.encode(), 0) for name in channels):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"no subscriber on some of {channels} after 30 s: {counts}")
        time.sleep(0.05)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    ids = {name: name.rpartition(":")[2] or str(uuid.uuid4()) for name in channels}
    created = datetime.now(UTC).isoformat()
    begin = time.monotonic()
    late = 0.0
    published = 0
    for seq in range(1, states + 3):
        # seq 1 STARTED at 0; seq i + 1 PROGRESS i at i / rate; SUCCESS right after the last one.
        step = min(seq - 1, states)
        due = begin + step / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        late = max(late, -delay)
        state = "STARTED" if seq == 1 else "SUCCESS" if seq == states + 2 else "PROGRESS"
        # One round trip per tick for all channels, or 100 jobs at 20/s would outrun it.
        pipe = client.pipeline(transaction=False)
        for name in channels:
            pipe.publish(name, job_frame(ids[name], seq, state, step, states, created))
        published += len(pipe.execute())
    done = {"published": published, "seconds": time.monotonic() - begin, "late_ms": late * 1000}
    print(json.dumps(done), flush=True)
    sys.stdin.read()  # Stays alive, so that its CPU time can be read, until stdin closes.


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("serve", help="run the forwarder")
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--redis", required=True, help="redis://host:port/db")
    publisher = commands.add_parser("publish", help="publish one job's states per channel")
    publisher.add_argument("--redis", required=True, help="redis://host:port/db")
    publisher.add_argument("--channel", action="append", required=True)
    publisher.add_argument("--states", "-S", type=int, default=200)
    publisher.add_argument("--rate", "-R", type=float, default=20.0)
    args = parser.parse_args(argv)
    if args.command == "serve":
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(forward(args.port, args.redis))
    else:
        publish(args.redis, args.channel, args.states, args.rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
