"""`auth/client-credentials-jwt`: pattern 2's client authenticating with private_key_jwt (RFC 7523, SEP-1046).

The token endpoint and its issuer are discovered as crm-mcp finds tickets-mcp's (TokenEndpointDiscovery);
the suite's key (a PEM in the scenario's context) signs each client assertion (ClientAssertionSigner,
`aud` = the discovered issuer); ClientCredentialsAuth sends it and the token on every MCP request.
"""

from __future__ import annotations

from oauth_tokens import ClientCredentialsAuth
from oauth_tokens.client_assertion import ClientAssertionSigner, StaticKey
from oauth_tokens.resource_discovery import TokenEndpointDiscovery

from tests.conformance.adapters.scenario import context, list_tools, run, server_url, suite_server


async def main() -> None:
    url, data = server_url(), context()
    discovery = TokenEndpointDiscovery(url, (), trust_issuer=suite_server)
    token_url = await discovery.token_endpoint()
    assert discovery.issuer is not None  # set by a successful discovery
    key = StaticKey.from_pem(data["private_key_pem"], data["signing_algorithm"])
    auth = ClientCredentialsAuth(
        token_url,
        data["client_id"],
        assertion_signer=ClientAssertionSigner(key, discovery.issuer),
        resource=url,
    )
    try:
        await list_tools(url, auth)
    finally:
        await auth.aclose()


if __name__ == "__main__":
    run(main)
