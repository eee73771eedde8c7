"""Bench groups: client-credentials tokens (cached against one request per call) and one tool call per pattern."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from devkit.topology import Topology
from mcp import Client

from scripts.bench.measure import Ratio, Row, concurrent, paired_latency, timed


async def bench_client_credentials(topology: Topology) -> tuple[list[Row], list[Ratio]]:
    """crm-mcp's token source for tickets-mcp: a token from its cache against a token request per call."""
    auth = topology.tickets_auth()

    async def fresh_token() -> None:
        auth.invalidate()
        await auth.get_token()

    try:
        rows = [
            await timed("client-credentials token, from the token endpoint", 100, fresh_token),
            await timed("client-credentials token, cached", 5000, auth.get_token),
        ]
        ratio = await paired_latency(
            "cached client-credentials token vs a token request per call",
            auth.get_token,
            [fresh_token],
            calls=20,
        )
    finally:
        await auth.aclose()
    return rows, [ratio]


async def bench_tool_calls(session: Client) -> list[Row]:
    """One tool per pattern, customer_briefing, and 10 concurrent callers, over one kept MCP session."""

    def tool(name: str, arguments: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
        return lambda: session.call_tool(name, arguments)

    return [
        await timed("tool get_weather (pattern 1: API key)", 100, tool("get_weather", {"city": "Berlin"})),
        await timed(
            "tool list_customer_tickets (pattern 2 + cascade check)",
            100,
            tool("list_customer_tickets", {"customer_id": "cus_001"}),
        ),
        await timed("tool search_customers (pattern 3: cascade)", 100, tool("search_customers", {"query": ""})),
        await timed("tool customer_briefing (all three)", 100, tool("customer_briefing", {"customer_id": "cus_001"})),
        await concurrent(
            "tool search_customers, 10 concurrent callers", 10, 20, tool("search_customers", {"query": ""})
        ),
    ]


async def bench_scaling(session: Client, callers: tuple[int, ...] = (1, 2, 4, 8)) -> list[Row]:
    """search_customers throughput at each number of concurrent callers (rows named by that number)."""
    return [
        await concurrent(str(count), count, 160 // count, lambda: session.call_tool("search_customers", {"query": ""}))
        for count in callers
    ]
