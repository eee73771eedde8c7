"""Fixtures: one real weather-api process on loopback, with random API keys (one per test that spends quota)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import httpx2
import pytest
from devkit.processes import ServiceProcess, start_service

RATE_LIMIT = 5
KEY_NAMES = ("basic", "determinism", "rate", "rate_neighbour", "logging")


@pytest.fixture(scope="module")
def api_keys() -> dict[str, str]:
    return {name: secrets.token_urlsafe(24) for name in KEY_NAMES}


@pytest.fixture(scope="module")
def weather_api(tmp_path_factory: pytest.TempPathFactory, api_keys: dict[str, str]) -> Iterator[ServiceProcess]:
    service = start_service(
        "weather-api",
        "weather_api",
        port_variable="WEATHER_API_PORT",
        env={
            "WEATHER_API_KEYS": ",".join(api_keys.values()),
            "WEATHER_API_RATE_LIMIT": str(RATE_LIMIT),
            "WEATHER_API_RATE_WINDOW_SECONDS": "60",
        },
        workdir=tmp_path_factory.mktemp("weather-api"),
    )
    yield service
    service.stop()


@pytest.fixture
async def client(weather_api: ServiceProcess) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=weather_api.url, timeout=5.0) as client:
        yield client
