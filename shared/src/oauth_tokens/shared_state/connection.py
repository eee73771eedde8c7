"""The Redis connection behind `REDIS_URL`: settings, key namespacing, and the outage policy.

`SharedState` wraps one redis-py asyncio client (its connection pool) with:

- **Namespacing.** Every key is `<REDIS_KEY_PREFIX>:<kind>:<id>`. The prefix defaults to the service's
  name, or OTEL_SERVICE_NAME when set (so the calendar-auth-server, a second auth_server instance,
  never shares counters or replay entries with the auth-server even on one Redis).
- **Fast failure.** Connect and read time out after `SOCKET_TIMEOUT_SECONDS`; a failed command is retried
  once at once (a pooled connection may be stale after a Redis restart), then `SharedStateUnavailable`.
- **Outage policy.** After a failure, Redis is not asked again for `PROBE_INTERVAL_SECONDS` (so an outage
  costs a request nothing but a flag check), then the next command probes it: recovery within about one
  second of Redis's return. The outage is logged once when it begins (the exception's class, never the
  URL, which carries the password) and once when it ends. What a caller does with
  `SharedStateUnavailable` is its policy: counters and single flight fall back to their in-process
  implementation, replay caches fail closed (503 + Retry-After).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import SecretStr, field_validator

from oauth_tokens.errors import OAuthTokensError, SettingsError
from oauth_tokens.settings import ServiceSettings

if TYPE_CHECKING:  # redis-py is imported when a SharedState is made (REDIS_URL set), not by every service
    import redis.asyncio as redis_asyncio

__all__ = [
    "RETRY_AFTER_SECONDS",
    "SharedState",
    "SharedStateSettings",
    "SharedStateUnavailable",
]

T = TypeVar("T")

logger = logging.getLogger(__name__)

SOCKET_TIMEOUT_SECONDS = 0.5
PROBE_INTERVAL_SECONDS = 1.0
# What a fail-closed caller tells its client (Retry-After, seconds).
RETRY_AFTER_SECONDS = 2

_REDIS_SCHEMES = ("redis", "rediss", "unix")


class SharedStateUnavailable(OAuthTokensError):
    """Redis could not be reached (or is in its probe back-off); retry after `RETRY_AFTER_SECONDS`."""

    def __init__(self) -> None:
        super().__init__("The shared state (Redis) is unavailable; retry later")
        self.retry_after = RETRY_AFTER_SECONDS


class SharedStateSettings(ServiceSettings):
    """Mixin for a service's settings: REDIS_URL (empty: in-process state) and REDIS_KEY_PREFIX."""

    # redis://[:password@]host:port/db, rediss:// (TLS) or unix://; empty: every counter and cache in process.
    redis_url: SecretStr = SecretStr("")
    # Namespace of this instance's keys; empty: OTEL_SERVICE_NAME if set, else the service's own name.
    redis_key_prefix: str = ""

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value().strip()
        if url and urlsplit(url).scheme not in _REDIS_SCHEMES:
            raise ValueError("must be a redis://, rediss:// or unix:// URL (or empty)")
        return SecretStr(url)

    @field_validator("redis_key_prefix")
    @classmethod
    def _prefix_is_plain(cls, value: str) -> str:
        if value and not all(c.isalnum() or c in "-_." for c in value):
            raise ValueError("may contain only letters, digits, '-', '_' and '.'")
        return value

    def shared_state(self, service_name: str) -> SharedState | None:
        """A SharedState for this service when REDIS_URL is set, else None (in-process state)."""
        url = self.redis_url.get_secret_value()
        if not url:
            return None
        return SharedState.from_url(url, self.redis_key_prefix or self.otel_service_name or service_name)


def _is_outage(error: BaseException) -> bool:
    import redis.exceptions

    return isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError | OSError | TimeoutError)


class SharedState:
    """One Redis client with this instance's key prefix and the outage policy of the module docstring."""

    def __init__(
        self, client: redis_asyncio.Redis, prefix: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not prefix:
            raise SettingsError("REDIS_KEY_PREFIX must not be empty")
        self.client = client
        self.prefix = prefix
        self._clock = clock
        self._down_since: float | None = None
        self._next_probe = 0.0

    @classmethod
    def from_url(cls, url: str, prefix: str) -> SharedState:
        """A client for `url` (REDIS_URL) with short timeouts; connects lazily, on the first command."""
        import redis.asyncio as redis_asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        try:
            client = redis_asyncio.Redis.from_url(
                url,
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
                retry=Retry(NoBackoff(), 1),
                health_check_interval=10,
            )
        except ValueError:  # its message may quote the URL
            raise SettingsError("REDIS_URL is not a valid Redis URL") from None
        return cls(client, prefix)

    def __repr__(self) -> str:  # never the URL
        return f"SharedState(prefix={self.prefix!r}, up={self.up})"

    @property
    def up(self) -> bool:
        """False from a failed command until a later one succeeds."""
        return self._down_since is None

    def key(self, kind: str, *parts: str) -> str:
        """`<prefix>:<kind>:<parts...>`: every key this instance uses."""
        return ":".join((self.prefix, kind, *parts))

    def register_script(self, source: str) -> Any:
        """A Lua script (redis-py's Script: EVALSHA, loaded again if Redis forgot it)."""
        return self.client.register_script(source)

    async def run(self, operation: Callable[[redis_asyncio.Redis], Awaitable[T]]) -> T:
        """`operation(client)`'s result; SharedStateUnavailable when Redis cannot be reached (or was just now)."""
        if self._down_since is not None and self._clock() < self._next_probe:
            raise SharedStateUnavailable
        try:
            result = await operation(self.client)
        except Exception as error:
            if not _is_outage(error):
                raise
            self._mark_down(error)
            raise SharedStateUnavailable from None
        if self._down_since is not None:
            logger.warning(
                "Redis (%s) is reachable again after %.1f s; shared state resumed",
                self.prefix,
                self._clock() - self._down_since,
            )
            self._down_since = None
        return result

    def _mark_down(self, error: BaseException) -> None:
        now = self._clock()
        if self._down_since is None:
            self._down_since = now
            logger.warning(
                "Redis (%s) is unreachable (%s): limits and single flight fall back to this process, "
                "replay checks answer 503 until it returns",
                self.prefix,
                type(error).__name__,
            )
        self._next_probe = now + PROBE_INTERVAL_SECONDS

    async def ping(self) -> bool:
        """True if Redis answers now (readiness); never raises for an outage."""
        try:
            await self.run(lambda client: client.ping())
        except SharedStateUnavailable:
            return False
        return True

    async def aclose(self) -> None:
        await self.client.aclose()
