"""Through crm-mcp's tool, end to end: five concurrent `list_customer_tickets` against a tickets-mcp that
accepts connections and never answers all end together, with the same error, after about one deadline.

A second crm-mcp process runs with the topology's settings except TICKETS_MCP_URL (a loopback server in
this test that never answers) and a 2 s deadline; alice's token, obtained from the topology's crm-mcp, is
valid for it too (same resource identifier), and crm-api really checks the customer first.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from devkit.sessions import mcp_session
from devkit.topology import Topology
from mcp.types import TextContent

from tests.support.hanging import misbehaving_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

DEADLINE = 2
CALLERS = 5


async def test_five_concurrent_tool_calls_against_a_hanging_tickets_mcp_end_within_one_deadline(
    topology: Topology, tmp_path: Path
) -> None:
    token = await topology.user_token("alice")
    async with topology.user_session("alice") as alice:
        found = await alice.call_tool("search_customers", {"query": ""})
    assert found.structured_content is not None
    customer_id = found.structured_content["result"][0]["id"]

    async with misbehaving_server() as hanging:
        overrides = {"TICKETS_MCP_URL": f"{hanging.url}/mcp", "CRM_MCP_DOWNSTREAM_TIMEOUT_SECONDS": str(DEADLINE)}
        errors: list[str] = []
        with topology.extra("crm-mcp-hanging-tickets", workdir=tmp_path, **overrides) as crm_mcp:
            async with mcp_session(f"{crm_mcp.url}/mcp", token=token) as client:

                async def list_tickets() -> None:
                    result = await client.call_tool("list_customer_tickets", {"customer_id": customer_id})
                    assert result.is_error
                    errors.append(" ".join(b.text for b in result.content if isinstance(b, TextContent)))

                started = time.monotonic()
                with anyio.fail_after(CALLERS * DEADLINE + 10):
                    async with anyio.create_task_group() as group:
                        for _ in range(CALLERS):
                            group.start_soon(list_tickets)
                took = time.monotonic() - started

    print(f"{CALLERS} list_customer_tickets against a hanging tickets-mcp ended after {took:.2f} s")
    expected = (
        f"Error executing tool list_customer_tickets: tickets-mcp did not answer within {DEADLINE} s; try again later."
    )
    assert errors == [expected] * CALLERS
    assert 1 <= hanging.connections <= 2  # one shared session set-up, not one per call
    assert took < 3 * DEADLINE  # one after another they would take CALLERS deadlines
