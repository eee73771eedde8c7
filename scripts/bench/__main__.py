"""`make bench`: what each design choice buys, as ratios against the code one would otherwise write.

Starts its own topology (seven real processes on free loopback ports, fresh secrets, rate limits lifted
so the naive baselines are not throttled), so it needs nothing running. Prints absolute figures, the
ratio table with each target and a `met` / `NOT MET` mark, request counts, and a scaling table; for a
target not met, a closing note says where the time goes. Absolute numbers are wall-clock on this
machine; ratios are measured side by side in one run. Timing is never asserted in tests: `--quick`
(tiny run counts) only checks that every group still runs.

`--repeat N` (`make bench REPEAT=3`) runs it all N times, each on a fresh topology, and ends with each
ratio's N figures and spread, so noise can be told from a real miss. `--profile` (`make bench
PROFILE=1`) also prints cProfile's top functions for the two paths with targets (scripts.bench.profiles).

Each measurement group is one function in its own module; to add a ratio, return one more `Ratio`
from a group (measure.paired_latency or measure.interleaved_throughputs + throughput_ratio).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from auth_server.config import default_config_text
from devkit.local_servers import MissingServer
from devkit.scaled import plain_servers, running_scaled_topology
from devkit.sessions import mcp_session
from devkit.topology import Topology, running_topology

from scripts.bench.clients import bare_mcp_server, customers_json
from scripts.bench.counts import bench_counts
from scripts.bench.dpop import bench_dpop
from scripts.bench.exchange import bench_exchange
from scripts.bench.measure import SCALE, Count, Ratio, Row
from scripts.bench.naive import bench_naive
from scripts.bench.overhead import bench_overhead
from scripts.bench.profiles import bench_tool_profiles
from scripts.bench.replicas import bench_replicas
from scripts.bench.report import print_notes, print_ratios, print_rows, print_scaling, print_spread
from scripts.bench.tool_calls import bench_client_credentials, bench_scaling, bench_tool_calls
from scripts.bench.tracing import bench_tracing
from scripts.bench.validation import bench_validation

UNTHROTTLED = "{ burst = 1000000, per_minute = 1000000 }"


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    counts: list[Count] = field(default_factory=list)
    scaling: list[Row] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)


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


async def bench_topology(topology: Topology, results: Results, *, profile: bool) -> None:
    progress("client-credentials tokens")
    rows, ratios = await bench_client_credentials(topology)
    results.rows += rows
    results.ratios += ratios
    token = await topology.user_token("alice")
    with bare_mcp_server(topology, await customers_json(topology, token)) as bare_server:
        async with (
            mcp_session(topology.crm_mcp_url, token=token) as crm_mcp,
            mcp_session(f"{bare_server.url}/mcp", token=token) as bare,
        ):
            progress("tool calls")
            results.rows += await bench_tool_calls(crm_mcp)
            progress("crm-mcp's own overhead")
            results.ratios += await bench_overhead(topology, crm_mcp, (bare_server, bare), token)
            progress("customer_briefing against the naive client")
            results.ratios += await bench_naive(topology, crm_mcp, token)
            progress("scaling")
            results.scaling += await bench_scaling(crm_mcp)
        if profile:
            progress("profiles of crm-mcp and the bare server")
            results.profiles.append(await bench_tool_profiles(topology, bare_server, token, SCALE(200)))
    progress("DPoP proofs, and a DPoP-bound call against a bearer call")
    rows, ratios = await bench_dpop(topology, token)
    results.rows += rows
    results.ratios += ratios
    progress("token exchange (pattern 3b) against the cascade")
    rows, ratios = await bench_exchange(topology, token)
    results.rows += rows
    results.ratios += ratios
    progress("tracing off and on (a second, traced topology)")
    results.rows += await bench_tracing(topology)
    progress("token-endpoint and JWKS requests (crm-mcp restarted)")
    results.counts += await bench_counts(topology, token)


async def main_async(workdir: Path, profile: bool) -> Results:
    results = Results()
    progress("token validation")
    rows, ratios, profiles = await bench_validation(profile=profile)
    results.rows += rows
    results.ratios += ratios
    results.profiles += [profiles] if profiles else []
    print("Starting the topology on free loopback ports…", flush=True)
    with running_topology(workdir, overrides=unthrottled_settings(workdir)) as topology:
        await bench_topology(topology, results, profile=profile)
    scaled = workdir / "scaled"
    scaled.mkdir(mode=0o755)  # PostgreSQL runs as the postgres user when we are root
    await bench_scaled(scaled, results)
    return results


async def bench_scaled(workdir: Path, results: Results) -> None:
    """The replica rows, on a scaled topology (PostgreSQL, Redis, HAProxy from Debian; skipped if missing)."""
    if SCALE.quick:  # ~17 more processes: tests/scaleout/test_single_flight.py runs this group instead
        print("Skipping the replica rows (--quick): tests/scaleout runs them.", flush=True)
        return
    progress("token requests and throughput at 1 and 3 crm-mcp replicas (a scaled topology)")
    try:
        with running_scaled_topology(
            workdir, overrides=unthrottled_settings(workdir), servers=plain_servers(workdir / "servers")
        ) as scaled:
            counts, rows = await bench_replicas(scaled)
    except MissingServer as missing:
        print(f"Skipped the replica rows: {missing}", flush=True)
        return
    except subprocess.CalledProcessError as failed:  # a server that would not start: keep every other row
        print(f"Skipped the replica rows: {failed.cmd[0] if failed.cmd else 'a server'} failed ({failed})", flush=True)
        return
    results.counts += counts
    results.rows += rows


def print_results(results: Results) -> None:
    print_rows(results.rows)
    print_ratios(results.ratios, results.counts)
    print("\nsearch_customers throughput by concurrent callers:")
    print_scaling(results.scaling, os.cpu_count() or 1)
    for profile in results.profiles:
        print(f"\n{profile}")
    print_notes(results.ratios, results.counts)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="tiny run counts: only checks that every group runs")
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="run N times; print each ratio's spread")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions of both target paths")
    arguments = parser.parse_args(argv)
    if arguments.repeat < 1:
        parser.error("--repeat must be 1 or more")
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.quick:
        SCALE.factor = 0.05
    runs: list[Results] = []
    for run in range(arguments.repeat):
        if arguments.repeat > 1:
            print(f"\n=== Run {run + 1} of {arguments.repeat} ===", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
            # PostgreSQL, run as the postgres user when we are root, must pass through this private (0700)
            # directory to its own: execute only, so it still cannot list the topology's secrets.
            Path(workdir).chmod(0o711)
            runs.append(anyio.run(main_async, Path(workdir), arguments.profile))
        print_results(runs[-1])
    if arguments.repeat > 1:
        print_spread([run.ratios for run in runs], [run.counts for run in runs])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
