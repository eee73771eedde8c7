"""Per-tool step-up at a real tickets-mcp over raw HTTP: 403 insufficient_scope before the tool runs.

The shared mechanism (oauth_tokens.mcp_step_up) seen from the wire, in both protocol eras: the
2026-07-28 transport names the tool in `Mcp-Name`, older ones only in the JSON-RPC body.
"""

from __future__ import annotations

import re
from typing import Any

import httpx2
import pytest
from devkit.tokens import TestIssuer

from tests.tickets_mcp.conftest import TicketsServer, legacy_session, mint_for

pytestmark = pytest.mark.anyio

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
MODERN = "2026-07-28"


def tool_call(name: str, arguments: dict[str, Any], request_id: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


def challenge_params(response: httpx2.Response) -> dict[str, str]:
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    return dict(re.findall(r'(\w+)="([^"]*)"', challenge))


async def post(tickets: TicketsServer, body: Any, headers: dict[str, str]) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=5.0) as client:
        return await client.post(tickets.mcp_url, json=body, headers={**MCP_HEADERS, **headers})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_legacy_tool_call_without_the_scope_is_403_naming_it(tickets: TicketsServer, issuer: TestIssuer) -> None:
    token = mint_for(issuer, tickets, "tickets:read")
    body = tool_call("create_ticket", {"customer_id": "cus_001", "title": "Never written"})
    response = await post(tickets, body, {**bearer(token), "MCP-Protocol-Version": "2025-11-25"})
    assert response.status_code == 403
    params = challenge_params(response)
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "tickets:write"
    assert params["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp")
    assert response.json()["error"] == "insufficient_scope"


async def test_batch_names_every_scope_its_calls_need(tickets: TicketsServer, issuer: TestIssuer) -> None:
    """A 2025-03-26 batch: one missing scope refuses the whole request, naming what the calls need."""
    token = mint_for(issuer, tickets, "tickets:read")
    batch = [tool_call("list_tickets", {}, 1), tool_call("update_ticket", {"ticket_id": "tkt_0001"}, 2)]
    response = await post(tickets, batch, bearer(token))
    assert response.status_code == 403
    assert challenge_params(response)["scope"] == "tickets:read tickets:write"


async def test_modern_tool_call_is_judged_by_its_mcp_name_header(tickets: TicketsServer, issuer: TestIssuer) -> None:
    token = mint_for(issuer, tickets, "tickets:read")
    modern = {**bearer(token), "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call"}
    body = tool_call("list_tickets", {"customer_id": "cus_003"})
    body["params"]["_meta"] = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    refused = await post(tickets, body, {**modern, "Mcp-Name": "update_ticket"})
    passed = await post(tickets, body, {**modern, "Mcp-Name": "list_tickets"})
    assert refused.status_code == 403
    assert challenge_params(refused)["scope"] == "tickets:write"
    # Headers and body agree: the call runs (a lying header never gets this far, the SDK refuses it).
    assert passed.status_code == 200
    assert "tkt_" in passed.text


async def test_a_token_with_none_of_the_servers_scopes_is_refused_on_any_request(
    tickets: TicketsServer, issuer: TestIssuer
) -> None:
    token = mint_for(issuer, tickets, "crm:read")
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    response = await post(tickets, initialize, bearer(token))
    assert response.status_code == 403
    assert challenge_params(response)["scope"] == "tickets:read tickets:write"


@pytest.mark.parametrize("authorization", [None, "Bearer", "Basic dXNlcjpwYXNz"])
async def test_no_credentials_get_a_challenge_without_an_error_code(
    tickets: TicketsServer, authorization: str | None
) -> None:
    """RFC 6750 §3.1: a request without a bearer token gets no `error` attribute."""
    response = await post(
        tickets, tool_call("list_tickets", {}), {"Authorization": authorization} if authorization else {}
    )
    assert response.status_code == 401
    params = challenge_params(response)
    assert set(params) == {"resource_metadata"}


async def test_a_bad_token_gets_invalid_token_with_a_generic_description(tickets: TicketsServer) -> None:
    response = await post(tickets, tool_call("list_tickets", {}), bearer("not-a-jwt"))
    assert response.status_code == 401
    params = challenge_params(response)
    assert params["error"] == "invalid_token"
    assert params["error_description"] == "The access token is invalid or expired"


async def test_an_oversized_legacy_body_is_refused(tickets: TicketsServer, issuer: TestIssuer) -> None:
    token = mint_for(issuer, tickets, "tickets:read tickets:write")
    body = tool_call("create_ticket", {"customer_id": "cus_001", "title": "x", "description": "y" * (5 * 1024 * 1024)})
    response = await post(tickets, body, bearer(token))
    assert response.status_code == 413


async def test_tools_list_tells_clients_each_tools_scopes(tickets: TicketsServer, issuer: TestIssuer) -> None:
    async with legacy_session(tickets.mcp_url, mint_for(issuer, tickets, "tickets:read")) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert {name: (tool.meta or {}).get("oauth-tokens/required-scopes") for name, tool in tools.items()} == {
        "list_tickets": ["tickets:read"],
        "get_ticket": ["tickets:read"],
        "create_ticket": ["tickets:write"],
        "update_ticket": ["tickets:write"],
    }
