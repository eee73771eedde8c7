"""Pattern 1 — API key: crm-mcp calls an external weather API with a key held in its settings.

The key comes from the environment (a secret manager in production) as a `SecretStr`, goes into one
request header, and nowhere else: not into a tool's schema (tools take a city, never a key), not into
a tool result (results are mapped to `Weather`), not into an error (`downstream.error_for_status` says
what failed, not with what), not into a log line (httpx2 does not log headers; we log none).

To use a real provider, change WEATHER_API_URL / WEATHER_API_KEY / WEATHER_API_KEY_HEADER and, if its
JSON differs, `map_weather_response` below: nothing else.
"""

from __future__ import annotations

from typing import Any

import httpx2
from oauth_tokens.telemetry import trace_http
from pydantic import BaseModel, SecretStr

from crm_mcp.downstream import http_client, parse_response, send

SERVICE = "weather-api"


class Weather(BaseModel):
    """Current weather, in the shape crm-mcp's tools return whatever the provider."""

    city: str
    temperature_c: float
    condition: str
    humidity_percent: int
    wind_kph: float


def map_weather_response(payload: dict[str, Any]) -> Weather:
    """Map the provider's JSON to `Weather`: the one function to adapt for another provider."""
    return Weather(
        city=payload["city"],
        temperature_c=payload["temperature_c"],
        condition=payload["condition"],
        humidity_percent=payload["humidity_percent"],
        wind_kph=payload["wind_kph"],
    )


class WeatherApiClient:
    """Calls the weather provider with crm-mcp's own API key (the caller's identity is not involved)."""

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr,
        *,
        key_header: str,
        timeout_seconds: float,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport`: None for sockets; in-process tests pass an ASGI transport (downstream.http_client)."""
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._key_header = key_header
        self._timeout = timeout_seconds
        self._http = trace_http(
            http_client(timeout_seconds, transport=transport), pattern="api_key", credential="api_key"
        )

    async def current_weather(self, city: str) -> Weather:
        """GET {base}/v1/current?city=… with the key in its header; idempotent, so retried once if safe."""
        response = await send(
            SERVICE,
            lambda: self._http.get(
                f"{self._base_url}/v1/current",
                params={"city": city},
                headers={self._key_header: self._api_key.get_secret_value()},
            ),
            idempotent=True,
            deadline_seconds=self._timeout,
        )
        return parse_response(SERVICE, lambda: map_weather_response(response.json()))

    async def aclose(self) -> None:
        await self._http.aclose()
