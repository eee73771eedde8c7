"""No secret in any log or anything sent to a client: checked after every tool has run (this file sorts
last, so it also covers what the other integration tests did, but it calls every tool itself first)."""

from __future__ import annotations

import pytest
from devkit.topology import Topology

pytestmark = pytest.mark.anyio

EVERY_TOOL = {
    "search_customers": {"query": ""},
    "get_customer": {"customer_id": "cus_001"},
    "add_customer_note": {"customer_id": "cus_001", "note": "secrets check"},
    "list_customer_tickets": {"customer_id": "cus_001"},
    "open_ticket": {"customer_id": "cus_001", "title": "Secrets check", "description": "-"},
    "get_weather": {"city": "Lisbon"},
    "customer_briefing": {"customer_id": "cus_001"},
    # And failures: another rep's customer, an unknown one.
    "get_customer ": {"customer_id": "cus_005"},
}


@pytest.fixture
async def exercised(crm_api_topology: Topology) -> Topology:
    """Both CRM_API_AUTH_MODEs: in exchange mode crm-mcp also holds the user's token and exchanged ones."""
    topology = crm_api_topology
    async with topology.user_session("alice") as alice:
        assert {tool.name for tool in (await alice.list_tools()).tools} >= {n.strip() for n in EVERY_TOOL}
        for name, arguments in EVERY_TOOL.items():
            await alice.call_tool(name.strip(), arguments)
    return topology


async def test_no_secret_ever_reaches_a_log(exercised: Topology) -> None:
    assert all(service.logs().strip() for service in exercised.services.values()), "a service wrote no log"
    logs = exercised.logs()
    for name, value in exercised.secrets.items():
        assert value not in logs, f"{name} appears in a service log"
    assert "eyJ" not in logs, "something JWT-shaped (a token) appears in a service log"


async def test_no_secret_ever_reaches_a_tool_result_or_schema(exercised: Topology) -> None:
    received = "\n".join(exercised.received)
    assert len(exercised.received) > len(EVERY_TOOL)
    for name, value in exercised.secrets.items():
        assert value not in received, f"{name} appears in something crm-mcp sent a client"
    assert "eyJ" not in received, "something JWT-shaped (a token) appears in a tool result"
