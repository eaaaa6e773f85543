"""What "Redis is unavailable" means, and how long to wait before trying again. Any process.

One definition for every caller: the publisher's retries, the hub's receive,
reads that fall back to the row, limits that must not take launching down.
"""

from __future__ import annotations

from redis.exceptions import RedisError

# What a call to Redis raises while Redis is away (restarting, failing over, out of
# reach): the one tuple callers catch to fall back or retry. TimeoutError is the
# builtin (asyncio's on 3.11 too); redis-py's own errors are RedisErrors.
REDIS_UNAVAILABLE: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)

# Retries against Redis back off from FIRST_RETRY_DELAY, doubling, up to MAX_RETRY_DELAY:
# a restart takes a second or two, and a storm of retries must not slow it down.
FIRST_RETRY_DELAY = 0.1
MAX_RETRY_DELAY = 2.0


def retry_delay(failures: int) -> float:
    """Seconds to wait after the `failures`-th failure in a row (1, 2, ...)."""
    return float(min(MAX_RETRY_DELAY, FIRST_RETRY_DELAY * 2 ** max(0, failures)))
