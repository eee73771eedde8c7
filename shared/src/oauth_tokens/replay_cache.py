"""Single use of a signed object's `jti`: a replay cache behind a small async interface, for the
auth-server's client assertions (RFC 7523 §3 item 7) and ID-JAGs, and for DPoP proofs (RFC 9449 §11.1).

`InMemoryReplayCache` serves one process. Cache policy: an identifier is remembered until its assertion
expires (then forgetting it is safe: the assertion itself is refused), at most `max_entries` at once.
When full of unexpired identifiers, a new one is refused (fail closed): evicting one early would let its
assertion be replayed. Replicas need a shared implementation of `ReplayCache` (e.g. Redis SET NX EX).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from typing import Protocol


class ReplayCacheFull(Exception):
    """Too many unexpired identifiers are remembered to take a new one safely."""


class ReplayCache(Protocol):
    async def first_use(self, key: str, expires_at: float) -> bool:
        """True the first time `key` is seen before `expires_at` (Unix time), False on every later use.

        Raises ReplayCacheFull when the key cannot be remembered."""
        ...


class InMemoryReplayCache:
    """Identifiers seen, each until its expiry (see the module docstring for the bound)."""

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.time) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._by_expiry: list[tuple[float, str]] = []  # a heap, to forget the expired in order

    def __len__(self) -> int:
        return len(self._expiry)

    async def first_use(self, key: str, expires_at: float) -> bool:
        now = self._clock()
        while self._by_expiry and self._by_expiry[0][0] <= now:
            _, expired = heapq.heappop(self._by_expiry)
            if self._expiry.get(expired, now + 1) <= now:
                del self._expiry[expired]
        if key in self._expiry:
            return False
        if len(self._expiry) >= self._max_entries:
            raise ReplayCacheFull
        self._expiry[key] = expires_at
        heapq.heappush(self._by_expiry, (expires_at, key))
        return True
