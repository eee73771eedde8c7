"""Pattern 3 — token cascade: crm-mcp forwards the caller's own bearer token to crm-api.

crm-api sits inside the same trust boundary and validates the token itself (issuer, its own audience,
expiry, per-route scopes) against the authorization server's JWKS, then uses `sub` to decide what this
user may see. crm-mcp adds no credential of its own and cannot widen what the user may do.

This is a deliberate, bounded exception to a rule: the MCP specification says an MCP server MUST NOT
pass the token it received through to upstream APIs (a confused deputy). It holds here only because
crm-api is inside the same trust boundary, the authorization server puts crm-api's audience in tokens
for crm-mcp (CRM_API_AUTH_MODE=cascade), and crm-api validates that audience itself. The compliant
alternative runs beside it: CRM_API_AUTH_MODE=exchange (token_exchange_crm_api.py, RFC 8693).
The HTTP calls themselves are the same in both modes (crm_api_client.py).
"""

from __future__ import annotations

from mcp.server.auth.middleware.auth_context import get_access_token

from crm_mcp.downstream import DownstreamError


def caller_authorization() -> dict[str, str]:
    """The Authorization header of the MCP request being served: the user's token, forwarded as is."""
    access_token = get_access_token()
    if access_token is None:
        # The SDK's bearer middleware admits no unauthenticated request; this is a programming error.
        raise DownstreamError("No caller token to forward to crm-api.")
    cnf = (access_token.claims or {}).get("cnf")
    if isinstance(cnf, dict) and "jkt" in cnf:
        # RFC 9449: the token is bound to the caller's key, which crm-mcp does not hold; crm-api would refuse it.
        raise DownstreamError(
            "Your sign-in is DPoP-bound to your client's key, so crm-mcp cannot forward it to crm-api "
            "(pattern 3, token cascade): a bound token cannot be replayed by anyone else, crm-mcp included. "
            "Run crm-mcp with CRM_API_AUTH_MODE=exchange (pattern 3b) to reach crm-api with DPoP."
        )
    return {"Authorization": f"Bearer {access_token.token}"}


class CallerToken:
    """Pattern 3's credential for crm-api: the caller's own token, whatever the call's scope.

    The scope is not narrowed here: crm-api checks each route's scope against the token itself.
    """

    pattern = "token_cascade"
    credential = "user_token"

    async def authorization(self, scope: str) -> dict[str, str]:
        return caller_authorization()

    async def aclose(self) -> None:
        return None
