"""Per-key fixed-window rate limits, keyed by key fingerprints: in process, or shared by replicas in Redis.

`FixedWindowRateLimiter` counts in this process (REDIS_URL empty). `SharedRateLimiter` counts in Redis
(`oauth_tokens.shared_state.limits.RedisFixedWindow`), so 60 per minute means 60 in total across every
replica; while Redis cannot be reached it counts in this process instead (degraded: up to N times the
limit on N replicas, never an error), and returns to Redis when it answers again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from oauth_tokens.shared_state import SharedState, SharedStateUnavailable
from oauth_tokens.shared_state.limits import RedisFixedWindow


@dataclass(frozen=True)
class RateDecision:
    """Whether a request may proceed, and the numbers for the X-RateLimit-* / Retry-After headers."""

    allowed: bool
    limit: int
    remaining: int
    reset_after_seconds: int


class FixedWindowRateLimiter:
    """At most `limit` requests per `window_seconds` per bucket; the window starts at a bucket's first hit."""

    def __init__(self, limit: int, window_seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, bucket: str) -> RateDecision:
        """Count one request for `bucket`. Synchronous on purpose: no await, so no race on the counter."""
        now = self._clock()
        started, count = self._windows.get(bucket, (now, 0))
        if now - started >= self.window_seconds:
            started, count = now, 0
        self._prune(now)
        reset_after = max(1, math.ceil(started + self.window_seconds - now))
        if count >= self.limit:
            self._windows[bucket] = (started, count)
            return RateDecision(False, self.limit, 0, reset_after)
        self._windows[bucket] = (started, count + 1)
        return RateDecision(True, self.limit, self.limit - count - 1, reset_after)

    def _prune(self, now: float) -> None:
        """Forget expired windows so memory stays bounded by the number of active keys."""
        expired = [key for key, (started, _) in self._windows.items() if now - started >= self.window_seconds]
        for key in expired:
            del self._windows[key]


class SharedRateLimiter:
    """The same limit counted in Redis when `shared` is given (see the module docstring), else in process."""

    def __init__(self, limit: int, window_seconds: float, shared: SharedState | None) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self.local = FixedWindowRateLimiter(limit, window_seconds)
        self._shared = RedisFixedWindow(shared, "api-key", window_seconds) if shared is not None else None

    async def hit(self, bucket: str) -> RateDecision:
        """Count one request for `bucket`, across replicas while Redis answers."""
        if self._shared is None:
            return self.local.hit(bucket)
        try:
            counted = await self._shared.hit(bucket)
        except SharedStateUnavailable:
            return self.local.hit(bucket)
        allowed = counted.count <= self.limit
        return RateDecision(allowed, self.limit, max(0, self.limit - counted.count), counted.reset_after_seconds)
