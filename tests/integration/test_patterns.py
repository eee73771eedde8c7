"""Each pattern end to end: a real user logs in through the real OAuth flow and calls crm-mcp's tools.

Tests that reach crm-api take `crm_api_topology` and run in both CRM_API_AUTH_MODEs (3 cascade, 3b exchange).
"""

from __future__ import annotations

from typing import Any

import pytest
from devkit.topology import Topology
from mcp import Client
from mcp.types import CallToolResult, TextContent

pytestmark = pytest.mark.anyio


def text_of(result: CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, TextContent))


async def call_ok(client: Client, tool: str, arguments: dict[str, Any]) -> Any:
    """Call a tool that must succeed; return its structured result (unwrapping {"result": ...})."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool} failed: {text_of(result)}"
    content = result.structured_content
    return content["result"] if isinstance(content, dict) and set(content) == {"result"} else content


async def call_error(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    """Call a tool that must fail with a tool error; return the error text."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} unexpectedly succeeded: {result.structured_content}"
    return text_of(result)


async def test_pattern3_shows_only_the_callers_customers(crm_api_topology: Topology) -> None:
    async with crm_api_topology.user_session("alice") as alice:
        alice_customers = await call_ok(alice, "search_customers", {"query": ""})
    async with crm_api_topology.user_session("bob") as bob:
        bob_customers = await call_ok(bob, "search_customers", {"query": ""})

    assert alice_customers
    assert bob_customers
    assert {c["owner"] for c in alice_customers} == {"alice"}
    assert {c["owner"] for c in bob_customers} == {"bob"}
    assert not {c["id"] for c in alice_customers} & {c["id"] for c in bob_customers}


async def test_pattern3_another_reps_customer_is_not_found(crm_api_topology: Topology) -> None:
    async with crm_api_topology.user_session("bob") as bob:
        bobs_id = (await call_ok(bob, "search_customers", {"query": ""}))[0]["id"]
    async with crm_api_topology.user_session("alice") as alice:
        error = await call_error(alice, "get_customer", {"customer_id": bobs_id})
    assert "crm-api" in error
    assert "404" in error


async def test_pattern3_write_goes_through_as_the_user(crm_api_topology: Topology) -> None:
    async with crm_api_topology.user_session("alice") as alice:
        customer_id = (await call_ok(alice, "search_customers", {"query": ""}))[0]["id"]
        updated = await call_ok(alice, "add_customer_note", {"customer_id": customer_id, "note": "Called re renewal"})
        again = await call_ok(alice, "get_customer", {"customer_id": customer_id})
    assert any("Called re renewal" in str(note) for note in updated["notes"])
    assert updated["notes"] == again["notes"]


async def test_pattern2_client_credentials_lists_and_opens_tickets(topology: Topology) -> None:
    async with topology.user_session("alice") as alice:
        customer_id = (await call_ok(alice, "search_customers", {"query": ""}))[0]["id"]
        before = await call_ok(alice, "list_customer_tickets", {"customer_id": customer_id})
        ticket = await call_ok(
            alice,
            "open_ticket",
            {
                "customer_id": customer_id,
                "title": "Printer on fire",
                "description": "Smoke",
                "priority": "high",
            },
        )
        after = await call_ok(alice, "list_customer_tickets", {"customer_id": customer_id})

    assert ticket["customer_id"] == customer_id
    # Identity from the token (crm-mcp's own client), the user only as data.
    assert ticket["created_by_client"] == topology.env["CRM_MCP_CLIENT_ID"]
    assert ticket["requested_by"] == "alice"
    assert len(after) == len(before) + 1
    assert ticket["id"] in {t["id"] for t in after}


async def test_pattern2_cannot_reach_another_reps_customer_tickets(topology: Topology) -> None:
    async with topology.user_session("bob") as bob:
        bobs_id = (await call_ok(bob, "search_customers", {"query": ""}))[0]["id"]
    async with topology.user_session("alice") as alice:
        error = await call_error(alice, "list_customer_tickets", {"customer_id": bobs_id})
    assert "404" in error


async def test_pattern1_api_key_weather(topology: Topology) -> None:
    async with topology.user_session("alice") as alice:
        weather = await call_ok(alice, "get_weather", {"city": "Berlin"})
    assert weather["city"] == "Berlin"
    assert isinstance(weather["temperature_c"], float | int)
    assert topology.env["WEATHER_API_KEY"] not in str(weather)


async def test_composite_briefing_uses_all_three_patterns(crm_api_topology: Topology) -> None:
    async with crm_api_topology.user_session("bob") as bob:
        customer = (await call_ok(bob, "search_customers", {"query": ""}))[0]
        briefing = await call_ok(bob, "customer_briefing", {"customer_id": customer["id"]})
    assert briefing["customer"]["id"] == customer["id"]
    assert briefing["weather"]["city"] == customer["city"]
    assert isinstance(briefing["open_tickets"], list)
    assert all(t["customer_id"] == customer["id"] and t["status"] == "open" for t in briefing["open_tickets"])
    assert briefing["unavailable"] == {}


async def test_tools_declare_what_they_need_and_take_no_credentials(topology: Topology) -> None:
    async with topology.user_session("alice") as alice:
        tools = (await alice.list_tools()).tools
    names = {tool.name for tool in tools}
    assert names >= {
        "search_customers",
        "get_customer",
        "list_customer_tickets",
        "open_ticket",
        "get_weather",
    }
    for tool in tools:
        schema = str(tool.input_schema).lower()
        assert not any(word in schema for word in ("api_key", "apikey", "secret", "token", "password"))
        assert "scope" in (tool.description or "").lower()


async def test_search_customers_without_a_query_lists_them_all(topology: Topology) -> None:
    async with topology.user_session("alice") as alice:
        everyone = await call_ok(alice, "search_customers", {})
        empty_query = await call_ok(alice, "search_customers", {"query": ""})
        in_tokyo = await call_ok(alice, "search_customers", {"query": "Tokyo"})
    assert len(everyone) > len(in_tokyo) >= 1
    assert everyone == empty_query


async def test_wrong_tool_arguments_are_explained_in_one_sentence(topology: Topology) -> None:
    async with topology.user_session("alice") as alice:
        text = await call_error(alice, "search_customers", {"query": "x" * 101})
        missing = await call_error(alice, "get_customer", {})
    assert text == "Invalid arguments for search_customers: query: String should have at most 100 characters."
    assert missing == "Invalid arguments for get_customer: customer_id: Field required."
