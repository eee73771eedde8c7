"""Settings of the weather-api stand-in, read from the environment (and `.env`) at start-up."""

from __future__ import annotations

from typing import Annotated

from oauth_tokens.settings import CommaList, OptionalPort, ServiceSettings
from pydantic import Field


class WeatherApiSettings(ServiceSettings):
    """Each field's name is its environment variable (upper-cased)."""

    weather_api_host: str = "127.0.0.1"
    weather_api_port: int = Field(default=8004, ge=1, le=65535)
    # /metrics (Prometheus) on this port of METRICS_HOST; unset: no metrics listener.
    weather_api_metrics_port: OptionalPort = None
    # Secrets: repr=False keeps them out of any repr or log of the settings object.
    weather_api_keys: Annotated[CommaList, Field(min_length=1, repr=False)]
    weather_api_rate_limit: int = Field(default=60, ge=1)
    weather_api_rate_window_seconds: float = Field(default=60.0, gt=0)
