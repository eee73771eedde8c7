"""`make bench`: measure the auth core and each pattern's tool call, and print a table.

Starts its own topology (seven real processes on free loopback ports, fresh secrets), so it needs
nothing running. Numbers are wall-clock on this machine; compare runs on the same machine only.
Timing is measured here and never asserted in tests.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from oauth_tokens import AccessTokenValidator, ValidatorConfig

from tests.support.tokens import TestIssuer
from tests.support.topology import Topology, running_topology

Row = tuple[str, int, float, float, float]


@dataclass
class Scale:
    """Multiplies every run count: `--quick` (0.05) is how the test suite checks the bench still runs."""

    factor: float = 1.0

    def __call__(self, runs: int) -> int:
        return max(5, int(runs * self.factor))


SCALE = Scale()


async def timed(name: str, runs: int, operation: Callable[[], Awaitable[Any]]) -> Row:
    """Run `operation` `runs` times after one warm-up call; return (name, runs, p50, p95, ops/s) in ms."""
    runs = SCALE(runs)
    await operation()
    samples = []
    started = time.perf_counter()
    for _ in range(runs):
        begin = time.perf_counter()
        await operation()
        samples.append((time.perf_counter() - begin) * 1000)
    elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(samples, n=100)
    return name, runs, statistics.median(samples), quantiles[94], runs / elapsed


async def concurrent(name: str, callers: int, rounds: int, operation: Callable[[], Awaitable[Any]]) -> Row:
    """`callers` concurrent loops of `operation`, `rounds` each; throughput and per-call latency."""
    samples: list[float] = []
    rounds = SCALE(rounds)

    async def loop() -> None:
        for _ in range(rounds):
            begin = time.perf_counter()
            await operation()
            samples.append((time.perf_counter() - begin) * 1000)

    await operation()
    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(callers):
            group.start_soon(loop)
    elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(samples, n=100)
    return name, len(samples), statistics.median(samples), quantiles[94], len(samples) / elapsed


async def bench_validation() -> list[Row]:
    """The shared validator on a warm JWKS cache: the cost every request pays."""
    with TestIssuer() as issuer:
        config = ValidatorConfig(issuers=[issuer.issuer], audiences=["bench"], jwks_url=issuer.jwks_url)
        token = issuer.mint(aud="bench", scope="crm:read")
        async with AccessTokenValidator(config) as validator:
            return [await timed("validate JWT (RS256, warm JWKS cache)", 2000, lambda: validator.validate(token))]


async def bench_topology(topology: Topology) -> list[Row]:
    auth = topology.tickets_auth()

    async def fresh_token() -> None:
        auth.invalidate()
        await auth.get_token()

    rows = [
        await timed("client-credentials token, from the token endpoint", 100, fresh_token),
        await timed("client-credentials token, cached", 5000, auth.get_token),
    ]
    await auth.aclose()
    async with topology.user_session("alice") as alice:

        def tool(name: str, arguments: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
            return lambda: alice.call_tool(name, arguments)

        rows += [
            await timed("tool get_weather (pattern 1: API key)", 100, tool("get_weather", {"city": "Berlin"})),
            await timed(
                "tool list_customer_tickets (pattern 2 + cascade check)",
                100,
                tool("list_customer_tickets", {"customer_id": "cus_001"}),
            ),
            await timed("tool search_customers (pattern 3: cascade)", 100, tool("search_customers", {"query": ""})),
            await timed(
                "tool customer_briefing (all three)", 100, tool("customer_briefing", {"customer_id": "cus_001"})
            ),
            await concurrent(
                "tool search_customers, 10 concurrent callers", 10, 20, tool("search_customers", {"query": ""})
            ),
        ]
    return rows


def print_table(rows: list[Row]) -> None:
    header = ("measurement", "calls", "p50 ms", "p95 ms", "per s")
    width = max(len(row[0]) for row in rows)
    print(f"\n{header[0]:<{width}}  {header[1]:>6}  {header[2]:>8}  {header[3]:>8}  {header[4]:>8}")
    print("-" * (width + 38))
    for name, calls, p50, p95, rate in rows:
        print(f"{name:<{width}}  {calls:>6}  {p50:>8.3f}  {p95:>8.3f}  {rate:>8.0f}")


async def main_async(workdir: Path) -> list[Row]:
    rows = await bench_validation()
    print("Starting the topology on free loopback ports…", flush=True)
    with running_topology(workdir) as topology:
        rows += await bench_topology(topology)
    return rows


def main() -> int:
    if "--quick" in sys.argv[1:]:
        SCALE.factor = 0.05
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        rows = anyio.run(main_async, Path(workdir))
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
