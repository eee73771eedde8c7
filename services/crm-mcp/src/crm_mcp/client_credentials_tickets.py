"""Pattern 2 — MCP → MCP with OAuth 2.1 client credentials: crm-mcp calls tickets-mcp as itself.

crm-mcp acts as an autonomous agent here: it does not forward the user's token (that token's audience
is crm-mcp, and tickets-mcp would rightly refuse it). It authenticates at the token endpoint as its own
client (`crm-mcp-agent`, with a signed client assertion or a secret: crm_mcp.client_identity) and presents
the token it gets, issued for tickets-mcp alone, on every request to tickets-mcp.

The credential is `oauth_tokens.ClientCredentialsAuth`, an `httpx2.Auth` built here:

- it asks for the RFC 8707 `resource` of tickets-mcp and only the scopes crm-mcp's tools need;
- it caches the token and refreshes it ahead of expiry; concurrent callers share one token request
  (single flight), across replicas too when REDIS_URL is set (`shared_tokens`);
- on a 401 it drops the token and retries once (if the token is not brand new);
- without AUTH_TOKEN_URL it finds the token endpoint from tickets-mcp (RFC 9728, then RFC 8414);
- with CRM_MCP_DPOP its tokens are DPoP-bound to crm-mcp's own key (RFC 9449).

`fresh_token` has a token before the session is used, so a token endpoint that fails is blamed, not
tickets-mcp (`token_error` says so). The MCP session the token rides on is
kept by crm_mcp.tickets_mcp_client (`TicketsMcpClient`).
"""

from __future__ import annotations

from oauth_tokens import ClientCredentialsAuth, TokenEndpointError
from oauth_tokens.dpop_client import DPoPKey
from oauth_tokens.resource_discovery import TokenEndpointDiscovery
from oauth_tokens.shared_state.flight import SharedTokens

from crm_mcp.client_identity import ClientCredential
from crm_mcp.downstream import DownstreamError
from crm_mcp.settings import Settings

SERVICE = "tickets-mcp"
# What crm-mcp asks for, as itself, from tickets-mcp: what list_customer_tickets and open_ticket need.
TICKETS_SCOPES = "tickets:read tickets:write"


def tickets_credential(
    settings: Settings,
    credential: ClientCredential,
    discovery: TokenEndpointDiscovery,
    *,
    dpop_key: DPoPKey | None = None,
    shared_tokens: SharedTokens | None = None,
) -> ClientCredentialsAuth:
    """crm-mcp's own token source for tickets-mcp: the client-credentials grant, cached, single flight."""
    return ClientCredentialsAuth(
        settings.auth_token_url,
        settings.crm_mcp_client_id,
        **credential.token_endpoint_arguments(),
        scope=TICKETS_SCOPES,
        resource=settings.tickets_mcp_resource,
        timeout_seconds=settings.crm_mcp_downstream_timeout_seconds,
        discover_token_url=discovery.token_endpoint,
        dpop_key=dpop_key,
        shared_tokens=shared_tokens,
    )


def token_error(error: TokenEndpointError) -> DownstreamError:
    """The tool error when crm-mcp could not get its token: it names the token endpoint, not tickets-mcp."""
    if error.status_code is None:  # no answer at all: unreachable or timed out
        return DownstreamError(f"crm-mcp could not get a token for {SERVICE}: {error.description}.")
    return DownstreamError(f"crm-mcp could not get a token for {SERVICE} (authorization server said: {error.error}).")


async def fresh_token(auth: ClientCredentialsAuth) -> None:
    """Have a token (cached: no request until it is due for refresh), or raise the tool error that blames
    the token endpoint."""
    try:
        await auth.get_token()
    except TokenEndpointError as exc:
        raise token_error(exc) from exc
