"""weather-api over real HTTP: the API-key check, the per-key rate limit, and what reaches the log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from devkit.processes import ServiceProcess
from oauth_tokens.errors import SettingsError
from oauth_tokens.settings import load_settings
from weather_api.settings import WeatherApiSettings

from tests.weather_api.conftest import RATE_LIMIT

pytestmark = pytest.mark.anyio


async def test_health_needs_no_key(client: httpx2.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_valid_key_gets_current_weather(client: httpx2.AsyncClient, api_keys: dict[str, str]) -> None:
    response = await client.get("/v1/current", params={"city": "Berlin"}, headers={"X-API-Key": api_keys["basic"]})
    assert response.status_code == 200
    body = response.json()
    assert body["city"] == "Berlin"
    assert isinstance(body["temperature_c"], float)
    assert body["condition"]
    assert 0 <= body["humidity_percent"] <= 100
    assert response.headers["X-RateLimit-Limit"] == str(RATE_LIMIT)


async def test_weather_is_deterministic_for_any_city(client: httpx2.AsyncClient, api_keys: dict[str, str]) -> None:
    headers = {"X-API-Key": api_keys["determinism"]}
    first = await client.get("/v1/current", params={"city": "Reykjavík"}, headers=headers)
    again = await client.get("/v1/current", params={"city": "  reykjavík "}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert {**first.json(), "city": None} == {**again.json(), "city": None}


async def test_missing_key_is_401_json(client: httpx2.AsyncClient) -> None:
    response = await client.get("/v1/current", params={"city": "Paris"})
    assert response.status_code == 401
    assert response.json()["error"] == "missing_api_key"
    assert "X-API-Key" in response.headers["WWW-Authenticate"]


async def test_wrong_key_is_401_json(client: httpx2.AsyncClient, api_keys: dict[str, str]) -> None:
    # Same length and prefix as a real key: only a full, exact match may pass.
    near_miss = api_keys["basic"][:-1] + ("A" if api_keys["basic"][-1] != "A" else "B")
    response = await client.get("/v1/current", params={"city": "Paris"}, headers={"X-API-Key": near_miss})
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_api_key", "message": "The API key is not valid."}


async def test_rate_limit_is_per_key_with_retry_after(client: httpx2.AsyncClient, api_keys: dict[str, str]) -> None:
    headers = {"X-API-Key": api_keys["rate"]}
    for _ in range(RATE_LIMIT):
        assert (await client.get("/v1/current", params={"city": "Tokyo"}, headers=headers)).status_code == 200

    limited = await client.get("/v1/current", params={"city": "Tokyo"}, headers=headers)
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60

    neighbour = {"X-API-Key": api_keys["rate_neighbour"]}
    assert (await client.get("/v1/current", params={"city": "Tokyo"}, headers=neighbour)).status_code == 200


async def test_no_key_ever_reaches_the_log(
    client: httpx2.AsyncClient, api_keys: dict[str, str], weather_api: ServiceProcess
) -> None:
    headers = {"X-API-Key": api_keys["logging"]}
    for _ in range(RATE_LIMIT + 1):  # the last one is rate-limited, which logs the key's fingerprint
        await client.get("/v1/current", params={"city": "Madrid"}, headers=headers)
    await client.get("/v1/current", params={"city": "Madrid"}, headers={"X-API-Key": "wrong-" + api_keys["logging"]})

    log = weather_api.logs()
    assert "Rate limit exceeded for key_" in log
    assert "Rejected a request with an invalid API key" in log
    assert "STAND-IN for an external weather SaaS" in log
    for key in api_keys.values():
        assert key not in log


async def test_openapi_declares_the_api_key_scheme(client: httpx2.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "Your weather-api key (WEATHER_API_KEYS lists the accepted ones).",
    }
    assert spec["paths"]["/v1/current"]["get"]["security"] == [{"ApiKeyAuth": []}]


def test_start_up_refuses_missing_keys(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEATHER_API_")}
    result = subprocess.run(
        [sys.executable, "-m", "weather_api"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert result.stderr.strip() == "weather-api: Missing required setting WEATHER_API_KEYS"


def test_invalid_setting_is_named_without_its_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("WEATHER_API_KEYS", "secret-key-value")
    monkeypatch.setenv("WEATHER_API_RATE_LIMIT", "not-a-number-1234")
    with pytest.raises(SettingsError) as error:
        load_settings(WeatherApiSettings)
    assert "Invalid setting WEATHER_API_RATE_LIMIT" in str(error.value)
    assert "not-a-number-1234" not in str(error.value)
    assert "secret-key-value" not in str(error.value)
