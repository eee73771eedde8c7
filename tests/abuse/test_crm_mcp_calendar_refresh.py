"""Fault: the calendar provider's token endpoint hangs while one user's grant is due for refresh.

Measured on main before the fix: five concurrent `list_my_meetings` of one user ended at 10, 20, 30, 40
and 50 s, because each waiter on the per-user lock ran its own refresh in turn. Now the refresh is one
flight per user grant: all five share the one refresh and its error, and end within one deadline.

A crm-mcp replica (same data dir and keys as the topology's crm-mcp) runs with CALENDAR_TOKEN_URL pointing
at a loopback server that never answers, a 2 s deadline and a refresh margin longer than any token's
lifetime, so every call refreshes. alice's grant is real: she connects through the whole flow first.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from devkit.sessions import mcp_session
from devkit.topology import Topology
from mcp.types import TextContent

from tests.integration.test_third_party_calendar import connected
from tests.support.crm_mcp_state import crm_mcp_vault
from tests.support.hanging import misbehaving_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

DEADLINE = 2
CALLERS = 5


async def test_concurrent_calls_of_one_user_share_one_refresh_against_a_hanging_token_endpoint(
    topology: Topology, tmp_path: Path
) -> None:
    issuer = topology.env["CALENDAR_AUTH_ISSUER"]
    await connected(topology, "alice")
    token = await topology.user_token("alice")
    ended: list[float] = []
    errors: list[str] = []
    async with misbehaving_server() as hanging:
        overrides = {
            "CALENDAR_TOKEN_URL": f"{hanging.url}/token",
            "CRM_MCP_DOWNSTREAM_TIMEOUT_SECONDS": str(DEADLINE),
            "CRM_MCP_CALENDAR_REFRESH_MARGIN_SECONDS": "100000",
        }
        try:
            with topology.extra("crm-mcp-hanging-calendar", workdir=tmp_path, **overrides) as replica:
                async with mcp_session(replica.url + "/mcp", token=token) as client:

                    async def list_meetings() -> None:
                        result = await client.call_tool("list_my_meetings", {})
                        ended.append(time.monotonic() - started)
                        assert result.is_error
                        errors.append(" ".join(b.text for b in result.content if isinstance(b, TextContent)))

                    started = time.monotonic()
                    with anyio.fail_after(CALLERS * DEADLINE + 10):  # the test itself never hangs
                        async with anyio.create_task_group() as group:
                            for _ in range(CALLERS):
                                group.start_soon(list_meetings)
        finally:
            async with crm_mcp_vault(topology.env) as vault:
                await vault.delete("alice", issuer)  # no grant left for the next test

    print(f"{CALLERS} list_my_meetings against a hanging calendar token endpoint ended at {sorted(ended)} s")
    assert len(errors) == CALLERS
    assert len(set(errors)) == 1, errors  # the one refresh's error, shared
    assert "did not answer" in errors[0]
    assert max(ended) < DEADLINE + 1  # in turn they would end one deadline apart
    assert hanging.connections == 1  # one refresh, not one per waiter
