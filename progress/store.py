"""Job states and socket counts in Redis; used only on the publisher's event loop."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, NoScriptError, TimeoutError

from .conf import progress_settings
from .events import (
    EPOCH_KEY,
    SUSPECTS_KEY,
    SWEEP_LOCK_KEY,
    JobState,
    group_key,
    launches_key,
    lease_key,
    log_count_key,
    log_key,
    sockets_key,
    state_key,
)

logger = logging.getLogger(__name__)

# Numbers a job's state and stores it in one step, so that seq grows strictly
# whichever process writes, a PENDING never follows a later state, and nothing
# follows a final state. `floor` carries a seq already shown elsewhere, so a
# key lost with a Redis restart cannot restart the numbering below it. A group's
# sum (ARGV[7] > 0, its version) is dropped when a newer sum was stored first:
# parts in several workers sum in one order and may be published in another.
_SAVE_STATE = """
if redis.call('HEXISTS', KEYS[1], 'final') == 1 then return false end
local version = tonumber(ARGV[7] or '0')
if version > 0 then
  if version <= tonumber(redis.call('HGET', KEYS[1], 'version') or '0') then return false end
  redis.call('HSET', KEYS[1], 'version', version)
end
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

# Starts a group job's sum: ARGV is the TTL, then (part id, declared units or "") pairs.
_START_GROUP = """
local n = (#ARGV - 1) / 2
local total, unknown = 0, 0
redis.call('DEL', KEYS[1])
for i = 1, n do
  local units = ARGV[2 * i + 1]
  if units == '' then unknown = unknown + 1 else
    total = total + tonumber(units)
    redis.call('HSET', KEYS[1], 't:' .. ARGV[2 * i], units)
  end
end
redis.call('HSET', KEYS[1], 'n', n, 'current', 0, 'total', total, 'unknown', unknown,
  'done', 0, 'failed', 0, 'revoked', 0, 'version', 0)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return n
"""

# Adds one state of a part to its group's sum, in O(1): the part's change since its last
# state, never a read of the other parts. KEYS: the group's hash, the group job's state.
# ARGV: part id, current, total or "", state, 1 if final, TTL. Returns the sum's version,
# its figures and the group job's stored JSON, or false when there is nothing to show.
_ADD_TO_GROUP = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[1], 'f:' .. id) == 1 then return false end
local current = tonumber(ARGV[2])
local known = redis.call('HGET', KEYS[1], 't:' .. id)
if ARGV[3] ~= '' then
  local total = tonumber(ARGV[3])
  if known then
    redis.call('HINCRBYFLOAT', KEYS[1], 'total', total - tonumber(known))
  else
    redis.call('HINCRBYFLOAT', KEYS[1], 'total', total)
    redis.call('HINCRBY', KEYS[1], 'unknown', -1)
  end
  redis.call('HSET', KEYS[1], 't:' .. id, total)
  known = total
end
-- A part that succeeded has done all its units, whatever it last reported.
if ARGV[4] == 'SUCCESS' and known then current = tonumber(known) end
local before = tonumber(redis.call('HGET', KEYS[1], 'c:' .. id) or '0')
redis.call('HINCRBYFLOAT', KEYS[1], 'current', current - before)
redis.call('HSET', KEYS[1], 'c:' .. id, current)
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], 'f:' .. id, ARGV[4])
  local counter = 'revoked'
  if ARGV[4] == 'SUCCESS' then counter = 'done'
  elseif ARGV[4] == 'FAILURE' then counter = 'failed' end
  redis.call('HINCRBY', KEYS[1], counter, 1)
end
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('EXPIRE', KEYS[1], ARGV[6])
if redis.call('HEXISTS', KEYS[2], 'final') == 1 then return false end
local sum = redis.call('HMGET', KEYS[1], 'n', 'current', 'total', 'unknown', 'done', 'failed',
  'revoked')
return {version, sum[1], sum[2], sum[3], sum[4], sum[5], sum[6], sum[7],
  redis.call('HGET', KEYS[2], 'json') or ''}
"""

# True once, for the first caller that finds every part of the group ended.
_SETTLE_GROUP = """
local sum = redis.call('HMGET', KEYS[1], 'n', 'done', 'failed', 'revoked')
if not sum[1] then return 0 end
local ended = tonumber(sum[2]) + tonumber(sum[3]) + tonumber(sum[4])
if ended < tonumber(sum[1]) then return 0 end
return redis.call('HSETNX', KEYS[1], 'settled', '1')
"""


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


class BlockingSentinelConnectionPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """redis-py's Sentinel pool, which waits for a free connection as the blocking pool does,
    and asks the sentinels for the primary again at least every `recheck` seconds."""

    def __init__(
        self,
        service_name: str,
        sentinel_manager: Sentinel,
        *,
        recheck: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)
        self.recheck = recheck
        self._checked = 0.0

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        """Runs before each command. redis-py asks the sentinels only when it connects, so a
        primary that was frozen or cut off, and came back still a primary in its own eyes
        until the sentinels demote it (some 8 s), would keep our connections and take
        writes the new primary never sees; after a failover none stays longer than this."""
        if self.is_master and time.monotonic() - self._checked >= self.recheck:
            self._checked = time.monotonic()
            try:
                # Disconnects the idle connections when the primary has moved.
                await self.get_master_address()
            except (ConnectionError, TimeoutError) as exc:
                # The pooled connections may still reach the primary; a command that
                # cannot will fail with its own error.
                logger.warning("Could not ask the Redis sentinels for the primary: %r", exc)
        connection = await super().get_connection(*args, **kwargs)
        await self._leave_old_primary(connection)
        return connection

    async def release(self, connection: Any) -> None:
        """Runs when a command is done with its connection: one that was in use when the
        primary moved (waiting on a frozen one, say) goes back to the pool disconnected, so
        no idle connection stays on the old primary until it happens to be picked again."""
        await self._leave_old_primary(connection)
        await super().release(connection)

    async def _leave_old_primary(self, connection: Any) -> None:
        address = (connection.host, connection.port)
        if self.master_address is not None and address != self.master_address:
            # Reconnects to the current primary on its next command.
            await connection.disconnect()


def _sentinel_pool(
    url: str, sentinels: Sequence[tuple[str, int]], master: str, options: dict[str, Any]
) -> redis.ConnectionPool:
    """A pool of connections to whichever server the sentinels name primary of `master`;
    `url` gives only the database number and credentials."""
    parts = urlsplit(url)
    connection: dict[str, Any] = {**options, "db": int(parts.path.strip("/") or 0)}
    for key, value in (("username", parts.username), ("password", parts.password)):
        if value:
            connection[key] = unquote(value)
    manager = Sentinel(
        [(host, int(port)) for host, port in sentinels],
        # Sentinels are asked on every reconnect: a dead one must not hold that up.
        sentinel_kwargs={
            "socket_timeout": 2,
            "socket_connect_timeout": 2,
            **progress_settings.REDIS_SENTINEL_KWARGS,
        },
    )
    return BlockingSentinelConnectionPool(master, manager, **connection)


class StateStore:
    """Redis access for job states; every coroutine here runs on the publisher's loop."""

    def __init__(
        self,
        url: str,
        ttl: int,
        sentinels: Sequence[tuple[str, int]] | None = None,
        master: str | None = None,
    ) -> None:
        """Runs once per process, when the publisher first needs Redis; `sentinels` and
        `master` default to PROGRESS' REDIS_SENTINELS and REDIS_SENTINEL_MASTER."""
        if sentinels is None:
            sentinels = progress_settings.REDIS_SENTINELS
            master = master or progress_settings.REDIS_SENTINEL_MASTER
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
            pool = _sentinel_pool(url, sentinels, master, options)
        else:
            pool = redis.BlockingConnectionPool.from_url(url, **options)
        self.redis = redis.Redis(connection_pool=pool)
        self.ttl = int(ttl)
        self._save = self.redis.register_script(_SAVE_STATE)
        self._add_socket = self.redis.register_script(_ADD_SOCKET)
        self._check_leases = self.redis.register_script(_CHECK_LEASES)
        self._count_launch = self.redis.register_script(_COUNT_LAUNCH)
        self._append_log = self.redis.register_script(_APPEND_LOG)
        self._start_group = self.redis.register_script(_START_GROUP)
        self._add_to_group = self.redis.register_script(_ADD_TO_GROUP)
        self._settle_group = self.redis.register_script(_SETTLE_GROUP)

    async def save(
        self, state: JobState, floor: int = 0, version: int = 0
    ) -> tuple[int, str] | None:
        """Stores a new state; returns (seq, json), or None when the job has already ended
        (or, for a group's sum of that `version`, when a newer sum is stored)."""
        return (await self.save_many([(state, floor, version)]))[0]

    async def save_many(
        self, states: Sequence[tuple[JobState, int, int]]
    ) -> list[tuple[int, str] | None]:
        """save() for each (state, floor, version) in order, in one round trip."""
        calls = []
        for state, floor, version in states:
            head, tail = state.encode()
            args = [head, tail, state.state.value, int(state.is_final), self.ttl, int(floor)]
            args.append(int(version))
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
        try:
            rows = await self._add_pipelined(calls)
        except NoScriptError:
            await self.redis.script_load(_ADD_TO_GROUP)
            rows = await self._add_pipelined(calls)
        return [_group_sum(row) for row in rows]

    async def _add_pipelined(self, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                pipe.evalsha(self._add_to_group.sha, len(keys), *keys, *args)
            return list(await pipe.execute())

    async def settle_group(self, job_id: str) -> bool:
        """True for the one caller that first finds every part of the group ended."""
        return bool(await self._settle_group(keys=[group_key(job_id)]))

    async def delete_group(self, job_id: str) -> None:
        await self.redis.delete(group_key(job_id))

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
