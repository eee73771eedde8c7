"""crm-mcp's settings: where its downstreams are and the credentials of patterns 1 and 2."""

from __future__ import annotations

from oauth_tokens.settings import CommaList, OptionalPort, TrustSettings
from pydantic import SecretStr


class Settings(TrustSettings):
    """Every field is the environment variable of the same name, upper-cased (see .env.example)."""

    crm_mcp_host: str = "127.0.0.1"
    crm_mcp_port: int = 8001
    # /metrics (Prometheus) on this port of METRICS_HOST; unset: no metrics listener.
    crm_mcp_metrics_port: OptionalPort = None
    # This server's RFC 8707 resource identifier: the audience user tokens must carry.
    crm_mcp_resource: str
    # Host headers accepted besides localhost (DNS-rebinding protection), e.g. crm-mcp:8001 in compose.
    crm_mcp_allowed_hosts: CommaList = ()
    # Timeout of every downstream call, seconds.
    crm_mcp_downstream_timeout_seconds: float = 10.0

    # Pattern 1 — API key.
    weather_api_url: str
    weather_api_key: SecretStr
    weather_api_key_header: str = "X-API-Key"

    # Pattern 2 — client credentials.
    # Empty: <AUTH_ISSUER>/token, the local auth server's token endpoint.
    auth_token_url: str = ""
    crm_mcp_client_id: str
    crm_mcp_client_secret: SecretStr
    tickets_mcp_url: str
    tickets_mcp_resource: str

    # Pattern 3 — token cascade.
    crm_api_url: str

    @property
    def token_url(self) -> str:
        """Where crm-mcp gets its client-credentials token."""
        return self.auth_token_url or f"{self.auth_issuer}/token"
