"""Job states and socket counts in Redis; used only on the publisher's event loop."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, NoScriptError, TimeoutError

from .events import (
    EPOCH_KEY,
    SUSPECTS_KEY,
    SWEEP_LOCK_KEY,
    JobState,
    launches_key,
    lease_key,
    log_count_key,
    log_key,
    sockets_key,
    state_key,
)

# Numbers a job's state and stores it in one step, so that seq grows strictly
# whichever process writes, a PENDING never follows a later state, and nothing
# follows a final state. `floor` carries a seq already shown elsewhere, so a
# key lost with a Redis restart cannot restart the numbering below it.
_SAVE_STATE = """
if redis.call('HEXISTS', KEYS[1], 'final') == 1 then return false end
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if ARGV[3] == 'PENDING' and seq > 0 then return false end
local floor = tonumber(ARGV[6])
if floor > seq then seq = floor end
seq = seq + 1
local json = ARGV[1] .. seq .. ARGV[2]
redis.call('HSET', KEYS[1], 'seq', seq, 'json', json)
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'final', '1') end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {seq, json}
"""

# Counts a user's sockets in a sorted set scored by last heartbeat, so sockets
# of a crashed server age out instead of holding the user's quota forever.
_ADD_SOCKET = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local limit = tonumber(ARGV[4])
if limit > 0 and not redis.call('ZSCORE', KEYS[1], ARGV[1])
   and redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


# For each running job: a lease clears its suspicion; a missing one makes it a
# suspect, and a suspect whose lease is still missing `ARGV[2]` seconds later
# is returned as lost. Two looks apart, not one, because a Redis restart drops
# every lease at once and workers need a renewal interval to put them back.
_CHECK_LEASES = """
local lost = {}
local now = tonumber(ARGV[1])
for i, job in ipairs(ARGV) do
  if i > 2 then
    if redis.call('EXISTS', KEYS[i - 2]) == 1 then
      redis.call('HDEL', KEYS[#KEYS], job)
    else
      local since = redis.call('HGET', KEYS[#KEYS], job)
      if not since then
        redis.call('HSET', KEYS[#KEYS], job, ARGV[1])
      elseif now - tonumber(since) >= tonumber(ARGV[2]) then
        redis.call('HDEL', KEYS[#KEYS], job)
        table.insert(lost, job)
      end
    end
  end
end
return lost
"""

# Appends a batch of a job's log lines: numbers them (n), keeps the newest ARGV[1],
# and returns them encoded. Each ARGV line is its JSON object without the leading
# "{", so that n can be put first without decoding it.
_APPEND_LOG = """
local count = #ARGV - 2
local last = redis.call('INCRBY', KEYS[2], count)
local lines = {}
for i = 1, count do
  local line = '{"n":' .. (last - count + i) .. ',' .. ARGV[i + 2]
  lines[i] = line
  redis.call('RPUSH', KEYS[1], line)
end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return lines
"""

# Counts one launch in the user's current minute; returns the count so far.
_COUNT_LAUNCH = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], 120) end
return count
"""


CLIENT_NAME = "progress-store"


class Latest(NamedTuple):
    """A job's newest stored state: its seq, its contract JSON, and whether it is final."""

    seq: int
    json: str
    final: bool


def _numbered(row: Any) -> tuple[int, str] | None:
    return (int(row[0]), str(row[1])) if row else None


class StateStore:
    """Redis access for job states; every coroutine here runs on the publisher's loop."""

    def __init__(self, url: str, ttl: int) -> None:
        # A blocking pool: many sockets closing at once wait for a connection
        # instead of failing, as redis-py's default pool does past its limit.
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=64,
            timeout=10,
            decode_responses=True,
            # Pooled connections outlive a Redis restart; without retries (redis-py's
            # default for a pool made here), the first command on each fails.
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
            retry_on_error=[ConnectionError, TimeoutError],
            # Names its connections in CLIENT LIST, for operators (and tests).
            client_name=CLIENT_NAME,
        )
        self.redis = redis.Redis(connection_pool=pool)
        self.ttl = int(ttl)
        self._save = self.redis.register_script(_SAVE_STATE)
        self._add_socket = self.redis.register_script(_ADD_SOCKET)
        self._check_leases = self.redis.register_script(_CHECK_LEASES)
        self._count_launch = self.redis.register_script(_COUNT_LAUNCH)
        self._append_log = self.redis.register_script(_APPEND_LOG)

    async def save(self, state: JobState, floor: int = 0) -> tuple[int, str] | None:
        """Stores a new state; returns (seq, json), or None when the job has already ended."""
        return (await self.save_many([(state, floor)]))[0]

    async def save_many(
        self, states: Sequence[tuple[JobState, int]]
    ) -> list[tuple[int, str] | None]:
        """save() for each (state, floor) in order, in one round trip."""
        calls = []
        for state, floor in states:
            head, tail = state.encode()
            args = [head, tail, state.state.value, int(state.is_final), self.ttl, int(floor)]
            calls.append(([state_key(state.id)], args))
        if len(calls) == 1:
            keys, args = calls[0]
            return [_numbered(await self._save(keys=keys, args=args))]
        try:
            rows = await self._save_pipelined(calls)
        except NoScriptError:  # Redis restarted or was flushed; nothing ran.
            await self.redis.script_load(_SAVE_STATE)
            rows = await self._save_pipelined(calls)
        return [_numbered(row) for row in rows]

    async def _save_pipelined(self, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        # EVALSHA by hand: a pipeline given the Script object asks Redis whether the
        # script exists before every execute, a second round trip per batch.
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                pipe.evalsha(self._save.sha, len(keys), *keys, *args)
            return list(await pipe.execute())

    async def get_many(self, job_ids: Sequence[str]) -> dict[str, Latest]:
        """The latest stored state of each job that Redis still has."""
        if not job_ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(state_key(job_id), "seq", "json", "final")
            rows = await pipe.execute()
        return {
            job_id: Latest(int(seq), payload, final is not None)
            for job_id, (seq, payload, final) in zip(job_ids, rows, strict=True)
            if seq is not None and payload is not None
        }

    async def delete_states(self, job_ids: Sequence[str]) -> int:
        """Forgets the states and logs of purged jobs; returns how many states Redis held."""
        if not job_ids:
            return 0
        logs = [key for job_id in job_ids for key in (log_key(job_id), log_count_key(job_id))]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(*(state_key(job_id) for job_id in job_ids))
            pipe.delete(*logs)
            deleted, _logs = await pipe.execute()
        return int(deleted)

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
