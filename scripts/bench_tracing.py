"""`make bench` rows for what tracing costs: `customer_briefing` with tracing off and on, side by side.

Two topologies run at once, one untraced (as by default) and one writing every span to trace files (as
`make up` does); calls alternate between them, so a slow moment of the machine hits both alike. With
tracing off no TracerProvider, span processor or exporter exists, so the "off" row is the baseline.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from tests.support.topology import Topology, running_topology

Row = tuple[str, int, float, float, float]

TOOL = "customer_briefing"
ARGUMENTS = {"customer_id": "cus_001"}


def _row(name: str, samples: list[float], elapsed: float) -> Row:
    quantiles = statistics.quantiles(samples, n=100)
    return name, len(samples), statistics.median(samples), quantiles[94], len(samples) / elapsed


async def bench_tracing(workdir: Path, runs: int) -> list[Row]:
    """`runs` alternating briefings against an untraced and a traced topology; one row for each."""
    samples: dict[bool, list[float]] = {False: [], True: []}
    elapsed = {False: 0.0, True: 0.0}
    with (
        running_topology(workdir / "tracing-off") as untraced,
        running_topology(workdir / "tracing-on", traced=True) as traced,
    ):
        topologies: dict[bool, Topology] = {False: untraced, True: traced}
        async with (
            topologies[False].user_session("alice") as off,
            topologies[True].user_session("alice") as on,
        ):
            clients = {False: off, True: on}
            for client in clients.values():
                await client.call_tool(TOOL, ARGUMENTS)  # warm-up: sessions, JWKS, crm-mcp's token
            for _ in range(runs):
                for enabled, client in clients.items():
                    begin = time.perf_counter()
                    await client.call_tool(TOOL, ARGUMENTS)
                    took = time.perf_counter() - begin
                    samples[enabled].append(took * 1000)
                    elapsed[enabled] += took
    return [
        _row(f"tool {TOOL}, tracing off", samples[False], elapsed[False]),
        _row(f"tool {TOOL}, tracing on (trace files)", samples[True], elapsed[True]),
    ]
