"""crm-mcp's settings: where its downstreams are and the credentials of patterns 1 and 2."""

from __future__ import annotations

from typing import Annotated, Literal

from oauth_tokens.settings import CommaList, TrustSettings
from pydantic import Field, SecretStr, ValidationInfo, field_validator


class Settings(TrustSettings):
    """Every field is the environment variable of the same name, upper-cased (see .env.example)."""

    crm_mcp_host: str = "127.0.0.1"
    crm_mcp_port: int = 8001
    # This server's RFC 8707 resource identifier: the audience user tokens must carry.
    crm_mcp_resource: str
    # Host headers accepted besides localhost (DNS-rebinding protection), e.g. crm-mcp:8001 in compose.
    crm_mcp_allowed_hosts: CommaList = ()
    # Total deadline (connect and every read) of each downstream call, token request and MCP session
    # set-up, seconds.
    crm_mcp_downstream_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0

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

    # Pattern 3 — crm-api, by token cascade (3) or token exchange (3b).
    crm_api_url: str
    # How crm-mcp authenticates to crm-api: `cascade` forwards the caller's token (pattern 3),
    # `exchange` trades it for a token for crm-api alone (pattern 3b, RFC 8693). The auth-server reads it too.
    crm_api_auth_mode: Literal["cascade", "exchange"] = "cascade"
    # crm-api's resource identifier, the `resource` of an exchange; required in exchange mode.
    crm_api_audience: str = Field(default="", validate_default=True)

    @field_validator("crm_api_audience")
    @classmethod
    def _audience_for_exchange(cls, value: str, info: ValidationInfo) -> str:
        if not value and info.data.get("crm_api_auth_mode") == "exchange":
            raise ValueError("is required when CRM_API_AUTH_MODE=exchange")
        return value

    @property
    def token_url(self) -> str:
        """Where crm-mcp gets its client-credentials token."""
        return self.auth_token_url or f"{self.auth_issuer}/token"
