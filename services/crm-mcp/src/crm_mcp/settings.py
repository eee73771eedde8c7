"""crm-mcp's settings: where its downstreams are and the credentials of patterns 1, 2, 3b, 4 and 5.

Client secrets are optional: by default crm-mcp authenticates with private_key_jwt and its keys live
in a file under CRM_MCP_DATA_DIR, not here. DATABASE_URL (DatabaseSettings) holds pattern 4's vault and
connect flows; empty: <CRM_MCP_DATA_DIR>/crm-mcp.sqlite3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from oauth_tokens.client_assertion import AssertionAudience
from oauth_tokens.cors import CorsSettings
from oauth_tokens.mcp_sessions import McpSessionSettings
from oauth_tokens.service_database import DatabaseSettings, ServiceDatabase
from oauth_tokens.settings import CommaList, OptionalPort, TrustSettings
from oauth_tokens.shared_state import SharedStateSettings
from oauth_tokens.signing_keys import SigningAlgorithm
from oauth_tokens.token_endpoint import AuthMethod
from oauth_tokens.vault import VaultKeys
from pydantic import Field, SecretStr, ValidationInfo, field_validator


class Settings(TrustSettings, CorsSettings, McpSessionSettings, DatabaseSettings, SharedStateSettings):
    """Every field is the environment variable of the same name, upper-cased (see .env.example).

    REDIS_URL (SharedStateSettings): every replica shares one client-credentials token (pattern 2) and one
    exchanged token per user token (3b), sealed in Redis under CRM_MCP_VAULT_KEYS; empty: per process.
    """

    crm_mcp_host: str = "127.0.0.1"
    crm_mcp_port: int = 8001
    # /metrics (Prometheus) on this port of METRICS_HOST; unset: no metrics listener.
    crm_mcp_metrics_port: OptionalPort = None
    # This server's RFC 8707 resource identifier: the audience user tokens must carry.
    crm_mcp_resource: str
    # Host headers accepted besides localhost and CRM_MCP_PUBLIC_URL's host (DNS-rebinding protection, every
    # route but /health), e.g. crm-mcp:8001 in compose.
    crm_mcp_allowed_hosts: CommaList = ()
    # Total deadline (connect and every read) of each downstream call, token request and MCP session
    # set-up, seconds.
    crm_mcp_downstream_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0

    # Pattern 1 — API key.
    weather_api_url: str
    weather_api_key: SecretStr
    weather_api_key_header: str = "X-API-Key"

    # How crm-mcp proves who it is at the authorization servers (client_identity.py). private_key_jwt:
    # an assertion signed with a key kept in <CRM_MCP_DATA_DIR>/client-keys (generated on first start,
    # public half at /.well-known/jwks.json); client_secret_*: the secret below.
    crm_mcp_client_auth_method: AuthMethod = "private_key_jwt"
    crm_mcp_client_key_algorithm: SigningAlgorithm = "ES256"
    # The assertion's aud: the issuer; issuer_and_token_endpoint or token_endpoint for providers wanting that.
    crm_mcp_client_assertion_audience: AssertionAudience = "issuer"

    # Pattern 2 — client credentials.
    # Empty: discovered from tickets-mcp's RFC 9728 metadata, then its (trusted) issuer's RFC 8414 metadata.
    auth_token_url: str = ""
    crm_mcp_client_id: str
    # Only with a client_secret_* CRM_MCP_CLIENT_AUTH_METHOD (crm-mcp-agent and crm-mcp-connect use it).
    crm_mcp_client_secret: SecretStr | None = Field(default=None, validate_default=True)
    tickets_mcp_url: str
    tickets_mcp_resource: str

    # DPoP (RFC 9449, docs/dpop.md): crm-mcp's own tokens (pattern 2 for tickets-mcp, 3b for crm-api, the
    # calendar's of patterns 4 and 5) are bound to its DPoP key, kept in <CRM_MCP_DATA_DIR>/dpop-keys (generated
    # on first start, shared by every replica), and every call carries a fresh proof. The servers must support it.
    crm_mcp_dpop: bool = False

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

    # Pattern 4 — the user's own account at a third party (calendar-api), connected by URL elicitation.
    # Where browsers reach crm-mcp (its /connect/calendar pages), e.g. http://localhost:8001.
    crm_mcp_public_url: str
    # crm-mcp's web client at its own authorization server (signs in whoever opens a connect link).
    crm_mcp_connect_client_id: str = "crm-mcp-connect"
    crm_mcp_data_dir: Path = Path("data/crm-mcp")
    crm_mcp_vault_keys: VaultKeys
    # Keys sealing the requestState a client echoes back; shared by replicas. The first seals.
    crm_mcp_request_state_keys: CommaList
    crm_mcp_calendar_refresh_margin_seconds: float = Field(default=60.0, ge=0)
    calendar_api_url: str
    calendar_api_audience: str
    calendar_auth_issuer: str
    calendar_client_id: str
    calendar_client_auth_method: AuthMethod = "private_key_jwt"
    # Only with a client_secret_* CALENDAR_CLIENT_AUTH_METHOD.
    calendar_client_secret: SecretStr | None = Field(default=None, validate_default=True)
    calendar_scopes: str = "calendar:read calendar:write"
    # Empty: <CALENDAR_AUTH_ISSUER>/token and /revoke.
    calendar_token_url: str = ""
    calendar_revocation_url: str = ""
    # How the calendar tools get the user's calendar token: `consent` (pattern 4, the user connects in the
    # browser) or `cross-app-access` (pattern 5, an ID-JAG from AUTH_ISSUER redeemed at CALENDAR_AUTH_ISSUER).
    calendar_auth_mode: Literal["consent", "cross-app-access"] = "consent"

    @field_validator("crm_mcp_client_secret", "calendar_client_secret", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("crm_mcp_client_secret", "calendar_client_secret")
    @classmethod
    def _secret_for_secret_methods(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        method_setting = info.field_name.replace("_secret", "_auth_method") if info.field_name else ""
        method = info.data.get(method_setting)
        if value is None and method in ("client_secret_basic", "client_secret_post"):
            raise ValueError(f"is required when {method_setting.upper()}={method}")
        return value

    @field_validator("crm_mcp_request_state_keys")
    @classmethod
    def _state_keys_are_long(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        if not keys or any(len(key) < 32 for key in keys):
            raise ValueError("needs at least one key, each at least 32 characters of random")
        return keys

    @field_validator("crm_mcp_public_url", "calendar_auth_issuer")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or value.endswith("/"):
            raise ValueError("must be an http(s) URL without a trailing slash")
        return value

    @property
    def calendar_token_endpoint(self) -> str:
        return self.calendar_token_url or f"{self.calendar_auth_issuer}/token"

    @property
    def calendar_revocation_endpoint(self) -> str:
        return self.calendar_revocation_url or f"{self.calendar_auth_issuer}/revoke"

    def database(self) -> ServiceDatabase:
        """crm-mcp's database: DATABASE_URL, else <CRM_MCP_DATA_DIR>/crm-mcp.sqlite3; migrations in crm_mcp."""
        return ServiceDatabase.from_settings(
            self, default_sqlite_file=self.crm_mcp_data_dir / "crm-mcp.sqlite3", migrations="crm_mcp:migrations"
        )

    @property
    def client_keys_dir(self) -> Path:
        """Where crm-mcp's client-assertion keys live (0600 PEM files; oauth_tokens.client_assertion)."""
        return self.crm_mcp_data_dir / "client-keys"

    @property
    def dpop_keys_dir(self) -> Path:
        """Where crm-mcp's DPoP key lives (CRM_MCP_DPOP; a separate key from the client keys: docs/dpop.md)."""
        return self.crm_mcp_data_dir / "dpop-keys"
