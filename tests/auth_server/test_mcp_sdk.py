"""The MCP SDK's own OAuth clients against the auth-server and a real MCP resource server:
ClientCredentialsOAuthProvider, and OAuthClientProvider doing discovery, dynamic registration,
authorization code + PKCE (the browser part driven headlessly) and refresh."""

from __future__ import annotations

import anyio
import pytest
from devkit.headless_login import MemoryTokenStorage
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
from pydantic import AnyUrl

from tests.auth_server.browser import Browser, query_of
from tests.auth_server.conftest import AuthTestEnv
from tests.auth_server.resource_server import running_resource_server, whoami
from tests.auth_server.tokens import claims_of


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
@pytest.mark.anyio
async def test_sdk_client_credentials_provider(auth: AuthTestEnv, method: str) -> None:
    storage = MemoryTokenStorage()
    provider = ClientCredentialsOAuthProvider(
        server_url=auth.tickets_mcp_resource,
        storage=storage,
        client_id="crm-mcp-agent",
        client_secret=auth.agent_secret,
        token_endpoint_auth_method=method,  # type: ignore[arg-type]
        issuer=auth.issuer,
    )
    # PRM advertises the tickets scopes, which the SDK requests (it overrides any scope= given to it).
    async with running_resource_server(
        auth, auth.tickets_mcp_resource, auth.tickets_mcp_port, ["tickets:read", "tickets:write"]
    ):
        identity = await whoami(auth.tickets_mcp_resource, provider)
    assert identity == "crm-mcp-agent crm-mcp-agent tickets:read tickets:write"
    assert storage.tokens is not None
    assert claims_of(storage.tokens.access_token)["aud"] == auth.tickets_mcp_resource


class HeadlessUser:
    """The SDK's redirect and callback handlers: a person signing in and approving, played by a Browser."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.callback_url: str | None = None
        self.authorizations = 0

    async def redirect_handler(self, authorization_url: str) -> None:
        self.authorizations += 1
        browser = Browser()
        try:
            self.callback_url = await anyio.to_thread.run_sync(
                browser.authorize, authorization_url, self.username, self.password
            )
        finally:
            browser.close()

    async def callback_handler(self) -> AuthorizationCodeResult:
        assert self.callback_url is not None
        params = query_of(self.callback_url)
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))


@pytest.mark.anyio
async def test_sdk_oauth_client_provider_with_dynamic_registration(auth: AuthTestEnv) -> None:
    user = HeadlessUser("alice", auth.alice_password)
    storage = MemoryTokenStorage()
    provider = OAuthClientProvider(
        server_url=auth.crm_mcp_resource,
        # As the SDK's own example client registers (it asks for client_secret_post; it gets a public client).
        client_metadata=OAuthClientMetadata(
            client_name="SDK test client",
            redirect_uris=[AnyUrl("http://localhost:38123/callback")],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="client_secret_post",
        ),
        storage=storage,
        redirect_handler=user.redirect_handler,
        callback_handler=user.callback_handler,
    )
    async with running_resource_server(auth, auth.crm_mcp_resource, auth.crm_mcp_port):
        identity = await whoami(auth.crm_mcp_resource, provider)
        assert storage.client_info is not None
        assert storage.client_info.token_endpoint_auth_method == "none"
        client_id = storage.client_info.client_id
        assert identity == f"alice {client_id} crm:read crm:write tickets:read tickets:write weather:read"
        assert user.authorizations == 1
        assert storage.tokens is not None
        first_refresh = storage.tokens.refresh_token
        assert first_refresh

        # An expired access token: the SDK refreshes (rotation) instead of asking the user again.
        provider.context.token_expiry_time = 1.0  # long past (0 would mean "no expiry")
        assert await whoami(auth.crm_mcp_resource, provider) == identity
        assert user.authorizations == 1
        assert storage.tokens.refresh_token not in (None, first_refresh)
    claims = claims_of(storage.tokens.access_token)
    assert claims["aud"] == [auth.crm_mcp_resource, auth.crm_api_audience]
    assert claims["iss"] == auth.issuer
