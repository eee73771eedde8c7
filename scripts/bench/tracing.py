"""Bench group: what tracing costs, `customer_briefing` with tracing off and on, side by side.

The bench's own topology is the untraced one (as by default); a second topology writes every span to trace
files (as `make up` does). Calls alternate between the two, so a slow moment of the machine hits both
alike. With tracing off no TracerProvider, span processor or exporter exists, so "off" is the baseline.
"""

from __future__ import annotations

import statistics
import time

from devkit.topology import Topology, running_topology

from scripts.bench.measure import SCALE, Row

TOOL = "customer_briefing"
ARGUMENTS = {"customer_id": "cus_001"}


def _row(name: str, samples: list[float], elapsed: float) -> Row:
    quantiles = statistics.quantiles(samples, n=100)
    return Row(name, len(samples), statistics.median(samples), quantiles[94], len(samples) / elapsed)


async def bench_tracing(untraced: Topology, runs: int = 100) -> list[Row]:
    """`runs` alternating briefings against `untraced` and a traced topology; one row for each."""
    runs = SCALE(runs)
    samples: dict[bool, list[float]] = {False: [], True: []}
    elapsed = {False: 0.0, True: 0.0}
    with running_topology(untraced.workdir / "tracing-on", traced=True) as traced:
        async with untraced.user_session("alice") as off, traced.user_session("alice") as on:
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
