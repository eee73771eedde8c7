"""Bench group: requests, not times. How often do 100 concurrent tool calls reach the token endpoint and the JWKS?

Counted by the auth-server itself (its access log), not by what the clients believe they sent. crm-mcp is
restarted first, so its client-credentials token cache and its JWKS cache start empty; the user's session
is opened before counting starts.
"""

from __future__ import annotations

import anyio
from devkit.sessions import mcp_session
from devkit.topology import Topology

from scripts.bench.clients import auth_server_requests
from scripts.bench.measure import Count, Target

CALLS = 100


async def _concurrent_briefings(topology: Topology, token: str) -> tuple[int, int]:
    """(token requests, JWKS requests) the auth-server saw during CALLS concurrent customer_briefing calls."""
    async with mcp_session(topology.crm_mcp_url, token=token) as session:
        tokens_before = auth_server_requests(topology, "POST", "/token")
        jwks_before = auth_server_requests(topology, "GET", "/jwks")
        async with anyio.create_task_group() as group:
            for _ in range(CALLS):
                group.start_soon(session.call_tool, "customer_briefing", {"customer_id": "cus_001"})
        return (
            auth_server_requests(topology, "POST", "/token") - tokens_before,
            auth_server_requests(topology, "GET", "/jwks") - jwks_before,
        )


async def bench_counts(topology: Topology, token: str) -> list[Count]:
    """Token-endpoint and JWKS requests for 100 concurrent calls on a just-started crm-mcp, then warm."""
    topology.services["crm-mcp"].stop()
    topology.start("crm-mcp")
    cold_tokens, cold_jwks = await _concurrent_briefings(topology, token)
    warm_tokens, warm_jwks = await _concurrent_briefings(topology, token)
    return [
        Count(f"token-endpoint requests, {CALLS} concurrent calls, fresh crm-mcp", cold_tokens, Target("==", 1)),
        # The session validated its token before counting; a JWKS past its 5-minute TTL is refetched here.
        Count(f"JWKS requests, the same {CALLS} calls (TTL refreshes included)", cold_jwks),
        Count(f"token-endpoint requests, next {CALLS} concurrent calls (warm)", warm_tokens, Target("==", 0)),
        Count(f"JWKS requests, next {CALLS} concurrent calls (warm)", warm_jwks, Target("==", 0)),
    ]
