"""`SharedCache`: bytes by key with a lifetime, shared by replicas (e.g. client metadata documents).

Cache policy: an entry lives until its own lifetime ends (PX), never after; key names are SHA-256 digests
of the caller's keys. Values are not encrypted: store only what is public (a fetched document), never a
secret (tokens go through `flight.SharedTokens`). When Redis cannot be reached, `get` is a miss and `put`
does nothing: the caller's in-process cache and its source still answer.
"""

from __future__ import annotations

import hashlib
from typing import Any

from oauth_tokens.shared_state.connection import SharedState, SharedStateUnavailable

__all__ = ["SharedCache"]


class SharedCache:
    """Public bytes by key in Redis, each for its lifetime (see the module docstring)."""

    def __init__(self, shared: SharedState, name: str) -> None:
        self._shared = shared
        self._name = name

    def _key(self, key: str) -> str:
        return self._shared.key("cache", self._name, hashlib.sha256(key.encode()).hexdigest())

    async def get(self, key: str) -> tuple[bytes, float] | None:
        """The stored value and its seconds left, or None (absent, expired, or Redis unreachable)."""
        name = self._key(key)

        async def read(client: Any) -> list[Any]:
            async with client.pipeline(transaction=True) as pipe:
                pipe.get(name)
                pipe.pttl(name)
                return list(await pipe.execute())

        try:
            value, ttl_ms = await self._shared.run(read)
        except SharedStateUnavailable:
            return None
        if value is None or int(ttl_ms) <= 0:
            return None
        return (value.encode() if isinstance(value, str) else bytes(value)), int(ttl_ms) / 1000

    async def put(self, key: str, value: bytes, lifetime_seconds: float) -> None:
        """Store `value` for `lifetime_seconds` (nothing if not positive or Redis unreachable)."""
        if lifetime_seconds <= 0:
            return
        name = self._key(key)
        try:
            await self._shared.run(lambda client: client.set(name, value, px=max(1, int(lifetime_seconds * 1000))))
        except SharedStateUnavailable:
            return
