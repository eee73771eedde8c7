"""Bench group: crm-mcp's own overhead on a tool call.

crm-mcp's `search_customers` is compared with what it cannot avoid: one MCP hop to a server with the
same SDK and the same auth but a no-op tool (scripts.bench.bare_mcp), plus the same request sent
straight to crm-api with the same token. What is left is crm-mcp's own work: the per-tool scope
check, forwarding the token, parsing crm-api's answer into models and serializing the result.
"""

from __future__ import annotations

import httpx2
from mcp import Client

from scripts.bench.measure import SCALE, Ratio, Target, mean_ms, paired_latency
from tests.support.topology import Topology

OVERHEAD_TARGET = Target("<=", 1.2)


async def bench_overhead(topology: Topology, crm_mcp: Client, bare: Client, token: str) -> list[Ratio]:
    """search_customers via crm-mcp against (bare MCP no-op tool) + (GET crm-api /customers directly)."""
    async with httpx2.AsyncClient(
        base_url=topology.env["CRM_API_URL"], headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as crm_api:

        async def direct_search() -> None:
            response = await crm_api.get("/customers", params={"q": ""})
            response.raise_for_status()
            response.json()

        async def via_crm_mcp() -> None:
            await crm_mcp.call_tool("search_customers", {"query": ""})

        async def bare_hop() -> None:
            await bare.call_tool("noop", {})

        ratio = await paired_latency(
            "tool via crm-mcp vs bare MCP hop + direct crm-api call",
            via_crm_mcp,
            [bare_hop, direct_search],
            calls=20,
            target=OVERHEAD_TARGET,
        )
        if ratio.met is False:
            hop, direct, ours = [await mean_ms(step, SCALE(20)) for step in (bare_hop, direct_search, via_crm_mcp)]
            ratio = Ratio(
                ratio.name,
                ratio.ours,
                ratio.baseline,
                ratio.unit,
                ratio.ratio,
                ratio.target,
                diagnosis=(
                    f"  Measured again one after the other: bare MCP hop {hop:.2f} ms, direct crm-api call "
                    f"{direct:.2f} ms, via crm-mcp {ours:.2f} ms; crm-mcp's own share {ours - hop - direct:.2f} ms.\n"
                    "  That share is the tool's scope check, the token forwarding, pydantic validation of crm-api's"
                    " answer\n  and the structured result; with five services on one machine the extra hop also "
                    "competes for the CPU."
                ),
            )
    return [ratio]
