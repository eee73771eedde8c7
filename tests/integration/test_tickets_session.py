"""Pattern 2's kept MCP session: shared by concurrent calls, kept through refused calls, survives a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from crm_mcp.downstream import DownstreamError
from crm_mcp.tickets_mcp_client import TicketsMcpClient
from devkit.topology import Topology

from tests.support.tickets_client import running_tickets_client

pytestmark = pytest.mark.anyio


@pytest.fixture
async def tickets(topology: Topology) -> AsyncIterator[TicketsMcpClient]:
    url, auth = topology.env["TICKETS_MCP_URL"], topology.tickets_auth()
    async with running_tickets_client(url, auth, timeout_seconds=5) as client:
        yield client


async def test_concurrent_calls_share_one_session(tickets: TicketsMcpClient) -> None:
    results: list[int] = []

    async def list_once() -> None:
        results.append(len(await tickets.list_tickets("cus_001")))

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(list_once)
    first = tickets._session
    await tickets.list_tickets("cus_002")

    assert len(results) == 20
    assert first is not None
    assert tickets._session is first


async def test_a_refused_call_keeps_the_session(tickets: TicketsMcpClient) -> None:
    await tickets.list_tickets("cus_001")
    session = tickets._session
    with pytest.raises(DownstreamError, match="tickets-mcp refused 'get_ticket'"):
        await tickets.call_tool("get_ticket", {"ticket_id": "tkt_does_not_exist"})
    assert tickets._session is session
    assert await tickets.list_tickets("cus_001") is not None


async def test_a_restart_of_tickets_mcp_is_invisible_to_the_next_call(
    topology: Topology, tickets: TicketsMcpClient
) -> None:
    """Either the kept session still works (protocol 2026-07-28 keeps no server-side session state) or a
    read-only call is retried once on a new session: the caller sees no error either way."""
    before = await tickets.list_tickets("cus_001")
    topology.services["tickets-mcp"].stop()
    topology.start("tickets-mcp")
    assert [t.id for t in await tickets.list_tickets("cus_001")] == [t.id for t in before]


async def test_closing_ends_the_session(tickets: TicketsMcpClient) -> None:
    await tickets.list_tickets("cus_001")
    session = tickets._session
    assert session is not None
    await tickets.aclose()
    assert session.closed.is_set()
