"""Settings of the weather-api stand-in, read from the environment (and `.env`) at start-up."""

from __future__ import annotations

from typing import Annotated

from oauth_tokens.settings import CommaList, OptionalPort
from oauth_tokens.shared_state import SharedStateSettings
from pydantic import Field


class WeatherApiSettings(SharedStateSettings):
    """Each field's name is its environment variable (upper-cased).

    REDIS_URL (SharedStateSettings): set it to count the per-key rate limit across replicas (keys under
    REDIS_KEY_PREFIX, default `weather-api`); empty: each process counts for itself.
    """

    weather_api_host: str = "127.0.0.1"
    weather_api_port: int = Field(default=8004, ge=1, le=65535)
    # /metrics (Prometheus) on this port of METRICS_HOST; unset: no metrics listener.
    weather_api_metrics_port: OptionalPort = None
    # Secrets: repr=False keeps them out of any repr or log of the settings object.
    weather_api_keys: Annotated[CommaList, Field(min_length=1, repr=False)]
    weather_api_rate_limit: int = Field(default=60, ge=1)
    weather_api_rate_window_seconds: float = Field(default=60.0, gt=0)
