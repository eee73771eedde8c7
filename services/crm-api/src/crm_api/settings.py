"""Settings of crm-api, read from the environment (and `.env`) at start-up."""

from __future__ import annotations

from pathlib import Path

from oauth_tokens.settings import OptionalPort, TrustSettings
from pydantic import Field


class CrmApiSettings(TrustSettings):
    """Each field's name is its environment variable (upper-cased); AUTH_* come from TrustSettings."""

    crm_api_host: str = "127.0.0.1"
    crm_api_port: int = Field(default=8003, ge=1, le=65535)
    # /metrics (Prometheus) on this port of METRICS_HOST; unset: no metrics listener.
    crm_api_metrics_port: OptionalPort = None
    # This API's identifier: a token is accepted only if its `aud` contains exactly this string.
    crm_api_audience: str = Field(min_length=1)
    crm_api_data_dir: Path = Path("data/crm-api")
