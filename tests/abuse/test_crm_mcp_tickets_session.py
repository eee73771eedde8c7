"""Faults at tickets-mcp (pattern 2) and what crm-mcp's kept MCP session makes of them.

- tickets-mcp hangs (its process stopped with SIGSTOP, so the kernel still accepts connections and nothing
  answers). Measured on main before the fix: one call's timeout ended the shared session ("session ended
  unexpectedly: no answer in time") and the other calls were retried on a new session, so five calls
  started 2 s apart ended after 10, 18, 16, 14 and 12 s. Now each ends within its own deadline, and the
  session survives: once tickets-mcp resumes, the next call is served on the same session.
- tickets-mcp restarts. Measured on main before the fix: the integration test of a stopped downstream
  failed 4 of 13 runs with "tickets-mcp is unreachable (connection failed)" right after the restart,
  because the refused session set-up was remembered for the back-off (1 s) and a restart quicker than
  that was refused from memory. Here the back-off is a minute, so that race is certain on main; now a
  refusal is not remembered (only a hang is), and the first call after the restart works.

The client is crm-mcp's own `TicketsMcpClient`, with crm-mcp's own client-credentials identity, against the
topology's real tickets-mcp and auth-server.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator

import anyio
import pytest
from crm_mcp.downstream import DownstreamError
from crm_mcp.tickets_mcp_client import TicketsMcpClient
from devkit.topology import Topology

from tests.support.tickets_client import running_tickets_client

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

DEADLINE = 2.0
CALLERS = 5
STAGGER_SECONDS = 0.4


@pytest.fixture
async def tickets(topology: Topology) -> AsyncIterator[TicketsMcpClient]:
    url, auth = topology.env["TICKETS_MCP_URL"], topology.tickets_auth()
    async with running_tickets_client(url, auth, timeout_seconds=DEADLINE, failure_backoff_seconds=60) as client:
        yield client


async def test_staggered_calls_against_a_hanging_tickets_mcp_end_within_one_deadline_each_and_keep_the_session(
    topology: Topology, tickets: TicketsMcpClient
) -> None:
    await tickets.list_tickets("cus_001")
    session = tickets._session
    assert session is not None
    process = topology.services["tickets-mcp"].process
    assert process is not None
    took: list[float] = []
    errors: list[str] = []

    async def list_tickets(delay: float) -> None:
        await anyio.sleep(delay)
        started = time.monotonic()
        with pytest.raises(DownstreamError) as failed:
            await tickets.list_tickets("cus_001")
        took.append(time.monotonic() - started)
        errors.append(str(failed.value))

    os.kill(process.pid, signal.SIGSTOP)
    try:
        with anyio.fail_after(CALLERS * DEADLINE * 2 + 10):  # the test itself never hangs
            async with anyio.create_task_group() as group:
                for caller in range(CALLERS):
                    group.start_soon(list_tickets, caller * STAGGER_SECONDS)
    finally:
        os.kill(process.pid, signal.SIGCONT)

    print(f"{CALLERS} staggered list_tickets against a stopped tickets-mcp took {[round(t, 2) for t in took]} s")
    assert errors == [f"tickets-mcp did not answer 'list_tickets' within {DEADLINE:g} s."] * CALLERS
    assert max(took) < DEADLINE + 1  # a retry on a new session would take a second deadline
    assert tickets._session is session
    assert await tickets.list_tickets("cus_001") is not None  # tickets-mcp resumed: the same session serves
    assert tickets._session is session


async def test_the_first_call_after_tickets_mcp_restarts_works(topology: Topology, tickets: TicketsMcpClient) -> None:
    before = await tickets.list_tickets("cus_001")
    topology.services["tickets-mcp"].stop()
    try:
        with pytest.raises(DownstreamError, match="tickets-mcp"):
            await tickets.list_tickets("cus_001")  # the session is gone and a new one is refused
        with pytest.raises(DownstreamError, match="unreachable"):  # still down: refused again, not from memory
            await tickets.list_tickets("cus_001")
    finally:
        topology.start("tickets-mcp")
    assert [t.id for t in await tickets.list_tickets("cus_001")] == [t.id for t in before]
