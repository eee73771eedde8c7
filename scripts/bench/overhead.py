"""Bench group: crm-mcp's own overhead on a tool call.

crm-mcp's `search_customers` is compared with what it cannot avoid: one MCP hop to a server with the
same SDK and the same auth but a no-op tool (scripts.bench.bare_mcp), plus the same request sent
straight to crm-api with the same token. What is left is crm-mcp's own work: the per-tool scope
check, forwarding the token, parsing crm-api's answer into models and serializing the result (and
the client parsing that larger result). When the target is missed, the note shows the CPU each
process spends per call, since on a shared 2-core machine CPU is what a hop costs.
"""

from __future__ import annotations

import time

import httpx2
from mcp import Client

from scripts.bench.clients import cpu_seconds
from scripts.bench.measure import SCALE, Operation, Ratio, Target, paired_latency
from tests.support.processes import ServiceProcess
from tests.support.topology import Topology

OVERHEAD_TARGET = Target("<=", 1.2)


async def _cpu_ms_per_call(operation: Operation, processes: dict[str, ServiceProcess], calls: int) -> dict[str, float]:
    """Wall-clock ms per call, and CPU ms per call of the bench client and of each process in `processes`."""
    before = {name: cpu_seconds(process) for name, process in processes.items()}
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(calls):
        await operation()
    figures = {
        "wall clock": (time.perf_counter() - started) * 1000 / calls,
        "bench client CPU": (time.process_time() - cpu_started) * 1000 / calls,
    }
    for name, process in processes.items():
        figures[f"{name} CPU"] = (cpu_seconds(process) - before[name]) * 1000 / calls
    return figures


def _breakdown(label: str, figures: dict[str, float]) -> str:
    return f"    {label:<24}" + ", ".join(f"{name} {value:.2f}" for name, value in figures.items())


async def bench_overhead(
    topology: Topology, crm_mcp: Client, bare: tuple[ServiceProcess, Client], token: str
) -> list[Ratio]:
    """search_customers via crm-mcp against (bare MCP no-op tool) + (GET crm-api /customers directly)."""
    bare_server, bare_session = bare
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
            await bare_session.call_tool("noop", {})

        ratio = await paired_latency(
            "tool via crm-mcp vs bare MCP hop + direct crm-api call",
            via_crm_mcp,
            [bare_hop, direct_search],
            calls=20,
            target=OVERHEAD_TARGET,
        )
        if ratio.met is not False:
            return [ratio]
        crm_api_process, crm_mcp_process = topology.services["crm-api"], topology.services["crm-mcp"]
        calls = SCALE(40)
        lines = [
            "  Per call, in ms (CPU from /proc; the bench client is this process):",
            _breakdown(
                "via crm-mcp:",
                await _cpu_ms_per_call(via_crm_mcp, {"crm-mcp": crm_mcp_process, "crm-api": crm_api_process}, calls),
            ),
            _breakdown("bare MCP hop:", await _cpu_ms_per_call(bare_hop, {"bare server": bare_server}, calls)),
            _breakdown(
                "direct crm-api call:", await _cpu_ms_per_call(direct_search, {"crm-api": crm_api_process}, calls)
            ),
            "  crm-mcp's CPU beyond the bare server's is its own work (the tool's result model, structured",
            "  output, the downstream request); the client's extra CPU is parsing and checking that larger result.",
        ]
    return [ratio.with_diagnosis("\n".join(lines))]
