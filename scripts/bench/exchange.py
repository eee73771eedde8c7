"""Bench group: pattern 3b (RFC 8693 token exchange) beside pattern 3 (token cascade).

A second crm-mcp runs in exchange mode beside the topology's cascade-mode one, with the same settings
(its resource identifier included, so the same user token is valid at both), and the same tool is called
through each: the ratio is what the exchange costs once its cache is warm. The cold rows are the exchange
request itself (crm-mcp's `TokenExchange`, its cache emptied before each call) against a cached exchange.
"""

from __future__ import annotations

from devkit.sessions import mcp_session
from devkit.topology import Topology
from oauth_tokens import TokenExchange

from scripts.bench.measure import Ratio, Row, Target, paired_latency, timed


async def bench_exchange(topology: Topology, token: str) -> tuple[list[Row], list[Ratio]]:
    """Exchange cold and warm, and search_customers in exchange mode against cascade mode."""
    env = topology.env
    exchange = TokenExchange(env["AUTH_TOKEN_URL"], env["CRM_MCP_CLIENT_ID"], **topology.crm_mcp_credential())

    async def cold() -> None:
        exchange.cache.clear()
        await exchange.token_for(token, resource=env["CRM_API_AUDIENCE"], scope="crm:read")

    async def warm() -> None:
        await exchange.token_for(token, resource=env["CRM_API_AUDIENCE"], scope="crm:read")

    try:
        rows = [
            await timed("token exchange (3b), from the token endpoint", 100, cold),
            await timed("token exchange (3b), cached", 5000, warm),
        ]
    finally:
        await exchange.aclose()
    with topology.extra("bench-crm-mcp-exchange", CRM_API_AUTH_MODE="exchange") as service:
        async with (
            mcp_session(topology.crm_mcp_url, token=token) as cascade,
            mcp_session(f"{service.url}/mcp", token=token) as exchanged,
        ):
            rows.append(
                await timed(
                    "tool search_customers (pattern 3b: exchange, warm)",
                    100,
                    lambda: exchanged.call_tool("search_customers", {}),
                )
            )
            ratio = await paired_latency(
                "search_customers: exchange mode (warm) vs cascade",
                lambda: exchanged.call_tool("search_customers", {}),
                [lambda: cascade.call_tool("search_customers", {})],
                calls=20,
                target=Target("<=", 1.1),
            )
    return rows, [ratio]
