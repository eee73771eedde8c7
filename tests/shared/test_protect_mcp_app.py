"""`protect_mcp_app` and `scoped_tool` on a real MCP server over HTTP, with real JWTs.

One declaration, `@scoped_tool(server, "demo:write")`, must be what `tools/list` shows (`_meta` and the
description), what the RFC 9728 metadata lists, what the 403 step-up challenge names, and what the tool
itself checks when reached without the HTTP layer. And the order `protect_mcp_app` fixes must hold:
refusals further in (403, 413) still carry the CORS headers a browser client needs to read them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from devkit.processes import free_port
from devkit.sessions import mcp_session
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from oauth_tokens import AccessTokenValidator, ValidatorConfig
from oauth_tokens.mcp import JWTTokenVerifier, caller_token, resource_server_auth
from oauth_tokens.mcp_app import protect_mcp_app
from oauth_tokens.mcp_sessions import McpSessionSettings
from oauth_tokens.mcp_step_up import SCOPES_META_KEY, declared_scopes, scoped_tool
from oauth_tokens.settings import DPoPSettings

from tests.shared.conftest import Keys
from tests.shared.test_mcp_adapter import _serve
from tests.shared.tokens import claims, mint

pytestmark = pytest.mark.anyio

ORIGIN = "http://localhost:6274"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
# The one place this test's tool states its scope: every assertion below compares against it.
WRITE = "demo:write"


def demo_server(verifier: JWTTokenVerifier, auth: Any) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("demo", token_verifier=verifier, auth=auth)

    @scoped_tool(server, "demo:read")
    async def read_thing() -> str:
        """Read the thing."""
        return "read"

    @scoped_tool(server, WRITE)
    async def write_thing(text: str) -> str:
        """Write the thing."""
        return f"{caller_token().subject} wrote {text}"

    return server


@pytest.fixture
async def protected(issuer: str, http_client: httpx2.AsyncClient) -> AsyncIterator[tuple[str, MCPServer[Any]]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    config = ValidatorConfig(issuers=[issuer], audiences=[url], jwks_url=f"{issuer}/jwks")
    validator = AccessTokenValidator(config, http_client=http_client)
    auth = resource_server_auth(issuer, url)
    server = demo_server(JWTTokenVerifier(validator, url), auth)
    app = protect_mcp_app(
        server,
        auth=auth,
        sessions=McpSessionSettings(),
        host="127.0.0.1",
        allowed_origins=[ORIGIN],
        resource_name="demo",
        dpop=DPoPSettings(),
    )
    async with _serve(app, port):
        yield url, server


def token_for(keys: Keys, issuer: str, url: str, scope: str) -> str:
    return mint(keys.rsa, claims(issuer, aud=url, scope=scope))


async def test_one_declaration_feeds_tools_list_metadata_and_the_step_up(
    keys: Keys, issuer: str, auth_server: Any, protected: tuple[str, MCPServer[Any]]
) -> None:
    url, server = protected
    reader = token_for(keys, issuer, url, "demo:read")
    async with mcp_session(url, token=reader, http_timeout=10.0, mode="legacy") as client:
        listed = {tool.name: tool for tool in (await client.session.list_tools()).tools}
    assert (listed["write_thing"].meta or {})[SCOPES_META_KEY] == [WRITE]
    assert listed["write_thing"].description == f"Write the thing.\n\nRequires scope {WRITE}."
    assert declared_scopes(server) == ("demo:read", WRITE)

    async with httpx2.AsyncClient(timeout=10.0) as client:
        metadata = (await client.get(f"{url.removesuffix('/mcp')}/.well-known/oauth-protected-resource/mcp")).json()
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "write_thing", "arguments": {}}}
        refused = await client.post(
            url,
            json=call,
            headers={**MCP_HEADERS, "Authorization": f"Bearer {reader}", "MCP-Protocol-Version": "2025-11-25"},
        )
    assert metadata["scopes_supported"] == ["demo:read", WRITE]
    # RFC 9728 §2 / RFC 9449 §5.2: the DPoP proofs it takes; AUTH_DPOP=accept, so bound tokens are not required.
    assert metadata["dpop_signing_alg_values_supported"] == ["ES256", "RS256", "PS256", "EdDSA"]
    assert "dpop_bound_access_tokens_required" not in metadata
    assert refused.status_code == 403
    challenge = dict(re.findall(r'(\w+)="([^"]*)"', refused.headers["www-authenticate"]))
    assert (challenge["error"], challenge["scope"]) == ("insufficient_scope", WRITE)


async def test_the_tool_checks_the_same_declaration_without_the_http_layer(
    keys: Keys, issuer: str, auth_server: Any, protected: tuple[str, MCPServer[Any]]
) -> None:
    _, server = protected
    token = AccessToken(token="t", client_id="c", scopes=["demo:read"], subject="alice")
    reset = auth_context_var.set(AuthenticatedUser(token))
    try:
        with pytest.raises(ToolError, match=f"Missing required scope '{WRITE}'"):
            await server.call_tool("write_thing", {"text": "x"})
        granted = AccessToken(token="t", client_id="c", scopes=[WRITE], subject="alice")
        auth_context_var.set(AuthenticatedUser(granted))
        assert "alice wrote x" in str(await server.call_tool("write_thing", {"text": "x"}))
    finally:
        auth_context_var.reset(reset)


async def test_refusals_from_further_in_still_carry_cors_headers(
    keys: Keys, issuer: str, auth_server: Any, protected: tuple[str, MCPServer[Any]]
) -> None:
    url, _ = protected
    reader = token_for(keys, issuer, url, "demo:read")
    headers = {
        **MCP_HEADERS,
        "Origin": ORIGIN,
        "Authorization": f"Bearer {reader}",
        "MCP-Protocol-Version": "2025-11-25",
    }
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "write_thing", "arguments": {}}}
    async with httpx2.AsyncClient(timeout=10.0) as client:
        preflight = await client.options(
            url, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
        )  # no token: answered before authentication
        step_up = await client.post(url, json=call, headers=headers)
        too_large = await client.post(url, content=b"x" * (2 * 1024 * 1024), headers=headers)
    assert preflight.status_code == 200
    assert step_up.status_code == 403
    assert too_large.status_code == 413
    for answer in (preflight, step_up, too_large):
        assert answer.headers["access-control-allow-origin"] == ORIGIN
