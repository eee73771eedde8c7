"""`make bench`: what each design choice buys, as ratios against the code one would otherwise write.

Starts its own topology (seven real processes on free loopback ports, fresh secrets, rate limits lifted
so the naive baselines are not throttled), so it needs nothing running. Prints absolute figures, the
ratio table with each target and a `met` / `NOT MET` mark, request counts, and a scaling table; for a
target not met, a closing note says where the time goes. Absolute numbers are wall-clock on this
machine; ratios are measured side by side in one run. Timing is never asserted in tests: `--quick`
(tiny run counts) only checks that every group still runs.

Each measurement group is one function in its own module; to add a ratio, return one more `Ratio`
from a group (measure.paired_latency or measure.interleaved_throughputs + throughput_ratio).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from auth_server.config import default_config_text

from scripts.bench.clients import bare_mcp_server, bearer_session
from scripts.bench.counts import bench_counts
from scripts.bench.exchange import bench_exchange
from scripts.bench.measure import SCALE, Count, Ratio, Row
from scripts.bench.naive import bench_naive
from scripts.bench.overhead import bench_overhead
from scripts.bench.report import print_notes, print_ratios, print_rows, print_scaling
from scripts.bench.tool_calls import bench_client_credentials, bench_scaling, bench_tool_calls
from scripts.bench.tracing import bench_tracing
from scripts.bench.validation import bench_validation
from tests.support.topology import Topology, running_topology

UNTHROTTLED = "{ burst = 1000000, per_minute = 1000000 }"


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    counts: list[Count] = field(default_factory=list)
    scaling: list[Row] = field(default_factory=list)


def unthrottled_settings(workdir: Path) -> dict[str, str]:
    """Settings that lift the auth-server's and weather-api's rate limits (the naive client is not to be throttled)."""
    limit = re.compile(r"^(\w+) = \{ burst = \d+, per_minute = \d+ \}", re.MULTILINE)
    config, replaced = limit.subn(rf"\1 = {UNTHROTTLED}", default_config_text())
    if replaced == 0:
        raise RuntimeError("auth-server.toml has no [rate_limits] lines the bench recognises")
    path = workdir / "auth-server.toml"
    path.write_text(config, encoding="utf-8")
    return {"AUTH_SERVER_CONFIG": str(path), "WEATHER_API_RATE_LIMIT": "1000000"}


def progress(what: str) -> None:
    print(f"Measuring {what}…", flush=True)


async def bench_topology(topology: Topology, results: Results) -> None:
    progress("client-credentials tokens")
    rows, ratios = await bench_client_credentials(topology)
    results.rows += rows
    results.ratios += ratios
    token = await topology.user_token("alice")
    with bare_mcp_server(topology) as bare_server:
        async with (
            bearer_session(topology.crm_mcp_url, token) as crm_mcp,
            bearer_session(f"{bare_server.url}/mcp", token) as bare,
        ):
            progress("tool calls")
            results.rows += await bench_tool_calls(crm_mcp)
            progress("crm-mcp's own overhead")
            results.ratios += await bench_overhead(topology, crm_mcp, (bare_server, bare), token)
            progress("customer_briefing against the naive client")
            results.ratios += await bench_naive(topology, crm_mcp, token)
            progress("scaling")
            results.scaling += await bench_scaling(crm_mcp)
    progress("token exchange (pattern 3b) against the cascade")
    rows, ratios = await bench_exchange(topology, token)
    results.rows += rows
    results.ratios += ratios
    progress("tracing off and on (a second, traced topology)")
    results.rows += await bench_tracing(topology)
    progress("token-endpoint and JWKS requests (crm-mcp restarted)")
    results.counts += await bench_counts(topology, token)


async def main_async(workdir: Path) -> Results:
    results = Results()
    progress("token validation")
    rows, ratios = await bench_validation()
    results.rows += rows
    results.ratios += ratios
    print("Starting the topology on free loopback ports…", flush=True)
    with running_topology(workdir, overrides=unthrottled_settings(workdir)) as topology:
        await bench_topology(topology, results)
    return results


def main() -> int:
    if "--quick" in sys.argv[1:]:
        SCALE.factor = 0.05
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        results = anyio.run(main_async, Path(workdir))
    print_rows(results.rows)
    print_ratios(results.ratios, results.counts)
    print("\nsearch_customers throughput by concurrent callers:")
    print_scaling(results.scaling, os.cpu_count() or 1)
    print_notes(results.ratios, results.counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
