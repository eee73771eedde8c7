"""oauth_tokens.replay_cache: each identifier used once until it expires; full means refused, never evicted."""

from __future__ import annotations

import asyncio

import pytest
from devkit.clock import ManualClock
from oauth_tokens.replay_cache import InMemoryReplayCache, ReplayCacheFull


def test_replay_cache_remembers_until_expiry_and_fails_closed_when_full() -> None:
    clock = ManualClock(1000.0)
    cache = InMemoryReplayCache(max_entries=2, clock=clock)

    async def scenario() -> None:
        assert await cache.first_use("a", 1010)
        assert not await cache.first_use("a", 1010)
        assert await cache.first_use("b", 1020)
        with pytest.raises(ReplayCacheFull):
            await cache.first_use("c", 1030)  # never evicts an unexpired identifier
        clock.now = 1011.0
        assert await cache.first_use("c", 1030)  # "a" expired: its place is free
        assert not await cache.first_use("b", 1020)
        assert len(cache) == 2

    asyncio.run(scenario())
