"""Request limits shared by the endpoints: a bounded request body and per-address rate limits.

Rate limits are token buckets per client address: `RateLimiter` in this process, `SharedRateLimiter`
in Redis when REDIS_URL is set (`oauth_tokens.shared_state.limits.RedisTokenBucket`: one bucket for every
replica). While Redis cannot be reached the shared limiter counts in this process instead (degraded:
up to N times the limit on N replicas, never an error) and returns to Redis once it answers.
"""

from __future__ import annotations

import math
import time

from fastapi import Request
from oauth_tokens.shared_state import SharedState, SharedStateUnavailable
from oauth_tokens.shared_state.limits import RedisTokenBucket

from auth_server.config_sections import RateLimit
from auth_server.errors import OAuthError

# Every form and JSON body this server accepts is a few hundred bytes to a few KiB (a token exchange
# carries one JWT, a registration up to 10 redirect URIs).
MAX_BODY_BYTES = 16 * 1024


class BodyTooLarge(OAuthError):
    """HTTP 413: rendered as RFC 6749 JSON on /token and /register, as a page by the HTML forms."""

    def __init__(self) -> None:
        super().__init__("invalid_request", "The request body is too large", status_code=413)


def client_address(request: Request) -> str:
    """The peer address (a proxy's, if there is one in front: every client behind it shares its limits)."""
    return request.client.host if request.client else "unknown"


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body; raises BodyTooLarge past `limit` bytes, having read at most one chunk more."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():  # chunked bodies declare no length: count as they arrive
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


class RateLimited(OAuthError):
    """HTTP 429 with Retry-After: JSON on /token and /register, a page on /authorize."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "temporarily_unavailable",
            "Too many requests from this address; retry later",
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


class RateLimiter:
    """A token bucket per client address; `check` raises RateLimited when it is empty."""

    _MAX_ADDRESSES = 10_000

    def __init__(self, limit: RateLimit) -> None:
        self._burst = float(limit.burst)
        self._per_second = limit.per_minute / 60
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens left, when counted)

    def check(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        tokens, counted_at = self._buckets.get(address, (self._burst, now))
        tokens = min(self._burst, tokens + (now - counted_at) * self._per_second)
        if tokens < 1:
            raise RateLimited(math.ceil((1 - tokens) / self._per_second))
        self._buckets[address] = (tokens - 1, now)
        if len(self._buckets) > self._MAX_ADDRESSES:
            self._forget_full(now)

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled (forgetting them changes nothing), then the oldest if still too many."""
        refill_seconds = self._burst / self._per_second
        for address in [key for key, (_, at) in self._buckets.items() if now - at >= refill_seconds]:
            del self._buckets[address]
        while len(self._buckets) > self._MAX_ADDRESSES:
            del self._buckets[next(iter(self._buckets))]


class SharedRateLimiter:
    """`RateLimiter`'s limit, counted in Redis for every replica when `shared` is given (see the module docstring)."""

    def __init__(self, limit: RateLimit, name: str, shared: SharedState | None) -> None:
        self.local = RateLimiter(limit)
        self._shared = (
            RedisTokenBucket(shared, f"rate-{name}", burst=limit.burst, per_minute=limit.per_minute)
            if shared is not None
            else None
        )

    async def check(self, address: str) -> None:
        """Take one request from `address`'s bucket; raises RateLimited when it is empty."""
        if self._shared is None:
            self.local.check(address)
            return
        try:
            wait = await self._shared.take(address)
        except SharedStateUnavailable:
            self.local.check(address)
            return
        if wait is not None:
            raise RateLimited(wait)
