"""Job states, logs, leases, group sums and socket counts in Redis. Any process, publisher loop."""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, NoScriptError, TimeoutError

from progress.conf import progress_settings
from progress.core.keys import (
    EPOCH_KEY,
    SUSPECTS_KEY,
    SWEEP_LOCK_KEY,
    group_key,
    launches_key,
    lease_key,
    log_count_key,
    log_key,
    sockets_key,
    state_key,
)
from progress.core.scripts import (
    ADD_SOCKET,
    ADD_TO_GROUP,
    APPEND_LOG,
    CHECK_LEASES,
    COUNT_LAUNCH,
    SAVE_STATE,
    SEED_STATE,
    SETTLE_GROUP,
    START_GROUP,
    STOP_JOB,
)
from progress.core.sentinel import sentinel_pool
from progress.protocol.states import JobState, Mark

logger = logging.getLogger(__name__)


class GroupSum(NamedTuple):
    """A group job's sum after one of its parts changed, with the group's stored JSON."""

    version: int
    parts: int
    current: float
    total: float | None
    done: int
    failed: int
    revoked: int
    json: str


CLIENT_NAME = "progress-store"


class Latest(NamedTuple):
    """A job's newest stored state: its seq, its contract JSON, whether it is final, and the
    epoch of its numbering."""

    seq: int
    json: str
    final: bool
    epoch: str = ""

    @property
    def mark(self) -> Mark:
        return Mark(self.epoch, self.seq, self.final)


def new_epoch() -> str:
    """A fresh epoch for a numbering that starts (see SAVE_STATE); unique per job in practice."""
    return secrets.token_hex(6)


def _numbered(row: Any, final: bool) -> Latest | None:
    """A state SAVE_STATE just numbered, from its {seq, json, epoch}; None if it refused."""
    return Latest(int(row[0]), str(row[1]), final, str(row[2])) if row else None


def _group_sum(row: Any) -> GroupSum | None:
    if not row or not row[8]:
        return None
    version, parts, current, total, unknown, done, failed, revoked, payload = row
    return GroupSum(
        version=int(version),
        parts=int(parts),
        current=round(float(current), 6),
        total=None if int(unknown) > 0 else round(float(total), 6),
        done=int(done),
        failed=int(failed),
        revoked=int(revoked),
        json=str(payload),
    )


class StateStore:
    """Redis access for job states; every coroutine here runs on the publisher's loop."""

    def __init__(self, url: str, ttl: int) -> None:
        """Runs once per process, when the publisher first needs Redis; PROGRESS'
        REDIS_SENTINELS and REDIS_SENTINEL_MASTER say whether to go through Sentinel."""
        sentinels = progress_settings.REDIS_SENTINELS
        master = progress_settings.REDIS_SENTINEL_MASTER
        options: dict[str, Any] = {
            "max_connections": 64,
            "timeout": 10,
            "decode_responses": True,
            # Pooled connections outlive a Redis restart; without retries (redis-py's
            # default for a pool made here), the first command on each fails.
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
            "retry_on_error": [ConnectionError, TimeoutError],
            # Names its connections in CLIENT LIST, for operators (and tests).
            "client_name": CLIENT_NAME,
        }
        # A blocking pool: many sockets closing at once wait for a connection
        # instead of failing, as redis-py's default pool does past its limit.
        pool: redis.ConnectionPool
        if sentinels:
            if not master:
                raise ValueError("Redis sentinels need the name of their primary (master).")
            pool = sentinel_pool(url, sentinels, master, options)
        else:
            pool = redis.BlockingConnectionPool.from_url(url, **options)
        self.redis = redis.Redis(connection_pool=pool)
        self.ttl = int(ttl)
        self._save = self.redis.register_script(SAVE_STATE)
        self._seed = self.redis.register_script(SEED_STATE)
        self._stop = self.redis.register_script(STOP_JOB)
        self._add_socket = self.redis.register_script(ADD_SOCKET)
        self._check_leases = self.redis.register_script(CHECK_LEASES)
        self._count_launch = self.redis.register_script(COUNT_LAUNCH)
        self._append_log = self.redis.register_script(APPEND_LOG)
        self._start_group = self.redis.register_script(START_GROUP)
        self._add_to_group = self.redis.register_script(ADD_TO_GROUP)
        self._settle_group = self.redis.register_script(SETTLE_GROUP)

    async def save(self, state: JobState, floor: int = 0, version: int = 0) -> Latest | None:
        """Stores a new state; returns it numbered, or None when the job has already ended
        (or, for a group's sum of that `version`, when a newer sum is stored)."""
        return (await self.save_many([(state, floor, version)]))[0]

    async def save_many(self, states: Sequence[tuple[JobState, int, int]]) -> list[Latest | None]:
        """save() for each (state, floor, version) in order, in one round trip."""
        calls = []
        epoch = new_epoch()
        for state, floor, version in states:
            head, tail = state.encode()
            args = [head, tail, state.state.value, int(state.is_final), self.ttl, int(floor)]
            # One epoch for the batch: only keys Redis lacks take it, each a job of its own.
            args += [int(version), epoch]
            calls.append(([state_key(state.id)], args))
        if len(calls) == 1:
            keys, args = calls[0]
            return [_numbered(await self._save(keys=keys, args=args), states[0][0].is_final)]
        rows = await self._pipelined(self._save, SAVE_STATE, calls)
        return [
            _numbered(row, state.is_final)
            for row, (state, _f, _v) in zip(rows, states, strict=True)
        ]

    async def _pipelined(
        self, script: Any, source: str, calls: list[tuple[list[str], list[Any]]]
    ) -> list[Any]:
        """Runs `script` once per (keys, args) call, in one round trip."""
        try:
            return await self._evalsha_all(script.sha, calls)
        except NoScriptError:  # Redis restarted or was flushed; nothing ran.
            await self.redis.script_load(source)
            return await self._evalsha_all(script.sha, calls)

    async def _evalsha_all(self, sha: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        # EVALSHA by hand: a pipeline given the Script object asks Redis whether the
        # script exists before every execute, a second round trip per batch.
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                pipe.evalsha(sha, len(keys), *keys, *args)
            return list(await pipe.execute())

    async def get_many(self, job_ids: Sequence[str]) -> dict[str, Latest]:
        """The latest stored state of each job that Redis still has."""
        if not job_ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(state_key(job_id), "seq", "json", "final", "epoch")
            rows = await pipe.execute()
        return {
            job_id: Latest(int(seq), payload, final is not None, epoch or "")
            for job_id, (seq, payload, final, epoch) in zip(job_ids, rows, strict=True)
            if seq is not None and payload is not None
        }

    async def seed_many(self, rows: Sequence[tuple[JobState, int]]) -> list[Latest]:
        """Puts back each (state read from a job's row, its seq) that Redis lacks, under a new
        epoch; returns what Redis holds of each afterwards, in one round trip."""
        if not rows:
            return []
        calls: list[tuple[list[str], list[Any]]] = []
        for state, seq in rows:
            head, tail = state.encode()
            args = [head, tail, int(seq), int(state.is_final), new_epoch(), self.ttl]
            calls.append(([state_key(state.id)], args))
        found = await self._pipelined(self._seed, SEED_STATE, calls)
        return [
            Latest(int(seq), str(payload), bool(int(final)), str(epoch))
            for seq, payload, epoch, final in found
        ]

    async def stop(self, job_id: str) -> bool:
        """Refuses further progress of a job's running task (a worker's shutdown stops it);
        False when Redis has no state of it, or it has ended."""
        return bool(await self._stop(keys=[state_key(job_id)]))

    async def delete_states(self, job_ids: Sequence[str]) -> int:
        """Forgets the states and logs of purged jobs; returns how many states Redis held."""
        if not job_ids:
            return 0
        logs = [
            key
            for job_id in job_ids
            for key in (log_key(job_id), log_count_key(job_id), group_key(job_id))
        ]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(*(state_key(job_id) for job_id in job_ids))
            pipe.delete(*logs)
            deleted, _logs = await pipe.execute()
        return int(deleted)

    # Group jobs: the sum of their parts.

    async def start_group(self, job_id: str, parts: Sequence[tuple[str, float | None]]) -> None:
        """Starts the sum of a group job's parts, given as (part id, declared units or None)."""
        args: list[Any] = [self.ttl]
        for part_id, units in parts:
            args += [part_id, "" if units is None else repr(float(units))]
        await self._start_group(keys=[group_key(job_id)], args=args)

    async def add_to_groups(self, states: Sequence[JobState]) -> list[GroupSum | None]:
        """Adds each part's new state to its group's sum, in one round trip; None where
        nothing is to be shown (the group ended, or Redis lost its sum)."""
        calls: list[tuple[list[str], list[Any]]] = []
        for state in states:
            assert state.parent is not None
            total = "" if state.total is None else repr(float(state.total))
            args: list[Any] = [state.id, repr(float(state.current)), total, state.state.value]
            args += [int(state.is_final), self.ttl]
            calls.append(([group_key(state.parent), state_key(state.parent)], args))
        rows = await self._pipelined(self._add_to_group, ADD_TO_GROUP, calls)
        return [_group_sum(row) for row in rows]

    async def settle_group(self, job_id: str) -> bool:
        """True for the one caller that first finds every part of the group ended."""
        return bool(await self._settle_group(keys=[group_key(job_id)]))

    # Log lines of running jobs.

    async def append_log(self, job_id: str, lines: Sequence[str], keep: int) -> list[str]:
        """Numbers and keeps a batch of log lines (JSON objects); returns them with their n."""
        if not lines:
            return []
        bodies = [line[1:] for line in lines]
        keys = [log_key(job_id), log_count_key(job_id)]
        return [
            str(line) for line in await self._append_log(keys=keys, args=[keep, self.ttl, *bodies])
        ]

    async def get_log(self, job_id: str) -> list[str]:
        """The job's kept log lines, oldest first, as JSON."""
        return [str(line) for line in await self.redis.lrange(log_key(job_id), 0, -1)]

    async def epoch(self) -> str:
        """A value that stays the same for as long as Redis keeps its data."""
        fresh = uuid.uuid4().hex
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(EPOCH_KEY, fresh, nx=True)
            pipe.get(EPOCH_KEY)
            _created, current = await pipe.execute()
        return str(current or fresh)

    # Leases of running jobs, renewed by the worker that runs them.

    async def renew_leases(self, job_ids: Iterable[str], ttl: float) -> None:
        """Marks the jobs as running in a live worker for `ttl` more seconds."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.set(lease_key(job_id), "1", px=max(1, int(ttl * 1000)))
            await pipe.execute()

    async def drop_lease(self, job_id: str) -> None:
        await self.redis.delete(lease_key(job_id))

    async def lost_jobs(self, job_ids: Sequence[str], gap: float) -> list[str]:
        """The jobs whose lease has been missing at two looks at least `gap` seconds apart."""
        if not job_ids:
            return []
        keys = [lease_key(job_id) for job_id in job_ids] + [SUSPECTS_KEY]
        lost = await self._check_leases(keys=keys, args=[time.time(), gap, *job_ids])
        return [str(job_id) for job_id in lost]

    async def take_sweep_turn(self, seconds: float) -> bool:
        """True for the one process, of all that sweep, whose turn the next `seconds` are."""
        taken = await self.redis.set(SWEEP_LOCK_KEY, "1", nx=True, px=max(1, int(seconds * 1000)))
        return bool(taken)

    async def count_launch(self, user_id: int) -> int:
        """Counts a launch of the user's; returns their launches in this minute so far."""
        window = int(time.time() // 60)
        return int(await self._count_launch(keys=[launches_key(user_id, window)]))

    async def add_socket(
        self, user_id: int, socket_id: str, limit: int, stale_after: float
    ) -> bool:
        """Counts a socket for its user; False when the user already holds `limit` of them."""
        now = time.time()
        added = await self._add_socket(
            keys=[sockets_key(user_id)],
            args=[socket_id, now, now - stale_after, int(limit), int(stale_after) + 1],
        )
        return bool(added)

    async def touch_sockets(
        self, sockets: Sequence[tuple[str, int]], stale_after: float, recount: bool = False
    ) -> None:
        """Renews the heartbeat of (socket id, user id) pairs still counted; with `recount`,
        counts them again even if Redis forgot them."""
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            for socket_id, user_id in sockets:
                pipe.zadd(sockets_key(user_id), {socket_id: now}, xx=not recount)
                pipe.expire(sockets_key(user_id), int(stale_after) + 1)
            await pipe.execute()

    async def remove_sockets(self, sockets: Sequence[tuple[str, int]]) -> None:
        """Uncounts (socket id, user id) pairs, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for socket_id, user_id in sockets:
                pipe.zrem(sockets_key(user_id), socket_id)
            await pipe.execute()
