"""tickets-mcp through the official MCP client: per-tool scopes, provenance from the token, errors."""

from __future__ import annotations

from typing import Any

import devkit.sessions
import pytest
from devkit.tokens import TestIssuer
from mcp import MCPError
from mcp.types import CallToolResult, TextContent

from tests.tickets_mcp.conftest import TicketsServer, legacy_session, mint_for

pytestmark = pytest.mark.anyio


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return dict(result.structured_content)


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    assert isinstance(result.content[0], TextContent)
    return result.content[0].text


async def test_tools_declare_their_scopes_and_structured_output(tickets: TicketsServer, issuer: TestIssuer) -> None:
    async with legacy_session(tickets.mcp_url, mint_for(issuer, tickets, "tickets:read")) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == {"list_tickets", "get_ticket", "create_ticket", "update_ticket"}
    for name, scope in [("list_tickets", "tickets:read"), ("create_ticket", "tickets:write")]:
        assert scope in (tools[name].description or "")
        assert tools[name].output_schema is not None
    requested_by = tools["create_ticket"].input_schema["properties"]["requested_by"]
    assert "not authenticated" in requested_by["description"]


async def test_list_and_get_with_tickets_read(tickets: TicketsServer, issuer: TestIssuer) -> None:
    async with legacy_session(tickets.mcp_url, mint_for(issuer, tickets, "tickets:read")) as session:
        listed = structured(await session.call_tool("list_tickets", {"customer_id": "cus_001"}))
        assert listed["count"] == len(listed["tickets"]) >= 1
        assert {ticket["customer_id"] for ticket in listed["tickets"]} == {"cus_001"}

        first = listed["tickets"][-1]
        ticket = structured(await session.call_tool("get_ticket", {"ticket_id": first["id"]}))
        assert ticket["title"] == first["title"]
        assert ticket["created_by_client"] == "seed-data"

        open_only = structured(await session.call_tool("list_tickets", {"status": "resolved"}))
        assert {ticket["status"] for ticket in open_only["tickets"]} == {"resolved"}


async def test_create_records_the_client_from_the_token_and_requested_by_as_data(
    tickets: TicketsServer, issuer: TestIssuer
) -> None:
    token = mint_for(issuer, tickets, "tickets:read tickets:write", client_id="crm-mcp-agent")
    arguments = {
        "customer_id": "cus_002",
        "title": "Wrong delivery address",
        "description": "Parcel sent to the old office.",
        "priority": "high",
        "requested_by": "alice",
        # An attempt to set provenance through arguments: not a parameter, so it cannot be set.
        "created_by_client": "someone-else",
    }
    async with legacy_session(tickets.mcp_url, token) as session:
        created = structured(await session.call_tool("create_ticket", arguments))
        assert created["created_by_client"] == "crm-mcp-agent"
        assert created["requested_by"] == "alice"
        assert (created["status"], created["priority"]) == ("open", "high")

        fetched = structured(await session.call_tool("get_ticket", {"ticket_id": created["id"]}))
        assert fetched == created


async def test_update_changes_status_and_adds_an_attributed_comment(tickets: TicketsServer, issuer: TestIssuer) -> None:
    token = mint_for(issuer, tickets, "tickets:read tickets:write", client_id="support-console")
    async with legacy_session(tickets.mcp_url, token) as session:
        created = structured(await session.call_tool("create_ticket", {"customer_id": "cus_007", "title": "Login"}))
        updated = structured(
            await session.call_tool(
                "update_ticket",
                {"ticket_id": created["id"], "status": "in_progress", "comment": "Looking into it."},
            )
        )
    assert updated["status"] == "in_progress"
    assert updated["priority"] == created["priority"]
    assert [(c["text"], c["by_client"]) for c in updated["comments"]] == [("Looking into it.", "support-console")]


async def test_read_only_token_cannot_write(tickets: TicketsServer, issuer: TestIssuer) -> None:
    """The 403 step-up challenge comes before the tool: nothing is written (the challenge: test_step_up.py)."""
    async with legacy_session(tickets.mcp_url, mint_for(issuer, tickets, "tickets:read")) as session:
        with pytest.raises(MCPError):
            await session.call_tool("update_ticket", {"ticket_id": "tkt_0001", "status": "closed"})
        ticket = structured(await session.call_tool("get_ticket", {"ticket_id": "tkt_0001"}))
    assert ticket["status"] != "closed"


async def test_write_only_token_cannot_read(tickets: TicketsServer, issuer: TestIssuer) -> None:
    async with legacy_session(tickets.mcp_url, mint_for(issuer, tickets, "tickets:write")) as session:
        with pytest.raises(MCPError):
            await session.call_tool("list_tickets", {})


async def test_unknown_ticket_and_empty_update_are_tool_errors(tickets: TicketsServer, issuer: TestIssuer) -> None:
    token = mint_for(issuer, tickets, "tickets:read tickets:write")
    async with legacy_session(tickets.mcp_url, token) as session:
        missing = await session.call_tool("get_ticket", {"ticket_id": "tkt_99999"})
        empty_update = await session.call_tool("update_ticket", {"ticket_id": "tkt_0001"})
        bad_status = await session.call_tool("list_tickets", {"status": "lost"})
    assert "not found" in error_text(missing)
    assert "Nothing to update" in error_text(empty_update)
    assert bad_status.is_error


async def test_modern_stateless_protocol_enforces_the_same_scopes(tickets: TicketsServer, issuer: TestIssuer) -> None:
    """`mcp.Client` in its default mode negotiates 2026-07-28: no session, auth on every request."""
    token = mint_for(issuer, tickets, "tickets:read")
    async with devkit.sessions.mcp_session(tickets.mcp_url, token=token, http_timeout=10.0) as client:
        listed = await client.call_tool("list_tickets", {"customer_id": "cus_003"})
        with pytest.raises(MCPError):
            await client.call_tool("create_ticket", {"customer_id": "cus_003", "title": "Nope"})
        after = await client.call_tool("list_tickets", {"customer_id": "cus_003"})
    assert structured(listed)["count"] >= 1
    assert structured(after)["count"] == structured(listed)["count"]
