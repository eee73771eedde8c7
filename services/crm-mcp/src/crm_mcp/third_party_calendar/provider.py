"""Pattern 4, step 1 of 3: crm-mcp as a confidential OAuth client of the calendar provider.

`CalendarProvider` builds the authorization URL (PKCE S256, `state`, `resource`), redeems the code,
refreshes and revokes (RFC 7009). Token requests go through the shared `oauth_tokens.TokenEndpoint`,
the same client steps patterns 2, 3b and 5 use: client authentication (CALENDAR_CLIENT_AUTH_METHOD,
private_key_jwt by default: client_identity.py), a deadline, secrets scrubbed from errors, and with
CRM_MCP_DPOP a DPoP proof on every request and only `token_type: DPoP` answers taken (docs/dpop.md).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from oauth_tokens import TokenEndpointError
from oauth_tokens.dpop_client import DPoPKey
from oauth_tokens.telemetry import trace_http
from oauth_tokens.token_endpoint import TokenEndpoint
from oauth_tokens.vault import StoredGrant

from crm_mcp.client_identity import ClientCredential
from crm_mcp.downstream import DownstreamError, http_client, parse_response, send
from crm_mcp.settings import Settings

PROVIDER = "the calendar provider's authorization server"
CALLBACK_PATH = "/connect/calendar/callback"


class GrantRevokedError(Exception):
    """The provider refused the refresh token (invalid_grant): the user must connect again."""


class CalendarProvider:
    """crm-mcp's OAuth client at the calendar's authorization server (CALENDAR_CLIENT_ID, authenticated
    as CALENDAR_CLIENT_AUTH_METHOD says: client_identity.py)."""

    def __init__(self, settings: Settings, credential: ClientCredential, dpop_key: DPoPKey | None = None) -> None:
        """`dpop_key` (CRM_MCP_DPOP): token requests carry its proof, and only DPoP-bound answers are taken."""
        self.issuer = settings.calendar_auth_issuer
        self.dpop_jkt = dpop_key.thumbprint if dpop_key is not None else None
        self.redirect_uri = settings.crm_mcp_public_url + CALLBACK_PATH
        self._settings = settings
        self._timeout = settings.crm_mcp_downstream_timeout_seconds
        self._token_endpoint = TokenEndpoint(
            settings.calendar_token_endpoint,
            settings.calendar_client_id,
            **credential.token_endpoint_arguments(),
            timeout_seconds=self._timeout,
            pattern="third_party",
            dpop_key=dpop_key,
        )
        # For revocation, authenticated the same way as at the token endpoint.
        credential_kind = self._token_endpoint.credential_kind
        self._http = trace_http(http_client(self._timeout), pattern="third_party", credential=credential_kind)

    def authorization_url(self, state: str, code_challenge: str) -> str:
        """Where the browser goes to consent at the provider (its public issuer, not an internal name)."""
        query = {
            "response_type": "code",
            "client_id": self._settings.calendar_client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self._settings.calendar_scopes,
            "resource": self._settings.calendar_api_audience,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        return f"{self.issuer}/authorize?{urlencode(query)}"

    async def redeem_code(self, code: str, code_verifier: str) -> StoredGrant:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        return await self._token_request({**form, "code_verifier": code_verifier})

    async def refresh(self, refresh_token: str) -> StoredGrant:
        """A new access token and the rotated refresh token; GrantRevokedError if the grant is gone."""
        return await self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def revoke(self, token: str) -> None:
        """RFC 7009: end the grant at the provider (the refresh token revokes every rotation of it)."""
        endpoint = self._settings.calendar_revocation_endpoint
        # Authenticated exactly as at the token endpoint (same encoding of id and secret).
        data, headers = self._token_endpoint.authenticate({"token": token, "token_type_hint": "refresh_token"})
        await send(
            PROVIDER,
            lambda: self._http.post(endpoint, data=data, headers=headers),
            idempotent=True,
            deadline_seconds=self._timeout,
        )

    async def _token_request(self, form: dict[str, str]) -> StoredGrant:
        """One token request (authorization code or refresh) through the shared TokenEndpoint."""
        try:
            answer = await self._token_endpoint.request(
                form, secrets=tuple(form[name] for name in ("code", "code_verifier", "refresh_token") if name in form)
            )
        except TokenEndpointError as exc:
            if exc.error == "invalid_grant":
                raise GrantRevokedError from exc
            if exc.error == "temporarily_unavailable":
                raise DownstreamError(f"{PROVIDER} did not answer; try again later.") from exc
            raise DownstreamError(f"{PROVIDER} refused the token request ({exc.error}).") from exc
        return parse_response(PROVIDER, lambda: _grant_from(dict(answer.body), self.dpop_jkt))

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._token_endpoint.aclose()


def _grant_from(body: dict[str, Any], dpop_jkt: str | None) -> StoredGrant:
    """The grant in a token answer; with `dpop_jkt` the TokenEndpoint has checked it is `token_type: DPoP`."""
    return StoredGrant(
        access_token=str(body["access_token"]),
        refresh_token=str(body["refresh_token"]) if body.get("refresh_token") else None,
        expires_at=time.time() + float(body["expires_in"]),
        scope=str(body.get("scope", "")),
        token_type="DPoP" if dpop_jkt is not None else "Bearer",
        dpop_jkt=dpop_jkt,
    )
