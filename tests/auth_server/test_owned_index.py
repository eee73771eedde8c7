"""oauth_tokens.shared_state.quotas.RedisOwnedIndex on a real Redis applies auth_server.quotas.OwnedTable's
policy exactly: the same random sequence of puts, updates, pops and clock steps evicts the same entries,
and an index shared by two clients is one bound, not two."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from auth_server.quotas import OwnedTable, TableFull
from oauth_tokens.shared_state import SharedState
from oauth_tokens.shared_state.quotas import OwnedIndexFull, RedisOwnedIndex

from scripts.local_servers import LocalServer
from tests.support.servers import redis_server


@pytest.fixture(scope="module")
def redis() -> Iterator[LocalServer]:
    with redis_server() as server:
        yield server


@dataclass
class Entry:
    key: str
    rank: int | None
    expires_at: float


@pytest.mark.parametrize("seed", range(6))
def test_the_index_evicts_exactly_what_owned_table_evicts(redis: LocalServer, seed: int) -> None:
    chooser = random.Random(seed)
    table: OwnedTable[str, Entry] = OwnedTable(
        max_entries=12,
        max_per_owner=4,
        rank=lambda entry: entry.rank,
        expired=lambda entry, now: entry.expires_at <= now,
    )

    async def scenario() -> None:
        state = SharedState.from_url(redis.url, f"parity-{seed}")
        index = RedisOwnedIndex(state, "table", max_entries=12, max_per_owner=4)
        now, held, evictions = 1000.0, 0, 0
        for step in range(300):
            action = chooser.random()
            now += chooser.choice([0, 0, 0.5, 3])
            if action < 0.7:
                key = f"k{step}"
                owner = chooser.choice(["10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"])
                entry = Entry(key, chooser.choice([0, 0, 1, 2, None]), chooser.choice([now + 5, now + 60, math.inf]))
                try:
                    expected = sorted(value.key for value in table.put(key, entry, owner, now))
                    expected_full = False
                except TableFull:
                    expected, expected_full = [], True
                try:
                    evicted = await index.put(key, owner, entry.rank, entry.expires_at, now)
                    full = False
                except OwnedIndexFull:
                    evicted, full = [], True
                assert full == expected_full, step
                assert sorted(evicted) == expected, step
                evictions += len(evicted)
                held += 1
            elif action < 0.85 and held:
                key = f"k{chooser.randrange(step)}"
                assert (table.pop(key) is not None) == await index.pop(key), step
            else:
                key = f"k{chooser.randrange(max(step, 1))}"
                in_table = table.get(key, now) is not None
                assert in_table == await index.holds(key, now), step
        for step in range(300):
            assert (table.get(f"k{step}", now) is not None) == await index.holds(f"k{step}", now), step
        assert evictions > 10  # the sequence did exercise the policy
        await state.aclose()

    asyncio.run(scenario())


def test_two_clients_share_one_bound(redis: LocalServer) -> None:
    async def scenario() -> list[str]:
        one, two = SharedState.from_url(redis.url, "shared-bound"), SharedState.from_url(redis.url, "shared-bound")
        indexes = [RedisOwnedIndex(state, "pending", max_entries=100, max_per_owner=3) for state in (one, two)]
        evicted: list[str] = []
        for number in range(5):
            evicted += await indexes[number % 2].put(f"sign-in-{number}", "10.0.0.9", 0, math.inf, 1000.0 + number)
        assert await indexes[0].owned_by("10.0.0.9") == 3
        await one.aclose()
        await two.aclose()
        return evicted

    assert asyncio.run(scenario()) == ["sign-in-0", "sign-in-1"]  # the owner's oldest, whichever replica
