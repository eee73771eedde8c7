"""`auth/enterprise-managed-authorization` (SEP-990, 0.1.x's `auth/cross-app-access-complete-flow`): pattern 5's
client code, `oauth_tokens.id_jag.CrossAppAccess`.

Wiring only: the MCP server's authorization server (its issuer is the ID-JAG's `audience`) and token
endpoint are discovered by TokenEndpointDiscovery (401, RFC 9728, RFC 8414); the IdP is the suite's, whose
token endpoint the context names and which takes the user's ID token from a public client (auth method
none); the authorization server takes client_secret_basic. The access token is sent on every MCP request.
"""

from __future__ import annotations

import httpx2
from oauth_tokens.id_jag import ID_TOKEN_TYPE, CrossAppAccess
from oauth_tokens.resource_discovery import TokenEndpointDiscovery
from oauth_tokens.token_endpoint import TokenEndpoint

from tests.conformance.adapters.scenario import context, list_tools, run, server_url, suite_server


async def main() -> None:
    url, data = server_url(), context()
    discovery = TokenEndpointDiscovery(url, (), trust_issuer=suite_server)
    await discovery.token_endpoint()  # also finds the authorization server's issuer: the ID-JAG's audience
    assert discovery.issuer is not None
    access = CrossAppAccess(
        TokenEndpoint(data["idp_token_endpoint"], data["idp_client_id"], "", auth_method="none"),
        TokenEndpoint("", data["client_id"], data["client_secret"], discover_token_url=discovery.token_endpoint),
        audience=discovery.issuer,
        resource=url,
        subject_token_type=ID_TOKEN_TYPE,
    )
    try:
        token = (await access.access_token(data["idp_id_token"])).access_token

        def bearer(request: httpx2.Request) -> httpx2.Request:
            request.headers["Authorization"] = f"Bearer {token}"
            return request

        await list_tools(url, httpx2.FunctionAuth(bearer))
    finally:
        await access.aclose()


if __name__ == "__main__":
    run(main)
