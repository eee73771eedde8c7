"""`RedisReplayCache`: the `oauth_tokens.replay_cache.ReplayCache` every replica shares.

Cache policy: one key per identifier, `SET NX PXAT <expiry>`: the first replica to set it wins, every
later use (on any replica) is refused, and Redis forgets it when the assertion expires (forgetting is then
safe: the assertion itself is refused). Identifiers are hashed (bounded keys, none of the caller's bytes
in a key name). Redis's `maxmemory` must not evict these keys (use `noeviction` or `volatile-*` with
care): an evicted identifier could be replayed.

Fails closed: when Redis cannot be reached, `first_use` raises `SharedStateUnavailable` and the caller
answers 503 with Retry-After. Falling back to a per-process cache would let an assertion be replayed
once on every other replica.
"""

from __future__ import annotations

import hashlib
import math

from oauth_tokens.shared_state.connection import SharedState

__all__ = ["RedisReplayCache"]


class RedisReplayCache:
    """Identifiers seen, each until its expiry, in Redis (see the module docstring)."""

    def __init__(self, shared: SharedState, name: str = "replay") -> None:
        self._shared = shared
        self._name = name

    async def first_use(self, key: str, expires_at: float) -> bool:
        """True the first time `key` is seen (on any replica); raises SharedStateUnavailable (fail closed)."""
        name = self._shared.key(self._name, hashlib.sha256(key.encode()).hexdigest())
        expiry_ms = max(1, math.ceil(expires_at * 1000))
        stored = await self._shared.run(lambda client: client.set(name, b"1", nx=True, pxat=expiry_ms))
        return bool(stored)
