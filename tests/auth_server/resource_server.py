"""A tiny real MCP resource server (MCPServer + the shared JWTTokenVerifier), served by uvicorn on a
loopback port inside the test's event loop, for driving the MCP SDK's OAuth clients end to end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
import httpx2
import uvicorn
from devkit.sessions import mcp_session
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import TextContent
from oauth_tokens import AccessTokenValidator, ValidatorConfig
from oauth_tokens.mcp import JWTTokenVerifier, resource_server_auth

from tests.auth_server.conftest import AuthTestEnv


@asynccontextmanager
async def running_resource_server(
    auth: AuthTestEnv, resource: str, port: int, required_scopes: Sequence[str] | None = None
) -> AsyncIterator[None]:
    validator = AccessTokenValidator(
        ValidatorConfig(issuers=[auth.issuer], audiences=[resource], discovery_url=auth.url)
    )
    server = MCPServer(
        "auth-server test resource",
        token_verifier=JWTTokenVerifier(validator, resource),
        auth=resource_server_auth(auth.issuer, resource, required_scopes),
    )

    @server.tool()
    def whoami() -> str:
        """Who the caller is, per the validated token: subject, client and scopes."""
        token = get_access_token()
        if token is None:
            raise ToolError("no access token")
        return f"{token.subject} {token.client_id} {' '.join(sorted(token.scopes))}"

    config = uvicorn.Config(
        server.streamable_http_app(host="127.0.0.1"), host="127.0.0.1", port=port, log_level="warning"
    )
    uvicorn_server = uvicorn.Server(config)
    async with validator, anyio.create_task_group() as tasks:
        tasks.start_soon(uvicorn_server.serve)
        with anyio.fail_after(10):
            while not uvicorn_server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
                await anyio.sleep(0.02)
        try:
            yield
        finally:
            uvicorn_server.should_exit = True


async def whoami(url: str, auth_provider: httpx2.Auth) -> str:
    """Call the `whoami` tool at `url` through the SDK's MCP client, authenticated by `auth_provider`."""
    async with mcp_session(url, auth=auth_provider) as client:
        result = await client.call_tool("whoami", {})
    assert not result.is_error, result
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text
