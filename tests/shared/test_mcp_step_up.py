"""oauth_tokens.mcp_step_up's building blocks; the mechanism over HTTP is in tests/tickets_mcp/test_step_up.py."""

from __future__ import annotations

import json

import pytest
from mcp.server.mcpserver import MCPServer
from oauth_tokens.mcp import resource_server_auth
from oauth_tokens.mcp_step_up import SCOPES_META_KEY, _tool_names, enforce_tool_scopes, requires_scopes

RESOURCE = "http://127.0.0.1:8002/mcp"


def test_requires_scopes_is_the_tools_meta() -> None:
    assert requires_scopes("crm:read", "crm:write") == {SCOPES_META_KEY: ["crm:read", "crm:write"]}


@pytest.mark.parametrize("scopes", [(), ("",), ("crm:read crm:write",)])
def test_requires_scopes_refuses_what_is_not_a_scope(scopes: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="scope names"):
        requires_scopes(*scopes)


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "a"}}), ["a"]),
        (json.dumps([{"method": "tools/call", "params": {"name": "a"}}, {"method": "ping"}]), ["a"]),
        (json.dumps({"method": "tools/list"}), []),
        (json.dumps({"method": "tools/call", "params": {"name": 7}}), []),
        (json.dumps({"method": "tools/call", "params": "a"}), []),
        ("not json", []),
        ("[" * 100_000, []),  # deep nesting: refused by the SDK, never a crash here
    ],
)
def test_the_called_tools_are_read_from_any_body_without_failing(body: str, names: list[str]) -> None:
    assert _tool_names(body.encode()) == names


def test_an_app_without_the_mcp_endpoint_is_refused() -> None:
    server: MCPServer[object] = MCPServer("test")
    auth = resource_server_auth("http://127.0.0.1:9000", RESOURCE)
    app = server.streamable_http_app(streamable_http_path="/mcp")
    with pytest.raises(ValueError, match="no MCP endpoint at /other"):
        enforce_tool_scopes(app, server, auth, path="/other")
