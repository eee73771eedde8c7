"""`auth/client-credentials-basic`: pattern 2's client (ClientCredentialsAuth, client_secret_basic).

The token endpoint is discovered the way crm-mcp finds tickets-mcp's (TokenEndpointDiscovery: the 401,
RFC 9728, RFC 8414); the token is requested with the RFC 8707 resource and sent on every MCP request.
"""

from __future__ import annotations

from oauth_tokens import ClientCredentialsAuth
from oauth_tokens.resource_discovery import TokenEndpointDiscovery

from tests.conformance.adapters.scenario import context, list_tools, run, server_url, suite_server


async def main() -> None:
    url, data = server_url(), context()
    discovery = TokenEndpointDiscovery(url, (), trust_issuer=suite_server)
    auth = ClientCredentialsAuth(
        "",
        data["client_id"],
        data["client_secret"],
        resource=url,
        auth_method="client_secret_basic",
        discover_token_url=discovery.token_endpoint,
    )
    try:
        await list_tools(url, auth)
    finally:
        await auth.aclose()


if __name__ == "__main__":
    run(main)
