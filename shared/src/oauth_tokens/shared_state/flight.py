"""Cross-replica single flight for tokens: a short Redis lock plus a shared, encrypted cache of the token.

Used by crm-mcp's client-credentials tokens (pattern 2, key: token endpoint, client, scope, resource) and
its token exchanges (pattern 3b, key: subject-token fingerprint, resource, scope), so N replicas make one
token request per key per token lifetime, not N.

Policy:
- **Lookup first.** A replica missing a token locally reads the shared cache; a hit is used until the
  time the replica that fetched it set (never longer than the token may be used).
- **One request.** On a miss, the replica takes a Redis lock on the key (redis-py's asyncio Lock, a
  token-owned key with a timeout, released only by its owner) for at most `lock_seconds` (the token
  request's deadline and a margin, so a replica that dies holding it delays the others that long at
  most). Waiters read the cache again once they hold the lock, and find the token the holder stored.
  A waiter that cannot get the lock within `lock_seconds` requests a token itself (bounded wait).
- **Secrets at rest.** A token is stored sealed with AES-256-GCM under the service's KeyRing
  (`oauth_tokens.vault`, e.g. CRM_MCP_VAULT_KEYS), bound to its Redis key name, so a Redis dump or a
  value copied to another key opens nowhere. Key names hold SHA-256 digests only, never a token.
  A value no configured key opens (keys rotated away) is a miss.
- **Outage.** Redis unreachable: the caller's in-process single flight alone applies (one request per
  replica), logged once per outage by SharedState; a token request that succeeded is never repeated
  because Redis failed afterwards. Failures of the token request itself are never cached here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from oauth_tokens.shared_state.connection import SharedState, SharedStateUnavailable
from oauth_tokens.vault import KeyRing

__all__ = ["SharedTokens", "TokenRequest"]

logger = logging.getLogger(__name__)

# The request that makes a token: (access token, seconds it may be used from now).
TokenRequest = Callable[[], Awaitable[tuple[str, float]]]


class SharedTokens:
    """Tokens shared by replicas under one lock per key (policy in the module docstring)."""

    def __init__(
        self,
        shared: SharedState,
        ring: KeyRing,
        *,
        lock_seconds: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if lock_seconds <= 0:
            raise ValueError("lock_seconds must be positive")
        self._shared = shared
        self._ring = ring
        self.lock_seconds = lock_seconds
        self._wall_clock = wall_clock
        self.requests = 0  # token requests this instance made (for tests and metrics)

    def _name(self, kind: str, key: Sequence[str | None]) -> str:
        digest = hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()
        return self._shared.key("token", kind, digest)

    async def token(self, kind: str, key: Sequence[str | None], request: TokenRequest) -> tuple[str, float]:
        """The shared token for (`kind`, `key`) and its seconds left, made by `request` on one replica at a time."""
        name = self._name(kind, key)
        try:
            found = await self._get(name)
            if found is not None:
                return found
            lock = self._shared.client.lock(
                f"{name}:lock", timeout=self.lock_seconds, blocking_timeout=self.lock_seconds, sleep=0.05
            )
            acquired = await self._shared.run(lambda _: lock.acquire())
        except SharedStateUnavailable:
            return await self._request(request)
        try:
            found = await self._get(name)
            if found is not None:
                return found
            token, usable = await self._request(request)
            await self._put(name, token, usable)
            return token, usable
        except SharedStateUnavailable:  # Redis went away after the lock: one request here still
            return await self._request(request)
        finally:
            if acquired:
                await self._release(lock)

    async def discard(self, kind: str, key: Sequence[str | None], access_token: str) -> None:
        """Forget the shared token for the key if it is still `access_token` (a resource refused it)."""
        name = self._name(kind, key)
        try:
            found = await self._get(name)
            if found is not None and found[0] == access_token:
                await self._shared.run(lambda client: client.delete(name))
        except SharedStateUnavailable:
            return

    async def _request(self, request: TokenRequest) -> tuple[str, float]:
        self.requests += 1
        return await request()

    async def _get(self, name: str) -> tuple[str, float] | None:
        sealed = await self._shared.run(lambda client: client.get(name))
        if sealed is None:
            return None
        text = sealed if isinstance(sealed, str) else bytes(sealed).decode("ascii", "replace")
        opened = self._ring.open_text(text, (name,))
        if opened is None:
            return None
        try:
            entry = json.loads(opened)
            token, use_until = str(entry["token"]), float(entry["use_until"])
        except (ValueError, KeyError, TypeError):
            return None
        left = use_until - self._wall_clock()
        return (token, left) if left > 0 else None

    async def _put(self, name: str, token: str, usable_seconds: float) -> None:
        if usable_seconds <= 0:
            return
        entry = json.dumps({"token": token, "use_until": self._wall_clock() + usable_seconds})
        sealed = self._ring.seal_text(entry, (name,))
        ttl_ms = max(1, int(usable_seconds * 1000))
        try:
            await self._shared.run(lambda client: client.set(name, sealed.encode("ascii"), px=ttl_ms))
        except SharedStateUnavailable:
            return  # the token is still good for this caller

    async def _release(self, lock: object) -> None:
        from redis.exceptions import LockError  # here: redis-py is imported only where Redis is configured

        try:
            await self._shared.run(lambda _: lock.release())  # type: ignore[attr-defined]
        except (SharedStateUnavailable, LockError):  # expired or Redis gone: its timeout frees it
            logger.debug("A shared token lock was already released or expired")
