"""crm-mcp's seven tools, in process: what each declares, returns and refuses, in milliseconds per call.

The MCP SDK's in-process `Client` calls crm-mcp's own tools (`register_tools`, downstream clients from
`open_downstreams`), which reach the real crm-api, tickets-mcp and weather-api apps through an ASGI
transport (tests/crm_mcp/in_process.py says what is not real and why). The subprocess tests in
tests/integration prove the same over HTTP with every service started; these show one tool's behaviour
at a time. Failure modes: test_tools_in_process_failures.py; pattern 4: test_tools_in_process_calendar.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp.types import CallToolResult, TextContent
from oauth_tokens.mcp_step_up import SCOPES_META_KEY

from tests.crm_mcp.in_process import CLIENT_ID, TICKETS_MCP, InProcessTopology, in_process_topology

pytestmark = pytest.mark.anyio

# Every tool and the scopes it declares (tools.py's table): tools/list shows these, and the tool checks them.
DECLARED = {
    "search_customers": ["crm:read"],
    "get_customer": ["crm:read"],
    "add_customer_note": ["crm:write"],
    "list_customer_tickets": ["tickets:read"],
    "open_ticket": ["tickets:write"],
    "get_weather": ["weather:read"],
    "customer_briefing": ["crm:read", "tickets:read", "weather:read"],
}
ALL_SCOPES = "crm:read crm:write tickets:read tickets:write weather:read"
NEW_TICKET = {"customer_id": "cus_001", "title": "Printer on fire", "description": "Smoke", "priority": "urgent"}
ALICES = ["cus_001", "cus_002", "cus_003", "cus_004"]  # the demo data: bob owns cus_005..cus_008


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def topology(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessTopology]:
    async with in_process_topology(tmp_path_factory.mktemp("tools")) as running:
        yield running


async def call(topology: InProcessTopology, scope: str, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    """Call `tool` on a fresh crm-mcp as alice holding `scope`."""
    async with topology.as_caller(topology.user_token(scope)) as client:
        return await client.call_tool(tool, arguments)


def error_text(result: CallToolResult) -> str:
    """The message of a tool error (what the model reads)."""
    assert result.is_error, f"expected a tool error, got {result.structured_content}"
    return " ".join(block.text for block in result.content if isinstance(block, TextContent))


async def test_tools_list_shows_each_tools_one_scope_declaration_and_its_result_schema(
    topology: InProcessTopology,
) -> None:
    async with topology.as_caller(topology.user_token("crm:read")) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    assert {name: (tool.meta or {}).get(SCOPES_META_KEY) for name, tool in tools.items()} == DECLARED
    assert (tools["customer_briefing"].description or "").endswith(
        "Requires scopes crm:read, tickets:read and weather:read."
    )
    assert (tools["get_weather"].description or "").endswith("Requires scope weather:read.")
    # Structured output: every tool states the shape of its result.
    assert all(tool.output_schema is not None for tool in tools.values())
    assert set((tools["customer_briefing"].output_schema or {})["properties"]) == {
        "customer",
        "open_tickets",
        "weather",
        "unavailable",
    }


async def test_search_customers_lists_only_the_callers_own(topology: InProcessTopology) -> None:
    everything = await call(topology, "crm:read", "search_customers", {})
    in_paris = await call(topology, "crm:read", "search_customers", {"query": "Paris"})
    bobs = await call(topology, "crm:read", "search_customers", {"query": "Sydney"})

    assert [customer["id"] for customer in everything.structured_content["result"]] == ALICES
    assert [customer["id"] for customer in in_paris.structured_content["result"]] == ["cus_002"]
    assert bobs.structured_content == {"result": []}  # Sydney is bob's customer's city: crm-api filters by sub


async def test_get_customer_returns_the_customer_with_notes(topology: InProcessTopology) -> None:
    result = await call(topology, "crm:read", "get_customer", {"customer_id": "cus_003"})

    customer = result.structured_content or {}
    assert (customer["id"], customer["city"], customer["owner"]) == ("cus_003", "London", "alice")
    assert {"email", "notes", "tier"} <= set(customer)


async def test_add_customer_note_is_recorded_by_crm_api_as_the_caller(topology: InProcessTopology) -> None:
    result = await call(topology, "crm:write", "add_customer_note", {"customer_id": "cus_004", "note": "Call back"})

    last = (result.structured_content or {})["notes"][-1]
    # crm-api read the author from the forwarded token's sub (pattern 3): no actor, as nothing was exchanged.
    assert (last["text"], last["author"], last["actor"]) == ("Call back", "alice", None)


async def test_list_customer_tickets_calls_tickets_mcp_as_crm_mcp_itself(topology: InProcessTopology) -> None:
    topology.tickets_tokens.clear()
    async with topology.as_caller(topology.user_token(ALL_SCOPES)) as client:
        in_progress = await client.call_tool(
            "list_customer_tickets", {"customer_id": "cus_003", "status": "in_progress"}
        )
        still_open = await client.call_tool("list_customer_tickets", {"customer_id": "cus_003", "status": "open"})

    tickets = (in_progress.structured_content or {})["result"]
    assert [(ticket["customer_id"], ticket["status"]) for ticket in tickets] == [("cus_003", "in_progress")]
    assert still_open.structured_content == {"result": []}
    # Pattern 2: crm-mcp's own client-credentials token, for tickets-mcp's resource, not the user's token;
    # one for both calls, which share one kept MCP session.
    assert [(form["grant_type"], form["resource"]) for form in topology.tickets_tokens] == [
        ("client_credentials", TICKETS_MCP)
    ]


async def test_open_ticket_records_crm_mcp_as_creator_and_the_user_as_requester(topology: InProcessTopology) -> None:
    result = await call(topology, "crm:read tickets:write", "open_ticket", NEW_TICKET)

    ticket = result.structured_content or {}
    assert (ticket["title"], ticket["priority"], ticket["status"]) == ("Printer on fire", "urgent", "open")
    assert (ticket["created_by_client"], ticket["requested_by"]) == (CLIENT_ID, "alice")


async def test_get_weather_returns_the_providers_answer_mapped(topology: InProcessTopology) -> None:
    result = await call(topology, "weather:read", "get_weather", {"city": "Oslo"})

    weather = result.structured_content or {}
    assert set(weather) == {"city", "temperature_c", "condition", "humidity_percent", "wind_kph"}
    assert weather["city"] == "Oslo"


async def test_customer_briefing_joins_the_three_patterns(topology: InProcessTopology) -> None:
    result = await call(topology, "crm:read tickets:read weather:read", "customer_briefing", {"customer_id": "cus_001"})

    briefing = result.structured_content or {}
    assert briefing["customer"]["id"] == "cus_001"
    assert briefing["weather"]["city"] == briefing["customer"]["city"] == "Berlin"
    assert briefing["open_tickets"]
    assert all(ticket["status"] == "open" for ticket in briefing["open_tickets"])
    assert briefing["unavailable"] == {}


@pytest.mark.parametrize(
    ("tool", "arguments", "held", "message"),
    [
        ("add_customer_note", {"customer_id": "cus_001", "note": "x"}, "crm:read", "scope 'crm:write'"),
        ("open_ticket", NEW_TICKET, "crm:read", "scope 'tickets:write'"),
        ("get_weather", {"city": "Oslo"}, "crm:read", "scope 'weather:read'"),
        ("customer_briefing", {"customer_id": "cus_001"}, "crm:read", "scopes 'tickets:read', 'weather:read'"),
    ],
)
async def test_a_tool_refuses_a_caller_without_its_declared_scopes_before_calling_anything(
    topology: InProcessTopology, tool: str, arguments: dict[str, Any], held: str, message: str
) -> None:
    before = sum(topology.routes.requests.values())

    result = await call(topology, held, tool, arguments)

    assert f"Missing required {message} for this tool" in error_text(result)
    assert sum(topology.routes.requests.values()) == before  # no downstream was called


async def test_bad_arguments_are_named_in_one_sentence(topology: InProcessTopology) -> None:
    result = await call(topology, "crm:read", "get_customer", {"customer_id": "../admin"})

    assert error_text(result).startswith("Invalid arguments for get_customer: customer_id: String should match")
