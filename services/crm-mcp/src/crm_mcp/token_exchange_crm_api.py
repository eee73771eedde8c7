"""Pattern 3b — token exchange (RFC 8693): crm-mcp trades the caller's token for one issued to crm-api alone.

The MCP specification forbids passing the token an MCP server received through to another API. Here the
caller's token never leaves crm-mcp except to the authorization server: crm-mcp, authenticated as its
own confidential client (CRM_MCP_CLIENT_ID / CRM_MCP_CLIENT_SECRET), presents it there as the
`subject_token` and asks for a token with `resource` = crm-api (CRM_API_AUDIENCE) and only the one
scope the call needs (`crm:read`, or `crm:write` for a note). The answer names the same user (`sub`),
crm-api as its only audience, crm-mcp as the actor (`act.sub`), and ends no later than the caller's
token. crm-api validates it as it would any token, and records the actor with each note.

Run with CRM_API_AUTH_MODE=exchange; the authorization server then also stops putting crm-api's
audience in tokens for crm-mcp, so passing one through would be refused. `oauth_tokens.TokenExchange`
does the exchange: cached per (hash of the caller's token, resource, scope) until shortly before the
earlier of both tokens' expiry, one request for many concurrent callers, bounded in size.
"""

from __future__ import annotations

import logging

from mcp.server.auth.middleware.auth_context import get_access_token
from oauth_tokens import TokenEndpointError, TokenExchange

from crm_mcp.crm_api_client import SERVICE
from crm_mcp.downstream import DownstreamError

logger = logging.getLogger(__name__)

# What the authorization server answers when it will not exchange the caller's token: RFC 8693 §2.2.2
# says invalid_request for an invalid or expired subject token; some servers say invalid_grant.
SUBJECT_TOKEN_REFUSED = frozenset({"invalid_request", "invalid_grant"})


def exchange_failure(error: TokenEndpointError) -> DownstreamError:
    """The tool error a failed exchange means: what went wrong and what the user can do, never a token."""
    detail = f"{error.error}: {error.description}" if error.description else error.error
    if error.error in SUBJECT_TOKEN_REFUSED:
        return DownstreamError(
            f"The authorization server would not exchange your sign-in for access to {SERVICE} ({detail}). "
            "It has probably expired or been revoked: sign in again."
        )
    if error.error == "invalid_scope":
        return DownstreamError(f"Your sign-in does not allow this at {SERVICE} ({detail}).")
    if error.error == "temporarily_unavailable":
        return DownstreamError(f"Could not reach the authorization server to call {SERVICE} ({detail}); try again.")
    return DownstreamError(f"crm-mcp could not exchange your sign-in for access to {SERVICE} ({detail}).")


class ExchangedToken:
    """Pattern 3b's credential for crm-api: the caller's token exchanged for a crm-api token with one scope."""

    pattern = "token_exchange"
    credential = "exchanged_token"

    def __init__(self, exchange: TokenExchange, audience: str) -> None:
        self.exchange = exchange  # its `cache` is what `make bench` clears to measure a cold exchange
        self.audience = audience

    async def authorization(self, scope: str) -> dict[str, str]:
        caller = get_access_token()
        if caller is None:
            # The SDK's bearer middleware admits no unauthenticated request; this is a programming error.
            raise DownstreamError(f"No caller token to exchange for {SERVICE}.")
        try:
            token = await self.exchange.token_for(
                caller.token, resource=self.audience, scope=scope, subject_expires_at=caller.expires_at
            )
        except TokenEndpointError as error:
            logger.info("Token exchange for %s (%s) of %s failed: %s", SERVICE, scope, caller.subject, error.error)
            raise exchange_failure(error) from error
        # DPoP-bound (CRM_MCP_DPOP): the client's DPoPProofAuth adds a fresh proof to each request.
        scheme = "DPoP" if self.exchange.dpop_key is not None else "Bearer"
        return {"Authorization": f"{scheme} {token}"}

    async def aclose(self) -> None:
        await self.exchange.aclose()
