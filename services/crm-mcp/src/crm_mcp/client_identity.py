"""How crm-mcp proves who it is at its authorization servers, and where it publishes its public keys.

crm-mcp is a confidential client three times: crm-mcp-agent (pattern 2 client credentials, pattern 3b
token exchange) and crm-mcp-connect (pattern 4's sign-in) at its own authorization server, and
`CALENDAR_CLIENT_ID` at the calendar's. Each authenticates as CRM_MCP_CLIENT_AUTH_METHOD (the first
two) or CALENDAR_CLIENT_AUTH_METHOD says:

- private_key_jwt (the default; SEP-1046 recommends it): every token request carries a fresh RFC 7523
  assertion signed with crm-mcp's client key. The keys live in <CRM_MCP_DATA_DIR>/client-keys
  (generated on first start, 0600; rotate with `python -m oauth_tokens.client_assertion rotate`), and
  their public halves are served at /.well-known/jwks.json, which the authorization servers fetch
  (their `jwks_uri` for these clients). No secret exists to leak, copy or rotate by hand.
- client_secret_basic / client_secret_post: CRM_MCP_CLIENT_SECRET / CALENDAR_CLIENT_SECRET, for
  providers that support nothing else.

The JWKS route answers without a token (it holds public keys only) and may be cached for a minute.

With CRM_MCP_DPOP=true crm-mcp also holds a DPoP key (RFC 9449), in <CRM_MCP_DATA_DIR>/dpop-keys: every
token it obtains for itself is bound to it, and since those tokens are shared by every replica (the vault,
the shared token cache), so is the key (oauth_tokens.dpop_keys). It is never published.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from oauth_tokens.client_assertion import ClientAssertionSigner, client_keys
from oauth_tokens.dpop_client import DPoPKey
from oauth_tokens.dpop_keys import persistent_dpop_key
from oauth_tokens.signing_keys import KeyStore
from oauth_tokens.token_endpoint import AuthMethod
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse

from crm_mcp.settings import Settings

logger = logging.getLogger(__name__)

JWKS_PATH = "/.well-known/jwks.json"
_JWKS_CACHE = "public, max-age=60"


@dataclass(frozen=True)
class ClientCredential:
    """What one client presents at one authorization server: a secret, or an assertion signer."""

    auth_method: AuthMethod
    client_secret: str | None = field(default=None, repr=False)
    assertion_signer: ClientAssertionSigner | None = None

    def token_endpoint_arguments(self) -> dict[str, Any]:
        """Keyword arguments for TokenEndpoint, ClientCredentialsAuth and TokenExchange."""
        return {
            "client_secret": self.client_secret,
            "assertion_signer": self.assertion_signer,
            "auth_method": self.auth_method,
        }


class ClientIdentity:
    """crm-mcp's client keys (opened, or generated, once) and the credential of each of its clients."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.keys: KeyStore = client_keys(settings.client_keys_dir, settings.crm_mcp_client_key_algorithm)
        # CRM_MCP_DPOP: the key its own tokens are bound to, shared by every replica; None: bearer tokens.
        self.dpop_key: DPoPKey | None = persistent_dpop_key(settings.dpop_keys_dir) if settings.crm_mcp_dpop else None

    def _credential(self, method: AuthMethod, secret: SecretStr | None, issuer: str) -> ClientCredential:
        if method == "private_key_jwt":
            signer = ClientAssertionSigner(self.keys, issuer, audience=self._settings.crm_mcp_client_assertion_audience)
            return ClientCredential(method, assertion_signer=signer)
        assert secret is not None  # Settings requires it for the secret methods
        return ClientCredential(method, client_secret=secret.get_secret_value())

    def own(self) -> ClientCredential:
        """crm-mcp-agent's and crm-mcp-connect's, at AUTH_ISSUER (CRM_MCP_CLIENT_AUTH_METHOD)."""
        settings = self._settings
        return self._credential(
            settings.crm_mcp_client_auth_method, settings.crm_mcp_client_secret, settings.auth_issuer
        )

    def calendar(self) -> ClientCredential:
        """The calendar client's, at CALENDAR_AUTH_ISSUER (CALENDAR_CLIENT_AUTH_METHOD)."""
        settings = self._settings
        return self._credential(
            settings.calendar_client_auth_method, settings.calendar_client_secret, settings.calendar_auth_issuer
        )

    async def jwks(self, _: Request) -> JSONResponse:
        """GET /.well-known/jwks.json: the public client keys, the rotated-in one as soon as it exists."""
        return JSONResponse(self.keys.jwks(), headers={"Cache-Control": _JWKS_CACHE})

    def describe(self) -> str:
        """One line for the start-up log: each client's method."""
        settings = self._settings
        dpop = f"; DPoP key jkt {self.dpop_key.thumbprint}" if self.dpop_key is not None else "; no DPoP"
        return (
            f"client authentication: {settings.crm_mcp_client_id} and {settings.crm_mcp_connect_client_id} "
            f"{settings.crm_mcp_client_auth_method}, {settings.calendar_client_id} "
            f"{settings.calendar_client_auth_method}; public client keys at {JWKS_PATH}{dpop}"
        )
