"""Settings of crm-api, read from the environment (and `.env`) at start-up."""

from __future__ import annotations

from pathlib import Path

from oauth_tokens.service_database import DatabaseSettings, ServiceDatabase
from oauth_tokens.settings import OptionalPort, TrustSettings
from pydantic import Field


class CrmApiSettings(TrustSettings, DatabaseSettings):
    """Each field's name is its environment variable (upper-cased); AUTH_* come from TrustSettings."""

    crm_api_host: str = "127.0.0.1"
    crm_api_port: int = Field(default=8003, ge=1, le=65535)
    # /metrics (Prometheus) on this port of METRICS_HOST; unset: no metrics listener.
    crm_api_metrics_port: OptionalPort = None
    # This API's identifier: a token is accepted only if its `aud` contains exactly this string.
    crm_api_audience: str = Field(min_length=1)
    # Where crm.sqlite3 lives when DATABASE_URL is empty.
    crm_api_data_dir: Path = Path("data/crm-api")

    def database(self) -> ServiceDatabase:
        """crm-api's database: DATABASE_URL, else <CRM_API_DATA_DIR>/crm.sqlite3; migrations in crm_api."""
        return ServiceDatabase.from_settings(
            self, default_sqlite_file=self.crm_api_data_dir / "crm.sqlite3", migrations="crm_api:migrations"
        )
