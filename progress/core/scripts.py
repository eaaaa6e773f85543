"""The Lua scripts the store runs in Redis, each an atomic step. Any process."""

from __future__ import annotations

# Numbers a job's state and stores it in one step, so that seq grows strictly
# whichever process writes, a PENDING never follows a later state, and nothing
# follows a final state. A key Redis does not have starts a new numbering, under
# the epoch the caller offers (ARGV[8]): a key lost with a Redis restart or a
# flush thus comes back under another epoch, and clients know its seqs restarted.
# `floor` carries a seq already shown elsewhere, so that clients unaware of
# epochs rarely drop the first states of a new one. A group's sum (ARGV[7] > 0,
# its version) is dropped when a newer sum was stored first: parts in several
# workers sum in one order and may be published in another. A job stopped by a
# worker's shutdown (STOP_JOB) takes no more progress from the task it stopped,
# only the RETRY that says so and the next run's STARTED.
SAVE_STATE = """
if redis.call('HEXISTS', KEYS[1], 'final') == 1 then return false end
if redis.call('HEXISTS', KEYS[1], 'stopped') == 1 then
  if ARGV[3] == 'PROGRESS' then return false end
  if ARGV[3] == 'STARTED' then redis.call('HDEL', KEYS[1], 'stopped') end
end
local version = tonumber(ARGV[7] or '0')
if version > 0 then
  if version <= tonumber(redis.call('HGET', KEYS[1], 'version') or '0') then return false end
  redis.call('HSET', KEYS[1], 'version', version)
end
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if ARGV[3] == 'PENDING' and seq > 0 then return false end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then epoch = ARGV[8] end
local floor = tonumber(ARGV[6])
if floor > seq then seq = floor end
seq = seq + 1
local json = ARGV[1] .. seq .. ',"epoch":"' .. epoch .. '"' .. ARGV[2]
redis.call('HSET', KEYS[1], 'seq', seq, 'json', json, 'epoch', epoch)
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'final', '1') end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {seq, json, epoch}
"""


# Puts back a job's state read from its row, when Redis has none (it lost its data):
# under a new epoch (ARGV[5]) and the row's seq, unless a state was stored meanwhile,
# which wins. Returns the stored seq, JSON, epoch and 1 if final, either way. ARGV: the JSON split
# where seq and epoch go, the row's seq, 1 if final, the new epoch, the TTL.
SEED_STATE = """
local held = redis.call('HMGET', KEYS[1], 'seq', 'json', 'epoch', 'final')
if held[1] and held[2] then
  return {tonumber(held[1]), held[2], held[3] or '', held[4] and 1 or 0}
end
local json = ARGV[1] .. ARGV[3] .. ',"epoch":"' .. ARGV[5] .. '"' .. ARGV[2]
redis.call('HSET', KEYS[1], 'seq', ARGV[3], 'json', json, 'epoch', ARGV[5])
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'final', '1') end
redis.call('EXPIRE', KEYS[1], ARGV[6])
return {tonumber(ARGV[3]), json, ARGV[5], tonumber(ARGV[4])}
"""


# Marks an unfinished job as stopped by a worker's shutdown, so that the task still running
# it has its next progress refused (and stops, progress.worker.shutdown); 1 if marked.
STOP_JOB = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'final') == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'stopped', '1')
return 1
"""


# Counts a user's sockets in a sorted set scored by last heartbeat, so sockets
# of a crashed server age out instead of holding the user's quota forever.
ADD_SOCKET = """
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
CHECK_LEASES = """
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
APPEND_LOG = """
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
START_GROUP = """
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
ADD_TO_GROUP = """
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
SETTLE_GROUP = """
local sum = redis.call('HMGET', KEYS[1], 'n', 'done', 'failed', 'revoked')
if not sum[1] then return 0 end
local ended = tonumber(sum[2]) + tonumber(sum[3]) + tonumber(sum[4])
if ended < tonumber(sum[1]) then return 0 end
return redis.call('HSETNX', KEYS[1], 'settled', '1')
"""


# Counts one launch in the user's current minute; returns the count so far.
COUNT_LAUNCH = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], 120) end
return count
"""
