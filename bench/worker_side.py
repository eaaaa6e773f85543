"""Measures the worker side: what set_progress() and track() cost, and four ways to publish.

Runs in this one process, as a Celery worker child would, against a private redis-server
and a throwaway SQLite database:

  1. ns per call of `set_progress(i, n, msg)` and per item of `for _ in track(range(n))`
     in a tight loop of n calls, with an active reporter made as progress/worker.py makes
     it; baselines in the same run: the same loop calling an empty Python function, and a
     minimal Python generator wrapping range(n). It also counts the states that reached
     Redis (seq grows by one per stored state): the throttle bounds them to about
     duration / THROTTLE + 2, whatever n is, and the last numbers must arrive.
  2. U sequential updates of one job through each publish path, all to the job's group,
     which has one member whose messages the bench reads back to check delivery:
       (a)  async_to_sync(group_send) + close_pools per update, as celery-progress does
            (one group_send; no numbering);
       (a+) async_to_sync per update of our whole send (number the state in Redis, send to
            the owner's and the job's groups), closing its pools as (a) does;
       (b)  our Publisher: publish(state, floor) to the one long-lived loop thread, waiting
            for each update's future (a worker never waits; the caller's share is shown);
       (c)  blocking redis-py on the caller's thread: the same numbering script and
            channels-redis' group_send redone with its own key, hash and serializer helpers.
     It reports wall time and CPU (this process, all threads; and redis-server) per update.

    .venv/bin/python bench/worker_side.py            # n=1,000,000, U=500
    .venv/bin/python bench/worker_side.py --quick    # n=100,000, U=200
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    cpu_seconds,
    fmt,
    log,
    machine,
    own_cpu_seconds,
    terminate_as_interrupt,
)
from bench.stack import (  # noqa: E402
    PASSWORD,
    clean_up,
    django_env,
    migrate,
    redis_pid,
    setup_django,
    start_redis,
)
from devstack.processes import RedisServer, wait_for  # noqa: E402

TARGET_NS = 1000.0
MEMBER = "bench-member"


def empty(current: float, total: float | None = None, message: str | None = None) -> None:
    """The baseline: a Python call with set_progress()'s signature that does nothing."""
    return None


def passthrough(iterable: Iterable[int]) -> Iterator[int]:
    """The baseline for track(): the least a Python iterator wrapper can do per item."""
    for item in iterable:  # noqa: UP028 - a wrapper that sees each item, as track() does.
        yield item


# Setup and teardown.


def prepare(workdir: Path, redis: RedisServer) -> None:
    """Migrates a throwaway database, then sets Django up in this process, as a worker does."""
    env = django_env(workdir, redis)
    log("migrate")
    migrate(env, static=False)
    setup_django(env)


# 1. The hot path.


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


def hot_path(n: int, rounds: int, jobs: Jobs) -> dict[str, list[HotRun]]:
    """Every loop `rounds` times, interleaved, so drift on a shared machine hits all alike."""
    from progress.conf import progress_settings

    runs: dict[str, list[HotRun]] = {}
    throttle = float(progress_settings.THROTTLE)
    for round_no in range(rounds):
        runs.setdefault("empty", []).append(HotRun(time_loop(loop_empty, n)))
        runs.setdefault("passthrough", []).append(HotRun(time_loop(loop_passthrough, n)))
        for name, loop in (("set_progress", loop_set_progress), ("track", loop_track)):
            run = run_reported(loop, n, jobs, f"{name}-{round_no}")
            runs.setdefault(name, []).append(run)
            log(
                f"round {round_no + 1}/{rounds} {name}: {run.ns_per_call:.0f} ns/call, "
                f"{run.stored} states stored in {run.seconds:.2f} s "
                f"(bound {run.seconds / throttle + 2:.1f})"
            )
        log(
            f"round {round_no + 1}/{rounds} baselines: empty call "
            f"{runs['empty'][-1].ns_per_call:.0f} ns, generator "
            f"{runs['passthrough'][-1].ns_per_call:.0f} ns"
        )
    return runs


# 2. The publish paths.


@dataclasses.dataclass
class PathRun:
    key: str
    label: str
    updates: int = 0
    wall_s: float = 0.0
    caller_s: float = 0.0
    cpu_s: float = 0.0
    redis_cpu_s: float = 0.0
    delivered: int = 0
    note: str = ""

    def per_update_us(self, seconds: float) -> float:
        return seconds * 1e6 / self.updates if self.updates else float("nan")


def layer_message(state: Any, seq: int, job_json: str) -> dict[str, Any]:
    """A job message as the publisher puts it into the layer: the frame encoded once."""
    from progress.protocol.frames import job_frame
    from progress.protocol.layer import LAYER_JOB_MESSAGE

    return {
        "type": LAYER_JOB_MESSAGE,
        "job_id": state.id,
        "seq": seq,
        "final": state.is_final,
        "frame": job_frame(job_json),
    }


async def closing_group_send(layer: Any, group: str, message: dict[str, Any]) -> None:
    """celery-progress's push_update: one group_send, then close this loop's pools."""
    await layer.group_send(group, message)
    await layer.close_pools()


async def full_send_new_loop(layer: Any, url: str, state: Any, floor: int) -> int | None:
    """Our whole send on a loop of its own: a new Redis client, numbering, one group send."""
    from progress.conf import progress_settings
    from progress.core.store import StateStore
    from progress.protocol.layer import user_group

    store = StateStore(url, progress_settings.STATE_TTL)
    try:
        saved = await store.save(state, floor)
        if saved is None:
            return None
        message = layer_message(state, *saved)
        await layer.group_send(user_group(state.owner_id), dict(message))
        return saved[0]
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

    It reuses the layer's own key, hash and serializer helpers, so its messages are the
    ones the layer's receive() reads; but it leans on channels-redis internals and blocks
    the task's thread for every round trip.
    """

    def __init__(self, layer: Any, url: str) -> None:
        import redis

        from progress.conf import progress_settings
        from progress.core.scripts import _SAVE_STATE

        self.layer = layer
        self.clients = [redis.Redis.from_url(host["address"]) for host in layer.hosts]
        self.ttl = int(progress_settings.STATE_TTL)
        self.save_script = redis.Redis.from_url(url, decode_responses=True).register_script(
            _SAVE_STATE
        )
        self.group_send_script = [c.register_script(_GROUP_SEND_LUA) for c in self.clients]

    def send(self, state: Any, floor: int) -> int | None:
        from progress.core.keys import state_key
        from progress.protocol.layer import user_group

        head, tail = state.encode()
        args = [head, tail, state.state.value, int(state.is_final), self.ttl, int(floor)]
        saved = self.save_script(keys=[state_key(state.id)], args=args)
        if not saved:
            return None
        message = layer_message(state, int(saved[0]), str(saved[1]))
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
            client = self.clients[index]
            with client.pipeline(transaction=False) as pipe:
                for channel_key in keys:
                    pipe.zremrangebyscore(channel_key, min=0, max=int(now) - int(layer.expiry))
                pipe.execute()
            self.group_send_script[index](
                keys=keys,
                args=[
                    *(messages[k] for k in keys),
                    *(capacities[k] for k in keys),
                    now,
                    layer.expiry,
                ],
            )


class Member:
    """One plain channel in a job's group; reads what reached it straight from Redis."""

    def __init__(self, layer: Any) -> None:
        import redis
        from asgiref.sync import async_to_sync

        self.layer = layer
        self.key = layer.prefix + MEMBER
        self.client = redis.Redis.from_url(layer.hosts[layer.consistent_hash(MEMBER)]["address"])
        self._join = async_to_sync(self._join_closing)

    async def _join_closing(self, group: str) -> None:
        await self.layer.group_add(group, MEMBER)
        await self.layer.close_pools()

    def join(self, group: str) -> None:
        self._join(group)

    def take(self, job_id: str) -> list[int]:
        """The seqs of the job's messages waiting for the member, oldest first; then clears."""
        raw = self.client.zrange(self.key, 0, -1)
        self.client.delete(self.key)
        seqs = []
        for blob in raw:
            message = self.layer.deserialize(blob)
            if message.get("job_id") == job_id:
                seqs.append(int(message["seq"]))
        return seqs


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
    sync_sender = SyncSender(layer, url) if isinstance(layer, RedisChannelLayer) else None
    member = Member(layer) if isinstance(layer, RedisChannelLayer) else None
    warmup = 20
    results: list[PathRun] = []

    def state_at(job: Any, i: int) -> Any:
        state = job.to_state()
        state.state = State.PROGRESS
        state.current, state.total, state.message = i, updates, "crunching"
        state.ts = time.time()
        return state

    def celery_progress(job: Any, i: int) -> float:
        state = state_at(job, i)
        message = layer_message(state, i, state.to_json(i))
        begin = time.perf_counter()
        async_to_sync(closing_group_send)(layer, user_group(job.owner_id), message)
        return time.perf_counter() - begin

    def per_update_loop(job: Any, i: int) -> float:
        begin = time.perf_counter()
        async_to_sync(full_send_new_loop)(layer, url, state_at(job, i), 0)
        return time.perf_counter() - begin

    def long_lived_loop(job: Any, i: int) -> float:
        begin = time.perf_counter()
        future = publisher.publish(state_at(job, i), 0)
        caller = time.perf_counter() - begin
        future.result(10)
        return caller

    def blocking_redis(job: Any, i: int) -> float:
        assert sync_sender is not None
        begin = time.perf_counter()
        sync_sender.send(state_at(job, i), 0)
        return time.perf_counter() - begin

    paths: list[tuple[str, str, Callable[[Any, int], float] | None, str]] = [
        ("a", "(a) async_to_sync(group_send) + close_pools", celery_progress,
         "less work: no seq"),
        ("a+", "(a+) async_to_sync, our whole send", per_update_loop, "same work as (b)"),
        ("b", "(b) Publisher, one long-lived loop", long_lived_loop,
         "caller only hands over"),
        ("c", "(c) blocking redis-py", blocking_redis if sync_sender else None,
         "blocks the caller; channels-redis internals"),
    ]  # fmt: skip
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
        for i in range(1, warmup + 1):
            send(job, i)
        if member is not None:
            member.take(str(job.id))
        cpu0, redis0, begin = own_cpu_seconds(), cpu_seconds(redis_pid), time.perf_counter()
        for i in range(warmup + 1, warmup + updates + 1):
            run.caller_s += send(job, i)
        run.wall_s = time.perf_counter() - begin
        run.cpu_s = own_cpu_seconds() - cpu0
        run.redis_cpu_s = cpu_seconds(redis_pid) - redis0
        run.updates = updates
        if member is not None:
            seqs = member.take(str(job.id))
            run.delivered = len(seqs)
            if seqs != sorted(seqs):
                run.note += "; OUT OF ORDER"
        log(
            f"{label}: {run.per_update_us(run.wall_s):.0f} µs/update, "
            f"CPU {run.per_update_us(run.cpu_s):.0f} µs/update, "
            f"{run.delivered}/{updates} delivered to the member"
        )
    return results


# The report.


def hot_table(runs: dict[str, list[HotRun]], n: int, throttle: float) -> str:
    def ns(key: str) -> float:
        return min(r.ns_per_call for r in runs[key])

    def mid(key: str) -> float:
        return statistics.median(r.ns_per_call for r in runs[key])

    rounds = len(runs["empty"])
    rows = [
        f"| loop of n calls | ns per call, best of {rounds} | median | x baseline | "
        f"states stored (worst round) | bound: s / THROTTLE + 2 | verdict (<= 1,000 ns) |",
        "|---|---:|---:|---:|---:|---:|---|",
        f"| baseline: empty function call | {fmt(ns('empty'), 0)} | {fmt(mid('empty'), 0)} "
        "| 1.0 | - | - | - |",
        f"| baseline: Python generator over range | {fmt(ns('passthrough'), 0)} | "
        f"{fmt(mid('passthrough'), 0)} | {ns('passthrough') / ns('empty'):.1f} | - | - | - |",
    ]
    for key, label, base in (
        ("set_progress", "set_progress(i, n, msg)", "empty"),
        ("track", "for _ in track(range(n))", "passthrough"),
    ):
        worst = max(runs[key], key=lambda r: r.stored / max(r.seconds / throttle + 2, 1))
        bound = worst.seconds / throttle + 2
        verdict = "target met" if ns(key) <= TARGET_NS else "target missed"
        if worst.stored > bound:
            verdict += "; throttle bound exceeded"
        rows.append(
            f"| {label} | {fmt(ns(key), 0)} | {fmt(mid(key), 0)} | "
            f"{ns(key) / ns(base):.1f} (vs {base}) | "
            f"{worst.stored:,} of {n:,} calls | {bound:.1f} | {verdict} |"
        )
    return "\n".join(rows)


def path_table(results: list[PathRun]) -> str:
    base = next((r for r in results if r.key == "b" and r.updates), None)

    def ratio(value: float, of: float) -> str:
        return f"{value / of:.1f}" if of else "n/a"

    rows = [
        "| publish path | µs per update (wall) | x (b) | µs in caller | process CPU µs "
        "per update | x (b) | redis-server CPU µs per update | delivered | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if not r.updates:
            rows.append(f"| {r.label} | - | - | - | - | - | - | - | {r.note} |")
            continue
        wall, cpu = r.per_update_us(r.wall_s), r.per_update_us(r.cpu_s)
        base_wall = base.per_update_us(base.wall_s) if base else 0.0
        base_cpu = base.per_update_us(base.cpu_s) if base else 0.0
        rows.append(
            f"| {r.label} | {fmt(wall, 0)} | {ratio(wall, base_wall)} | "
            f"{fmt(r.per_update_us(r.caller_s), 0)} | {fmt(cpu, 0)} | {ratio(cpu, base_cpu)} | "
            f"{fmt(r.per_update_us(r.redis_cpu_s), 0)} | {r.delivered}/{r.updates} | {r.note} |"
        )
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", "-n", type=int, default=1_000_000, help="hot-loop calls")
    parser.add_argument("--updates", "-U", type=int, default=500, help="updates per path")
    parser.add_argument("--rounds", type=int, default=5, help="hot-loop rounds (default 5)")
    parser.add_argument("--quick", action="store_true", help="n=100,000, U=200, 3 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.updates, args.rounds = 100_000, 200, 3
    if args.calls < 1 or args.updates < 1 or args.rounds < 1:
        parser.error("--calls, --updates and --rounds must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    log(f"machine: {machine()}; n={args.calls:,} calls, U={args.updates} updates per path")
    workdir = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    redis = RedisServer(workdir / "redis")
    try:
        with terminate_as_interrupt():
            start_redis(redis)
            prepare(workdir, redis)
            from channels.layers import get_channel_layer

            from progress.conf import progress_settings

            throttle = float(progress_settings.THROTTLE)
            jobs = Jobs(redis.url)
            log(f"hot path, THROTTLE={throttle} s, {args.rounds} rounds")
            runs = hot_path(args.calls, args.rounds, jobs)
            log(f"publish paths through {type(get_channel_layer()).__name__}")
            paths = publish_paths(args.updates, jobs, redis.url, redis_pid(redis))
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        clean_up(workdir, keep=False, redis=redis)
    print()
    print(f"{machine()}; n={args.calls:,}; THROTTLE={throttle} s; ratios are against "
          "baselines measured in this same run.")  # fmt: skip
    print()
    print(hot_table(runs, args.calls, throttle))
    print()
    print(f"U={args.updates} sequential updates per path after 20 warm-up ones; process CPU "
          "counts every thread.")  # fmt: skip
    print()
    print(path_table(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
