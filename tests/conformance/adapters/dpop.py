"""`auth/dpop` and `auth/dpop-nonce`: the MCP SDK's OAuth client (authorization code + PKCE) made to use DPoP
by oauth_tokens' DPoPOverAuth, as `make demo` signs users in under `make up DPOP=require`.

The suite's mock authorization server approves at once: its authorization endpoint redirects straight to the
redirect URI with the code, which this adapter hands back to the SDK.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx2
from devkit.headless_login import MemoryTokenStorage
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
from oauth_tokens.dpop_client import DPoPKey, DPoPOverAuth
from pydantic import AnyUrl

from tests.conformance.adapters.scenario import TIMEOUT_SECONDS, list_tools, run, server_url

CALLBACK_URL = "http://localhost:3030/callback"


async def main() -> None:
    url = server_url()
    codes: list[AuthorizationCodeResult] = []

    async def visit(authorization_url: str) -> None:
        async with httpx2.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as browser:
            location = (await browser.get(authorization_url)).headers["location"]
        query = parse_qs(urlsplit(location).query)
        state, iss = query.get("state", [None])[0], query.get("iss", [None])[0]
        codes.append(AuthorizationCodeResult(code=query["code"][0], state=state, iss=iss))

    async def callback() -> AuthorizationCodeResult:
        return codes.pop()

    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="oauth_tokens DPoP conformance client",
            redirect_uris=[AnyUrl(CALLBACK_URL)],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=MemoryTokenStorage(),
        redirect_handler=visit,
        callback_handler=callback,
    )
    await list_tools(url, DPoPOverAuth(provider, DPoPKey()))


if __name__ == "__main__":
    run(main)
