"""Counters every replica shares: fixed windows, token buckets and failure counts, each one atomic in Redis.

Each is one Lua script (redis-py's `register_script`: EVALSHA, reloaded if Redis forgot it), so a
read-modify-write never races between replicas. Time comes from Redis (`TIME`) or from key expiry, never
from the replicas' clocks. Keys expire with their window, so Redis holds only active buckets.

These are the shared halves; each service keeps its in-process implementation behind the same calls
and uses it when REDIS_URL is empty or while Redis is unreachable (`SharedStateUnavailable`): during an
outage every replica counts for itself, so N replicas allow up to N times a limit until Redis returns.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from oauth_tokens.shared_state.connection import SharedState

__all__ = ["FailureCount", "RedisFailureCounts", "RedisFixedWindow", "RedisTokenBucket", "WindowCount"]

_FIXED_WINDOW = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""

# Tokens refill at ARGV[2] per millisecond up to ARGV[1]; returns {1, 0} (taken) or {0, ms to wait}.
_BUCKET_SCRIPT = """
local burst = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * per_ms)
if tokens < 1 then
  return {0, math.ceil((1 - tokens) / per_ms)}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / per_ms))
return {1, 0}
"""

# A failure: count one more and keep the count for a whole window after this (the latest) failure.
_FAILURE = """
local count = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return count
"""

# A success: one failure fewer, never below zero, the expiry kept.
_DECREMENT = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then
  redis.call('DECR', KEYS[1])
end
return count
"""


def _bucket_id(bucket: str) -> str:
    """Bucket names (addresses, usernames, key fingerprints) hashed: bounded keys, nothing to inject."""
    return hashlib.sha256(bucket.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class WindowCount:
    """Requests counted in the current window (this one included) and when the window ends."""

    count: int
    reset_after_seconds: int


class RedisFixedWindow:
    """At most so many hits per `window_seconds` per bucket, counted across replicas (INCR + PEXPIRE)."""

    def __init__(self, shared: SharedState, name: str, window_seconds: float) -> None:
        self._shared = shared
        self._name = name
        self._window_ms = max(1, math.ceil(window_seconds * 1000))
        self._script = shared.register_script(_FIXED_WINDOW)

    async def hit(self, bucket: str) -> WindowCount:
        """Count one hit for `bucket`. Raises SharedStateUnavailable."""
        key = self._shared.key("window", self._name, _bucket_id(bucket))
        count, ttl_ms = await self._shared.run(lambda _: self._script(keys=[key], args=[self._window_ms]))
        return WindowCount(int(count), max(1, math.ceil(int(ttl_ms) / 1000)))


class RedisTokenBucket:
    """A token bucket per bucket name (`burst` deep, `per_minute` refill) shared by replicas."""

    def __init__(self, shared: SharedState, name: str, *, burst: int, per_minute: float) -> None:
        if burst < 1 or per_minute <= 0:
            raise ValueError("burst must be at least 1 and per_minute positive")
        self._shared = shared
        self._name = name
        self._args = [burst, repr(per_minute / 60_000)]
        self._script = shared.register_script(_BUCKET_SCRIPT)

    async def take(self, bucket: str) -> int | None:
        """None if a token was taken; else the seconds until one is back. Raises SharedStateUnavailable."""
        key = self._shared.key("bucket", self._name, _bucket_id(bucket))
        taken, wait_ms = await self._shared.run(lambda _: self._script(keys=[key], args=self._args))
        return None if int(taken) else max(1, math.ceil(int(wait_ms) / 1000))


@dataclass(frozen=True)
class FailureCount:
    """Failures counted for a name, and the seconds until they are forgotten (0: none)."""

    count: int
    forgotten_after_seconds: int


class RedisFailureCounts:
    """Failure counts per name, each forgotten `window_seconds` after its latest failure (login lockouts)."""

    def __init__(self, shared: SharedState, name: str, window_seconds: float) -> None:
        self._shared = shared
        self._name = name
        self._window_ms = max(1, math.ceil(window_seconds * 1000))
        self._failure = shared.register_script(_FAILURE)
        self._decrement = shared.register_script(_DECREMENT)

    def _key(self, name: str) -> str:
        return self._shared.key("failures", self._name, _bucket_id(name))

    async def get(self, name: str) -> FailureCount:
        """The current count of `name`. Raises SharedStateUnavailable."""
        key = self._key(name)

        async def read(client: object) -> tuple[object, object]:
            async with self._shared.client.pipeline(transaction=True) as pipe:
                pipe.get(key)
                pipe.pttl(key)
                value, ttl_ms = await pipe.execute()
            return value, ttl_ms

        value, ttl_ms = await self._shared.run(read)
        if value is None:
            return FailureCount(0, 0)
        return FailureCount(int(value), max(1, math.ceil(int(ttl_ms) / 1000)))  # type: ignore[call-overload]

    async def fail(self, name: str) -> int:
        """Count one failure for `name`; its count now. Raises SharedStateUnavailable."""
        key = self._key(name)
        return int(await self._shared.run(lambda _: self._failure(keys=[key], args=[self._window_ms])))

    async def succeed(self, name: str) -> None:
        """One failure fewer for `name` (not below zero). Raises SharedStateUnavailable."""
        key = self._key(name)
        await self._shared.run(lambda _: self._decrement(keys=[key]))

    async def forget(self, name: str) -> None:
        """Forget every failure of `name`. Raises SharedStateUnavailable."""
        key = self._key(name)
        await self._shared.run(lambda client: client.delete(key))
