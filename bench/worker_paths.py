"""The worker side's ways to publish a state, and what a Redis round trip costs, for worker_side.py.

Every path sends U sequential updates of one job to its owner's group, which has one plain
member whose messages the bench reads back to check delivery:

  (a)  async_to_sync(group_send) + close_pools per update, as celery-progress does (one
       group_send; no numbering);
  (a+) async_to_sync per update of our whole send (number the state in Redis, send to the
       owner's group), closing its pools as (a) does;
  (b)  our Publisher: publish(state) to its one long-lived loop thread, waiting for each
       update's future (a worker never waits; the caller's share is shown);
  (c)  blocking redis-py on the caller's thread: the same numbering script, and channels-redis'
       group_send redone with the layer's own key, hash and serializer helpers.

Runs in the bench's process after Django is set up (stack.setup_django).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from collections.abc import Callable
from typing import Any

from bench.harness import CpuMarks, Window, fmt, log
from bench.stack import PASSWORD

MEMBER = "bench-member"
WARMUP = 20


class Jobs:
    """Makes the bench's jobs and reads their latest state straight from Redis."""

    def __init__(self, url: str) -> None:
        import redis
        from django.contrib.auth.models import User

        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self.owner = User.objects.create_user("bench", password=PASSWORD)

    def new(self, name: str) -> Any:
        from progress.models import Job

        return Job.objects.create(owner=self.owner, task=f"bench.{name}", params={})

    def latest(self, job: Any) -> tuple[int, dict[str, Any]]:
        from progress.core.keys import state_key

        seq, payload = self.redis.hmget(state_key(job.id), "seq", "json")
        return (int(seq), json.loads(payload)) if seq and payload else (0, {})


@dataclasses.dataclass
class PathRun:
    """U updates through one path: wall time, the caller's share, CPU, what was delivered."""

    key: str
    label: str
    note: str = ""
    updates: int = 0
    window: Window = dataclasses.field(default_factory=Window)  # own: this process, all threads
    caller_s: float = 0.0
    delivered: int = 0

    def per_update_us(self, seconds: float) -> float:
        return seconds * 1e6 / self.updates if self.updates else math.nan


def layer_message(state: Any, seq: int, job_json: str, epoch: str = "") -> dict[str, Any]:
    """A job message as the publisher puts it into the layer: the frame encoded once."""
    from progress.protocol.frames import job_frame
    from progress.protocol.layer import LAYER_JOB_MESSAGE

    return {
        "type": LAYER_JOB_MESSAGE,
        "job_id": state.id,
        "seq": seq,
        "epoch": epoch,
        "final": state.is_final,
        "frame": job_frame(job_json),
    }


async def closing_group_send(layer: Any, group: str, message: dict[str, Any]) -> None:
    """celery-progress's push_update: one group_send, then close this loop's pools."""
    await layer.group_send(group, message)
    await layer.close_pools()


async def full_send_new_loop(layer: Any, url: str, state: Any) -> int | None:
    """Our whole send on a loop of its own: a new Redis client, numbering, one group send."""
    from progress.conf import progress_settings
    from progress.core.store import StateStore
    from progress.protocol.layer import user_group

    store = StateStore(url, progress_settings.STATE_TTL)
    try:
        saved = await store.save(state)
        if saved is None:
            return None
        message = layer_message(state, saved.seq, saved.json, saved.epoch)
        await layer.group_send(user_group(state.owner_id), message)
        return saved.seq
    finally:
        await store.redis.aclose(close_connection_pool=True)
        await layer.close_pools()


# channels-redis 4's group_send script (channels_redis/core.py), unchanged.
_GROUP_SEND_LUA = """
local over_capacity = 0
local current_time = ARGV[#ARGV - 1]
local expiry = ARGV[#ARGV]
for i=1,#KEYS do
    if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
        redis.call('ZADD', KEYS[i], current_time, ARGV[i])
        redis.call('EXPIRE', KEYS[i], expiry)
    else
        over_capacity = over_capacity + 1
    end
end
return over_capacity
"""


class SyncSender:
    """Path (c): numbering and channels-redis' group_send over blocking redis-py connections.

    It reuses the layer's own key, hash and serializer helpers, so its messages are the ones
    the layer's receive() reads; but it leans on channels-redis internals and blocks the
    task's thread for every round trip.
    """

    def __init__(self, layer: Any, url: str) -> None:
        import redis

        from progress.conf import progress_settings
        from progress.core.scripts import SAVE_STATE

        self.layer = layer
        self.clients = [redis.Redis.from_url(host["address"]) for host in layer.hosts]
        self.ttl = int(progress_settings.STATE_TTL)
        self.save_script = redis.Redis.from_url(url, decode_responses=True).register_script(
            SAVE_STATE
        )
        self.group_send_script = [c.register_script(_GROUP_SEND_LUA) for c in self.clients]

    def send(self, state: Any) -> int | None:
        from progress.core.keys import state_key
        from progress.core.store import new_epoch
        from progress.protocol.layer import user_group

        head, tail = state.encode()
        # The store's arguments (StateStore.save_many): no floor, no group version, an epoch.
        args = [head, tail, state.state.value, int(state.is_final), self.ttl, 0, 0, new_epoch()]
        saved = self.save_script(keys=[state_key(state.id)], args=args)
        if not saved:
            return None
        message = layer_message(state, int(saved[0]), saved[1], saved[2])
        self.group_send(user_group(state.owner_id), message)
        return int(saved[0])

    def group_send(self, group: str, message: dict[str, Any]) -> None:
        layer = self.layer
        key = layer._group_key(group)
        conn = self.clients[layer.consistent_hash(group)]
        now = time.time()
        conn.zremrangebyscore(key, min=0, max=int(now) - layer.group_expiry)
        names = [x.decode() for x in conn.zrange(key, 0, -1)]
        by_conn, messages, capacities = layer._map_channel_keys_to_connection(names, message)
        for index, keys in by_conn.items():
            with self.clients[index].pipeline(transaction=False) as pipe:
                for channel_key in keys:
                    pipe.zremrangebyscore(channel_key, min=0, max=int(now) - int(layer.expiry))
                pipe.execute()
            args = [*(messages[k] for k in keys), *(capacities[k] for k in keys), now, layer.expiry]
            self.group_send_script[index](keys=keys, args=args)


class Member:
    """One plain channel in a group; reads what reached it straight from Redis."""

    def __init__(self, layer: Any) -> None:
        import redis
        from asgiref.sync import async_to_sync

        self.layer = layer
        self.key = layer.prefix + MEMBER
        self.client = redis.Redis.from_url(layer.hosts[layer.consistent_hash(MEMBER)]["address"])
        self.join = async_to_sync(self._join_closing)

    async def _join_closing(self, group: str) -> None:
        await self.layer.group_add(group, MEMBER)
        await self.layer.close_pools()

    def take(self, job_id: str) -> list[int]:
        """The seqs of the job's messages waiting for the member, oldest first; then clears."""
        raw = self.client.zrange(self.key, 0, -1)
        self.client.delete(self.key)
        messages = [self.layer.deserialize(blob) for blob in raw]
        return [int(m["seq"]) for m in messages if m.get("job_id") == job_id]


def publish_paths(updates: int, jobs: Jobs, url: str, redis_pid: int) -> list[PathRun]:
    from asgiref.sync import async_to_sync
    from channels import DEFAULT_CHANNEL_LAYER
    from channels.layers import channel_layers, get_channel_layer
    from channels_redis.core import RedisChannelLayer

    from progress.core.publisher import get_publisher
    from progress.protocol.layer import user_group
    from progress.protocol.states import State

    # The publisher has its own layer. Paths (a) and (a+) get another instance, as in a
    # celery-progress worker: close_pools() closes the pools of every loop that used the
    # instance, so on the shared one it would cut the publisher's loop off its connections.
    if get_channel_layer() is None:
        raise RuntimeError("No channel layer is configured.")
    layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    publisher = get_publisher()
    core = isinstance(layer, RedisChannelLayer)
    sync_sender = SyncSender(layer, url) if core else None
    member = Member(layer) if core else None

    def state_at(job: Any, i: int) -> Any:
        state = job.to_state()
        state.state = State.PROGRESS
        state.current, state.total, state.message = i, updates, "crunching"
        state.ts = time.time()
        return state

    def timed(send: Callable[[Any], object]) -> Callable[[Any, int], float]:
        """The path as the caller sees it: the seconds its thread spent on one update."""

        def one(job: Any, i: int) -> float:
            state = state_at(job, i)
            begin = time.perf_counter()
            send(state)
            return time.perf_counter() - begin

        return one

    def celery_progress(state: Any) -> None:
        message = layer_message(state, state.current, state.to_json(state.current))
        async_to_sync(closing_group_send)(layer, user_group(state.owner_id), message)

    def long_lived_loop(job: Any, i: int) -> float:
        begin = time.perf_counter()
        future = publisher.publish(state_at(job, i))
        caller = time.perf_counter() - begin
        future.result(10)
        return caller

    paths: list[tuple[str, str, Callable[[Any, int], float] | None, str]] = [
        ("a", "(a) async_to_sync(group_send) + close_pools", timed(celery_progress),
         "less work: no seq"),
        ("a+", "(a+) async_to_sync, our whole send",
         timed(lambda state: async_to_sync(full_send_new_loop)(layer, url, state)),
         "same work as (b)"),
        ("b", "(b) Publisher, one long-lived loop", long_lived_loop, "caller only hands over"),
        ("c", "(c) blocking redis-py", timed(sync_sender.send) if sync_sender else None,
         "blocks the caller; channels-redis internals"),
    ]  # fmt: skip
    results: list[PathRun] = []
    for key, label, send, note in paths:
        run = PathRun(key, label, note=note)
        results.append(run)
        if send is None:
            run.note = "skipped: needs channels-redis' core layer"
            log(f"{label}: {run.note}")
            continue
        job = jobs.new(f"path-{key}")
        if member is not None:
            member.join(user_group(job.owner_id))
        for i in range(1, WARMUP + 1):
            send(job, i)
        if member is not None:
            member.take(str(job.id))
        begin = CpuMarks.take({"redis": redis_pid})
        for i in range(WARMUP + 1, WARMUP + updates + 1):
            run.caller_s += send(job, i)
        run.window, run.updates = (
            Window.between(begin, CpuMarks.take({"redis": redis_pid})),
            updates,
        )
        if member is not None:
            seqs = member.take(str(job.id))
            run.delivered = len(seqs)
            if seqs != sorted(seqs):
                run.note += "; OUT OF ORDER"
        log(f"{label}: {run.per_update_us(run.window.seconds):.0f} µs/update, CPU "
            f"{run.per_update_us(run.window.own):.0f} µs/update, {run.delivered}/{updates} "
            "delivered to the member")  # fmt: skip
    return results


def round_trips(count: int, url: str, redis_pid: int) -> list[PathRun]:
    """`count` PINGs one after the other through blocking and through asyncio redis-py: the
    CPU one Redis round trip costs the client and the server, which every path above pays
    for each of its round trips."""
    import redis
    import redis.asyncio

    def measure(label: str, pings: Callable[[int], object], note: str) -> PathRun:
        pings(WARMUP)
        run = PathRun("r", label, updates=count, note=note)
        begin = CpuMarks.take({"redis": redis_pid})
        pings(count)
        run.window = Window.between(begin, CpuMarks.take({"redis": redis_pid}))
        log(f"{label}: {run.per_update_us(run.window.own):.0f} µs of process CPU per round trip")
        return run

    blocking = redis.Redis.from_url(url)
    runs = [measure("PING, blocking redis-py", lambda n: [blocking.ping() for _ in range(n)],
                    "as path (c) does")]  # fmt: skip
    blocking.close()
    client = redis.asyncio.Redis.from_url(url)

    async def pings(n: int) -> None:
        for _ in range(n):
            await client.ping()

    loop = asyncio.new_event_loop()  # Plain asyncio, as the publisher's thread runs it.
    try:
        runs.append(measure("PING, asyncio redis-py", lambda n: loop.run_until_complete(pings(n)),
                            "as the publisher does"))  # fmt: skip
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()
    return runs


def path_table(results: list[PathRun]) -> str:
    """The paths' figures per update, with ratios against path (b)'s."""
    base = next((r for r in results if r.key == "b" and r.updates), None)

    def against(value: float, get: Callable[[PathRun], float]) -> str:
        return "-" if base is None else fmt(value / base.per_update_us(get(base)), 1)

    rows = [
        "| publish path | µs per update (wall) | x (b) | µs in caller | process CPU µs per "
        "update | x (b) | redis-server CPU µs per update | delivered | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if not r.updates:
            rows.append(f"| {r.label} | - | - | - | - | - | - | - | {r.note} |")
            continue
        wall, cpu = r.per_update_us(r.window.seconds), r.per_update_us(r.window.own)
        rows.append(
            f"| {r.label} | {fmt(wall, 0)} | {against(wall, lambda b: b.window.seconds)} | "
            f"{fmt(r.per_update_us(r.caller_s), 0)} | {fmt(cpu, 0)} | "
            f"{against(cpu, lambda b: b.window.own)} | {fmt(r.per_update_us(r.window.redis), 0)} | "
            f"{r.delivered}/{r.updates} | {r.note} |"
        )
    return "\n".join(rows)


def trip_table(trips: list[PathRun]) -> str:
    """CPU per Redis round trip, with ratios against blocking redis-py's (the first)."""
    base = trips[0].per_update_us(trips[0].window.own) if trips else math.nan
    rows = [
        "| round trip (PING) | µs wall | process CPU µs | x blocking | redis CPU µs | note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in trips:
        cpu = r.per_update_us(r.window.own)
        rows.append(
            f"| {r.label} | {fmt(r.per_update_us(r.window.seconds), 0)} | {fmt(cpu, 0)} | "
            f"{fmt(cpu / base, 1)} | {fmt(r.per_update_us(r.window.redis), 0)} | {r.note} |"
        )
    return "\n".join(rows)
