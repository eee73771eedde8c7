"""oauth_tokens.shared_state on a real Redis: counters shared by two clients, replay fails closed, one
token request across "replicas", secrets sealed at rest, prefixes isolated, outage and recovery."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator

import pytest
from devkit.local_servers import LocalServer
from oauth_tokens.errors import SettingsError
from oauth_tokens.shared_state import SharedState, SharedStateSettings, SharedStateUnavailable, reachable
from oauth_tokens.shared_state.cache import SharedCache
from oauth_tokens.shared_state.flight import SharedTokens
from oauth_tokens.shared_state.limits import RedisFailureCounts, RedisFixedWindow, RedisTokenBucket
from oauth_tokens.shared_state.replay import RedisReplayCache
from oauth_tokens.vault import KeyRing, VaultKey

from tests.support.servers import redis_server


@pytest.fixture(scope="module")
def redis() -> Iterator[LocalServer]:
    with redis_server() as server:
        yield server


def _state(server: LocalServer, prefix: str = "test") -> SharedState:
    return SharedState.from_url(server.url, prefix)


def _ring(key_id: str = "k1") -> KeyRing:
    return KeyRing([VaultKey(key_id, os.urandom(32))])


def test_a_fixed_window_counts_across_clients(redis: LocalServer) -> None:
    async def scenario() -> list[int]:
        one, two = _state(redis, "fw"), _state(redis, "fw")
        first, second = RedisFixedWindow(one, "api", 60), RedisFixedWindow(two, "api", 60)
        counts = [(await (first if i % 2 else second).hit("key-a")).count for i in range(6)]
        other = await first.hit("key-b")
        assert other.count == 1
        assert 1 <= other.reset_after_seconds <= 60
        await one.aclose()
        await two.aclose()
        return counts

    assert asyncio.run(scenario()) == [1, 2, 3, 4, 5, 6]


def test_a_token_bucket_is_shared_and_says_how_long_to_wait(redis: LocalServer) -> None:
    async def scenario() -> None:
        one, two = _state(redis, "tb"), _state(redis, "tb")
        buckets = [RedisTokenBucket(state, "login", burst=3, per_minute=6) for state in (one, two)]
        results = [await buckets[i % 2].take("10.0.0.1") for i in range(4)]
        assert results[:3] == [None, None, None]
        assert results[3] is not None
        assert 1 <= results[3] <= 10
        assert await buckets[0].take("10.0.0.2") is None
        await one.aclose()
        await two.aclose()

    asyncio.run(scenario())


def test_failure_counts_grow_shrink_and_are_forgotten(redis: LocalServer) -> None:
    async def scenario() -> None:
        state = _state(redis, "fc")
        counts = RedisFailureCounts(state, "usernames", window_seconds=900)
        assert (await counts.get("bob")).count == 0
        assert [await counts.fail("bob") for _ in range(3)] == [1, 2, 3]
        seen = await counts.get("bob")
        assert seen.count == 3
        assert 899 <= seen.forgotten_after_seconds <= 900
        await counts.succeed("bob")
        assert (await counts.get("bob")).count == 2
        await counts.forget("bob")
        await counts.succeed("bob")  # never below zero
        assert (await counts.get("bob")).count == 0
        await state.aclose()

    asyncio.run(scenario())


def test_prefixes_keep_two_instances_apart(redis: LocalServer) -> None:
    async def scenario() -> None:
        auth, calendar = _state(redis, "auth-server"), _state(redis, "calendar-auth-server")
        assert await RedisReplayCache(auth).first_use("client\x00jti-1", time.time() + 60)
        assert await RedisReplayCache(calendar).first_use("client\x00jti-1", time.time() + 60)
        assert (await RedisFixedWindow(auth, "w", 60).hit("k")).count == 1
        assert (await RedisFixedWindow(calendar, "w", 60).hit("k")).count == 1
        await auth.aclose()
        await calendar.aclose()

    asyncio.run(scenario())


def test_the_replay_cache_is_shared_and_forgets_at_expiry(redis: LocalServer) -> None:
    async def scenario() -> None:
        one, two = _state(redis, "rc"), _state(redis, "rc")
        assert await RedisReplayCache(one).first_use("jti-x", time.time() + 60)
        assert not await RedisReplayCache(two).first_use("jti-x", time.time() + 60)
        assert await RedisReplayCache(one).first_use("jti-short", time.time() + 0.2)
        await asyncio.sleep(0.4)
        assert await RedisReplayCache(two).first_use("jti-short", time.time() + 60)  # expired: forgotten
        await one.aclose()
        await two.aclose()

    asyncio.run(scenario())


def test_the_shared_cache_keeps_bytes_for_their_lifetime(redis: LocalServer) -> None:
    async def scenario() -> None:
        state = _state(redis, "sc")
        cache = SharedCache(state, "cimd")
        assert await cache.get("https://client.example/meta.json") is None
        await cache.put("https://client.example/meta.json", b'{"client_name": "x"}', 60)
        found = await SharedCache(_state(redis, "sc"), "cimd").get("https://client.example/meta.json")
        assert found is not None
        assert found[0] == b'{"client_name": "x"}'
        assert 0 < found[1] <= 60
        await state.aclose()

    asyncio.run(scenario())


def test_one_token_request_across_replicas_and_the_token_is_sealed_at_rest(redis: LocalServer) -> None:
    ring = _ring()
    requests: list[int] = []

    async def request() -> tuple[str, float]:
        requests.append(1)
        await asyncio.sleep(0.2)  # long enough for every caller to find the flight in progress
        return "secret-access-token-123", 60.0

    async def scenario() -> None:
        replicas = [SharedTokens(_state(redis, "fl"), ring, lock_seconds=5) for _ in range(3)]
        results = await asyncio.gather(
            *(
                replicas[i % 3].token("cc", ("https://as/token", "crm-mcp", "tickets:read", None), request)
                for i in range(30)
            )
        )
        assert {token for token, _ in results} == {"secret-access-token-123"}
        assert all(0 < left <= 60 for _, left in results)
        state = _state(redis, "fl")
        keys = [key async for key in state.client.scan_iter("fl:token:*")]
        assert len(keys) == 1
        assert b"secret" not in keys[0]
        stored = await state.client.get(keys[0])
        assert b"secret-access-token" not in stored  # sealed under the KeyRing
        # Another key ring (keys rotated away) cannot open it: a miss, so a new request.
        other = SharedTokens(state, _ring("k9"), lock_seconds=5)
        await other.token("cc", ("https://as/token", "crm-mcp", "tickets:read", None), request)
        assert len(requests) == 2
        await other.discard("cc", ("https://as/token", "crm-mcp", "tickets:read", None), "secret-access-token-123")
        assert [key async for key in state.client.scan_iter("fl:token:*")] == []

    asyncio.run(scenario())
    assert len(requests) == 2


def test_settings_name_the_setting_and_never_show_the_password() -> None:
    settings = SharedStateSettings(redis_url="redis://:hunter2-password@127.0.0.1:1/0", redis_key_prefix="")
    assert "hunter2" not in repr(settings)
    state = settings.shared_state("weather-api")
    assert state is not None
    assert state.prefix == "weather-api"
    assert "hunter2" not in repr(state)
    assert SharedStateSettings(redis_url="").shared_state("weather-api") is None
    with pytest.raises(ValueError, match="redis_url") as refused:
        SharedStateSettings(redis_url="http://:hunter2@host/")
    assert "hunter2" not in str(refused.value)
    with pytest.raises(SettingsError):
        SharedState.from_url("redis://127.0.0.1:1/0", "")


def test_an_outage_is_fast_logged_once_and_recovered(redis: LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    ring = _ring()
    requests: list[int] = []

    async def request() -> tuple[str, float]:
        requests.append(1)
        return "token-during-outage", 60.0

    async def scenario() -> None:
        state = _state(redis, "outage")
        replay = RedisReplayCache(state)
        window = RedisFixedWindow(state, "w", 60)
        tokens = SharedTokens(state, ring, lock_seconds=2)
        assert await reachable(state)
        assert await reachable(None)
        redis.stop()
        try:
            started = time.monotonic()
            for _ in range(20):
                with pytest.raises(SharedStateUnavailable):
                    await replay.first_use("jti", time.time() + 60)  # fails closed
                with pytest.raises(SharedStateUnavailable):
                    await window.hit("k")
            assert time.monotonic() - started < 5  # well within one request deadline (not a timing target)
            assert (await tokens.token("cc", ("a",), request))[0] == "token-during-outage"  # falls back
            assert not await reachable(state)
        finally:
            redis.start()
        deadline = time.monotonic() + 5
        while not await reachable(state):
            assert time.monotonic() < deadline, "not ready within 5 s of Redis's return"
            await asyncio.sleep(0.1)
        assert await replay.first_use("jti-after", time.time() + 60)
        assert (await window.hit("k")).count == 1
        await state.aclose()

    with caplog.at_level(logging.WARNING, logger="oauth_tokens.shared_state.connection"):
        asyncio.run(scenario())
    messages = [record.getMessage() for record in caplog.records]
    assert sum("unreachable" in message for message in messages) == 1, messages
    assert sum("reachable again" in message for message in messages) == 1, messages
    assert not any(redis.url in message or "redis://" in message for message in messages)
    assert requests == [1]
