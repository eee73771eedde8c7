"""weather-api takes no request bodies: one over 16 KiB is refused with 413 before routing reads it."""

from __future__ import annotations

import httpx2
import pytest

pytestmark = pytest.mark.anyio


async def test_an_oversized_body_is_a_413(client: httpx2.AsyncClient) -> None:
    response = await client.request("GET", "/v1/current", params={"city": "Berlin"}, content=b" " * (16 * 1024 + 1))
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"


async def test_a_small_body_is_ignored_as_before(client: httpx2.AsyncClient, api_keys: dict[str, str]) -> None:
    key = next(iter(api_keys.values()))
    response = await client.request(
        "GET", "/v1/current", params={"city": "Berlin"}, content=b"{}", headers={"X-API-Key": key}
    )
    assert response.status_code == 200
