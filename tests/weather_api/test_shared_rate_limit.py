"""Two real weather-api processes on one Redis share one per-key limit (60/min is 60 in total, not 120);
with Redis stopped they count per process (degraded, never a 500) and share again once it is back."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest
from devkit.local_servers import LocalServer
from devkit.processes import ServiceProcess, start_service

from tests.support.servers import redis_server

LIMIT = 60


@pytest.fixture(scope="module")
def redis() -> Iterator[LocalServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    return {name: secrets.token_urlsafe(24) for name in ("shared", "outage", "after")}


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, redis: LocalServer, keys: dict[str, str]
) -> Iterator[list[ServiceProcess]]:
    started: list[ServiceProcess] = []
    env = {
        "WEATHER_API_KEYS": ",".join(keys.values()),
        "WEATHER_API_RATE_LIMIT": str(LIMIT),
        "WEATHER_API_RATE_WINDOW_SECONDS": "60",
        "REDIS_URL": redis.url,
    }
    workdirs = [tmp_path_factory.mktemp(f"weather-{index}") for index in range(2)]
    try:
        # Both at once (start-up is mostly importing); each is kept, in order, once it is healthy.
        with ThreadPoolExecutor(max_workers=2) as pool:
            starting = [
                pool.submit(
                    start_service,
                    "weather-api",
                    "weather_api",
                    port_variable="WEATHER_API_PORT",
                    env=env,
                    workdir=workdir,
                    timeout=90.0,
                )
                for workdir in workdirs
            ]
        started.extend(future.result() for future in starting if future.exception() is None)
        for future in starting:
            future.result()  # a start-up failure, once every start has ended
        yield started
    finally:
        for service in started:
            service.stop()


async def _statuses(replicas: list[ServiceProcess], key: str, count: int) -> list[int]:
    async with httpx2.AsyncClient(timeout=5.0) as client:
        responses = [
            await client.get(f"{replicas[i % 2].url}/v1/current", params={"city": "Oslo"}, headers={"X-API-Key": key})
            for i in range(count)
        ]
    return [response.status_code for response in responses]


def test_two_replicas_share_one_limit(replicas: list[ServiceProcess], keys: dict[str, str]) -> None:
    statuses = asyncio.run(_statuses(replicas, keys["shared"], 2 * LIMIT))
    assert statuses.count(200) == LIMIT  # not 2 x LIMIT
    assert statuses.count(429) == LIMIT


def test_a_redis_outage_degrades_to_per_process_and_recovers(
    replicas: list[ServiceProcess], redis: LocalServer, keys: dict[str, str]
) -> None:
    async def readiness() -> list[httpx2.Response]:
        async with httpx2.AsyncClient(timeout=5.0) as client:
            return [await client.get(f"{service.url}/health/ready") for service in replicas]

    assert [response.status_code for response in asyncio.run(readiness())] == [200, 200]
    redis.stop()
    try:
        ready = asyncio.run(readiness())
        statuses = asyncio.run(_statuses(replicas, keys["outage"], 2 * LIMIT + 2))
    finally:
        redis.start()
    returned_at = time.monotonic()
    # Still ready (a 503 on every replica would empty the load balancer), but saying what is degraded.
    assert [response.status_code for response in ready] == [200, 200]
    assert [response.json()["degraded"] for response in ready] == [["redis"], ["redis"]]
    # Degraded: each replica counts for itself (LIMIT each), never a 500.
    assert statuses.count(200) == 2 * LIMIT
    assert statuses.count(429) == 2

    async def until_shared_again() -> list[int]:
        async with httpx2.AsyncClient(timeout=5.0) as client:
            for service in replicas:
                while (await client.get(f"{service.url}/health/ready")).json()["degraded"]:
                    assert time.monotonic() - returned_at < 5, "not ready within 5 s of Redis's return"
                    await asyncio.sleep(0.1)
        return await _statuses(replicas, keys["after"], 2 * LIMIT)

    after = asyncio.run(until_shared_again())
    assert after.count(200) == LIMIT  # shared again
    for service in replicas:
        logs = service.logs()
        assert "redis://" not in logs
        assert logs.count("is unreachable") == 1
        assert " 500 " not in logs


def test_a_bad_redis_url_stops_start_up_naming_the_setting_not_its_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from oauth_tokens.settings import SettingsError, load_settings
    from weather_api.settings import WeatherApiSettings

    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("WEATHER_API_KEYS", secrets.token_urlsafe(24))
    monkeypatch.setenv("REDIS_URL", "https://:hunter2-secret@redis.example:6379/0")
    with pytest.raises(SettingsError, match="REDIS_URL") as refused:
        load_settings(WeatherApiSettings)
    assert "hunter2" not in str(refused.value)
