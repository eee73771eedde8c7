"""The weather-api ASGI app: GET /v1/current behind an X-API-Key check and a per-key rate limit."""

# No `from __future__ import annotations`: FastAPI must resolve the route closures' annotations at runtime.

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Query, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from oauth_tokens.body_limit import BodyLimitMiddleware
from oauth_tokens.shared_state import reachable
from pydantic import BaseModel

from weather_api.keys import ApiKeyRing, fingerprint
from weather_api.rate_limit import SharedRateLimiter
from weather_api.settings import WeatherApiSettings
from weather_api.weather import CurrentWeather, current_weather

logger = logging.getLogger("weather_api")

API_KEY_HEADER = "X-API-Key"


class ErrorBody(BaseModel):
    """Every error this API returns: a stable code and a human-readable message (never the key)."""

    error: str
    message: str


class ApiError(Exception):
    """Raised by the key check; rendered as an ErrorBody with its status and headers."""

    def __init__(self, status_code: int, error: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = ErrorBody(error=error, message=message)
        self.headers = headers or {}


# Every route is a GET: a body of any size is never needed.
MAX_BODY_BYTES = 16 * 1024

_UNAUTHORIZED_HEADERS = {"WWW-Authenticate": f'ApiKey realm="weather-api", header="{API_KEY_HEADER}"'}


def create_app(settings: WeatherApiSettings) -> FastAPI:
    """Build the app; keys and rate limiter live in this closure, not in globals."""
    key_ring = ApiKeyRing(settings.weather_api_keys)
    shared = settings.shared_state("weather-api")  # None: REDIS_URL empty, counts in this process
    limiter = SharedRateLimiter(settings.weather_api_rate_limit, settings.weather_api_rate_window_seconds, shared)
    api_key_scheme = APIKeyHeader(
        name=API_KEY_HEADER,
        scheme_name="ApiKeyAuth",
        description="Your weather-api key (WEATHER_API_KEYS lists the accepted ones).",
        auto_error=False,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        logger.info(
            "weather-api started: a STAND-IN for an external weather SaaS (synthetic data); "
            "%d API key(s) accepted; rate limit %d requests per %gs per key",
            len(key_ring),
            limiter.limit,
            limiter.window_seconds,
        )
        logger.info("Rate limit counted %s", f"in Redis ({shared.prefix})" if shared else "in this process")
        try:
            yield
        finally:
            if shared is not None:
                await shared.aclose()

    app = FastAPI(
        title="weather-api (stand-in)",
        summary="A stand-in for an external weather SaaS that authenticates callers with an API key.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES)

    @app.exception_handler(ApiError)
    async def render_api_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)
        return JSONResponse(error.body.model_dump(), status_code=error.status_code, headers=error.headers)

    async def metered_api_key(api_key: Annotated[str | None, Security(api_key_scheme)], response: Response) -> str:
        """Accept the request if its key is valid and under its rate limit; returns the key's fingerprint."""
        if not api_key:
            raise ApiError(
                401,
                "missing_api_key",
                f"Send an API key in the {API_KEY_HEADER} header.",
                _UNAUTHORIZED_HEADERS,
            )
        if not key_ring.is_valid(api_key):
            logger.warning("Rejected a request with an invalid API key")
            raise ApiError(401, "invalid_api_key", "The API key is not valid.", _UNAUTHORIZED_HEADERS)
        key_id = fingerprint(api_key)
        decision = await limiter.hit(key_id)
        rate_headers = {
            "X-RateLimit-Limit": str(decision.limit),
            "X-RateLimit-Remaining": str(decision.remaining),
            "X-RateLimit-Reset": str(decision.reset_after_seconds),
        }
        if not decision.allowed:
            logger.warning("Rate limit exceeded for %s; retry after %ds", key_id, decision.reset_after_seconds)
            raise ApiError(
                429,
                "rate_limited",
                f"Rate limit of {decision.limit} requests per {limiter.window_seconds:g}s exceeded.",
                {"Retry-After": str(decision.reset_after_seconds), **rate_headers},
            )
        response.headers.update(rate_headers)
        return key_id

    @app.get("/health", summary="Liveness check (no API key needed)", tags=["ops"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/health/ready",
        summary="Readiness: always ready; `degraded` lists Redis while it cannot be reached",
        tags=["ops"],
    )
    async def health_ready() -> JSONResponse:
        # Redis away is not "not ready": every replica shares it, so a 503 here would take them all out of
        # the load balancer at once, while each replica can go on counting for itself (a looser limit).
        degraded = [] if await reachable(shared) else ["redis"]
        return JSONResponse({"status": "ready", "degraded": degraded}, headers={"Cache-Control": "no-store"})

    @app.get(
        "/v1/current",
        summary="Current weather in a city",
        description="Synthetic, deterministic data: every city name gets an answer (no 404), "
        "the same name always the same weather.",
        tags=["weather"],
        response_model=CurrentWeather,
        responses={
            401: {"model": ErrorBody, "description": "Missing or invalid API key"},
            429: {"model": ErrorBody, "description": "Rate limit exceeded; see Retry-After"},
        },
    )
    async def get_current_weather(
        key_id: Annotated[str, Security(metered_api_key)],
        city: Annotated[
            str,
            Query(min_length=1, max_length=100, pattern=r"^\s*[^\W\d_][\w .,'-]*$", description="City name"),
        ],
    ) -> CurrentWeather:
        logger.debug("Weather for %r requested by %s", city, key_id)
        return current_weather(city)

    return app
