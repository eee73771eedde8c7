"""Settings of tickets-mcp, read from the environment (and `.env`) at start-up."""

from __future__ import annotations

from pathlib import Path

from oauth_tokens.cors import CorsSettings
from oauth_tokens.mcp_sessions import McpSessionSettings
from oauth_tokens.service_database import DatabaseSettings, ServiceDatabase
from oauth_tokens.settings import CommaList, OptionalPort, TrustSettings
from pydantic import Field


class TicketsMcpSettings(TrustSettings, CorsSettings, McpSessionSettings, DatabaseSettings):
    """Each field's name is its environment variable (upper-cased); AUTH_* and CORS_* come from the bases."""

    tickets_mcp_host: str = "127.0.0.1"
    tickets_mcp_port: int = Field(default=8002, ge=1, le=65535)
    # /metrics (Prometheus) on this port of METRICS_HOST; unset: no metrics listener.
    tickets_mcp_metrics_port: OptionalPort = None
    # This MCP server's resource identifier (RFC 8707/9728): tokens must carry it in `aud`.
    tickets_mcp_resource: str = Field(min_length=1)
    # Where tickets.sqlite3 lives when DATABASE_URL is empty.
    tickets_mcp_data_dir: Path = Path("data/tickets-mcp")
    # Host headers accepted besides localhost's (DNS-rebinding protection), e.g. "tickets-mcp:8002".
    tickets_mcp_allowed_hosts: CommaList = ()

    def database(self) -> ServiceDatabase:
        """tickets-mcp's database: DATABASE_URL, else <TICKETS_MCP_DATA_DIR>/tickets.sqlite3."""
        return ServiceDatabase.from_settings(
            self, default_sqlite_file=self.tickets_mcp_data_dir / "tickets.sqlite3", migrations="tickets_mcp:migrations"
        )
