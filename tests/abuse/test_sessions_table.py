"""Session table exhaustion, scaled down: one user opening MCP sessions in a loop must not lock others out.

Measured on main before the fix: one user with a crm:read token opened 10,000 sessions (2025-11-25
protocol) in 29 s, crm-mcp's RSS went from 91 to 507 MiB, and then every new session of every user got
503 "Too many open sessions". Here a crm-mcp with small caps (MCP_MAX_SESSIONS=100,
MCP_MAX_SESSIONS_PER_USER=10) runs beside the session's topology, with its settings otherwise (so the
users' tokens for crm-mcp are valid for it too, as in tests/integration/test_hanging_tickets_mcp.py), bob
opens OPENED sessions there (ten times the table), and the bounded outcome is asserted: bob holds at most
his cap, alice still connects and works, and that crm-mcp's RSS grows by less than RSS_GROWTH_BOUND
(without the cap, 1,000 live sessions cost about 40 MiB).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from devkit.processes import ServiceProcess
from devkit.sessions import mcp_session
from devkit.topology import Topology

from tests.shared.test_mcp_hardening import INITIALIZE, MCP_HEADERS

pytestmark = pytest.mark.anyio

PER_USER = 10
TOTAL = 100
OPENED = 1000
CONCURRENCY = 8
RSS_GROWTH_BOUND = 10 * 1024 * 1024
PING = {"jsonrpc": "2.0", "id": 2, "method": "ping"}


@pytest.fixture
def capped_crm_mcp(topology: Topology, tmp_path: Path) -> Iterator[ServiceProcess]:
    """A crm-mcp of its own with the small caps (the flood never reaches the shared one)."""
    caps = {"MCP_MAX_SESSIONS": str(TOTAL), "MCP_MAX_SESSIONS_PER_USER": str(PER_USER)}
    with topology.extra("crm-mcp-capped", workdir=tmp_path, **caps) as crm_mcp:
        yield crm_mcp


async def open_sessions(url: str, token: str, count: int, concurrency: int = CONCURRENCY) -> list[str]:
    """Try to open `count` sessions with raw initialize requests, `concurrency` at a time; the ids opened.

    Only this user may be refused (429: all of his sessions are busy, his own openings included).
    """
    ids: list[str | None] = [None] * count
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(http: httpx2.AsyncClient, index: int) -> None:
        async with limiter:
            answer = await http.post(url, json=INITIALIZE, headers=headers)
        assert answer.status_code in (200, 429), answer.text
        if answer.status_code == 200:
            ids[index] = answer.headers["mcp-session-id"]

    with anyio.fail_after(120):
        async with httpx2.AsyncClient(timeout=30) as http, anyio.create_task_group() as group:
            for index in range(count):
                group.start_soon(one, http, index)
    return [session_id for session_id in ids if session_id is not None]


async def live(url: str, token: str, session_ids: list[str]) -> list[str]:
    """The sessions among `session_ids` that still answer a ping (an ended one answers 404)."""
    alive: list[str] = []
    async with httpx2.AsyncClient(timeout=30) as http:
        for session_id in session_ids:
            headers = {
                **MCP_HEADERS,
                "Authorization": f"Bearer {token}",
                "Mcp-Session-Id": session_id,
                "MCP-Protocol-Version": "2025-11-25",
            }
            answer = await http.post(url, json=PING, headers=headers)
            assert answer.status_code in (200, 404), answer.text
            if answer.status_code == 200:
                alive.append(session_id)
    return alive


async def test_one_user_flooding_sessions_keeps_his_cap_and_others_connect(
    topology: Topology, capped_crm_mcp: ServiceProcess
) -> None:
    url = capped_crm_mcp.url + "/mcp"
    bob = await topology.user_token("bob", scope="crm:read")
    rss_before = capped_crm_mcp.resident_bytes()

    opened = await open_sessions(url, bob, OPENED)

    rss_after = capped_crm_mcp.resident_bytes()
    assert len(opened) > OPENED // 2  # most openings succeed: the flooder mostly loses his own oldest sessions
    alive = await live(url, bob, opened)
    assert len(alive) <= PER_USER
    # The flood may end with him under his cap (an opening admitted, and room made for it, that ended without a
    # session; a session the SDK ended itself is forgotten when pinged): below it, new sessions evict nothing.
    held = alive + await open_sessions(url, bob, PER_USER - len(alive), concurrency=1)
    assert await live(url, bob, held) == held  # pinged in order: held[0] is now his least recently used
    # Not locked out either: at his cap, his next session evicts his least recently used one, not the newest.
    (newest,) = await open_sessions(url, bob, 1)
    assert set(await live(url, bob, [*held, newest])) == {*held[1:], newest}
    growth = rss_after - rss_before
    assert growth < RSS_GROWTH_BOUND, f"crm-mcp's RSS grew by {growth / 2**20:.1f} MiB for {OPENED} sessions"

    alice = await topology.user_token("alice")
    async with mcp_session(url, token=alice) as client:
        result = await client.call_tool("search_customers", {})
    assert not result.is_error
