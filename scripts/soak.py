"""`make soak`: several users call every tool of patterns 1-3 for a bounded time; any error fails the run.

Starts its own topology (seven real processes on free loopback ports, fresh secrets and data), so it
needs nothing running and changes no data of yours. Each user logs in through the real OAuth flow and
calls each of those tools in turn until the time is up (finishing the round it is in, so each is called).
Pattern 4's tools are not soaked: each first call needs a person's consent in a browser.
It prints the calls and latency per tool, the errors by kind, and each service's resident memory at
the start and the end (flat memory is what to look for). Exits 1 on any error.
Duration: --seconds N, else SOAK_SECONDS, else 60.

weather-api's per-key rate limit (what a real provider would impose) is lifted for the soak: it would
otherwise refuse the soak's own calls, which measures the limit rather than the services.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from tests.support.topology import Topology, running_topology

MIB = 1024 * 1024
# Two sessions per demo user, so each user's calls also overlap one another.
USERS = ("alice", "bob", "alice", "bob")
CUSTOMERS = {"alice": ("cus_001", "cus_002", "cus_003", "cus_004"), "bob": ("cus_005", "cus_006", "cus_007", "cus_008")}


@dataclass
class Tally:
    """Every call's latency per tool, and every error by kind."""

    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def calls(self) -> int:
        return sum(len(samples) for samples in self.latencies_ms.values())


def tool_calls(customer_id: str, round_number: int) -> list[tuple[str, dict[str, Any]]]:
    """One round: every tool once, on one of the user's customers."""
    return [
        ("search_customers", {"query": ""}),
        ("get_customer", {"customer_id": customer_id}),
        ("add_customer_note", {"customer_id": customer_id, "note": f"Soak note {round_number}"}),
        ("list_customer_tickets", {"customer_id": customer_id}),
        (
            "open_ticket",
            {"customer_id": customer_id, "title": f"Soak ticket {round_number}", "description": "Opened by make soak"},
        ),
        ("get_weather", {"city": "Berlin"}),
        ("customer_briefing", {"customer_id": customer_id}),
    ]


async def timed_call(client: Client, name: str, arguments: dict[str, Any], tally: Tally) -> None:
    """Call one tool; record its latency, and its error if it failed (or a briefing came back partial)."""
    begin = time.perf_counter()
    try:
        result = await client.call_tool(name, arguments)
    except Exception as error:  # every failure is counted by kind; the soak goes on
        tally.errors[f"{name}: {type(error).__name__}"] += 1
        return
    finally:
        tally.latencies_ms[name].append((time.perf_counter() - begin) * 1000)
    if result.is_error:
        tally.errors[f"{name}: tool error"] += 1
    elif name == "customer_briefing" and (result.structured_content or {}).get("unavailable"):
        tally.errors["customer_briefing: part unavailable"] += 1


async def user_loop(client: Client, user: str, deadline: float, tally: Tally) -> None:
    """Every tool in turn, round after round: a round started before the deadline is finished."""
    round_number = 0
    while round_number == 0 or time.monotonic() < deadline:
        customer_id = CUSTOMERS[user][round_number % len(CUSTOMERS[user])]
        for name, arguments in tool_calls(customer_id, round_number):
            await timed_call(client, name, arguments, tally)
        round_number += 1


def resident_memory(topology: Topology) -> dict[str, int]:
    return {name: service.resident_bytes() for name, service in topology.services.items()}


def percentiles(samples: list[float]) -> tuple[float, float]:
    if len(samples) < 2:
        return (samples[0], samples[0]) if samples else (0.0, 0.0)
    return statistics.median(samples), statistics.quantiles(samples, n=100)[94]


def report(tally: Tally, seconds: float, memory_start: dict[str, int], memory_end: dict[str, int]) -> None:
    every: list[float] = [sample for samples in tally.latencies_ms.values() for sample in samples]
    p50, p95 = percentiles(every)
    print(f"\n{tally.calls} calls by {len(USERS)} concurrent users in {seconds:.1f} s")
    print(f"every call: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    print(f"\n{'tool':<24}{'calls':>8}{'p50 ms':>10}{'p95 ms':>10}")
    for name, samples in tally.latencies_ms.items():
        tool_p50, tool_p95 = percentiles(samples)
        print(f"{name:<24}{len(samples):>8}{tool_p50:>10.1f}{tool_p95:>10.1f}")
    print(f"\nerrors: {sum(tally.errors.values())}")
    for kind, count in tally.errors.most_common():
        print(f"  {count:>6}  {kind}")
    print(f"\n{'service':<22}{'RSS start MiB':>15}{'RSS end MiB':>13}{'change':>9}")
    for name, start in memory_start.items():
        end = memory_end[name]
        print(f"{name:<22}{start / MIB:>15.1f}{end / MIB:>13.1f}{(end - start) / MIB:>+9.1f}")


async def soak(topology: Topology, seconds: float) -> tuple[Tally, dict[str, int], float]:
    """Log every user in, then run them for `seconds`: the tally, the memory at the start, the time taken.

    The start is measured after the logins, so the figures compare steady states (a login's scrypt
    check alone raises the auth-server's resident memory once).
    """
    tally = Tally()
    async with AsyncExitStack() as sessions:
        clients = [await sessions.enter_async_context(topology.user_session(user)) for user in USERS]
        memory_start = resident_memory(topology)
        started = time.monotonic()
        async with anyio.create_task_group() as group:
            for user, client in zip(USERS, clients, strict=True):
                group.start_soon(user_loop, client, user, started + seconds, tally)
        elapsed = time.monotonic() - started
    return tally, memory_start, elapsed


def parse_seconds(argv: list[str]) -> float:
    parser = argparse.ArgumentParser(prog="make soak", description=__doc__.splitlines()[0] if __doc__ else None)
    default = os.environ.get("SOAK_SECONDS", "60")
    parser.add_argument("--seconds", type=float, default=None, help=f"how long to run (default: {default})")
    parsed = parser.parse_args(argv)
    if parsed.seconds is not None:
        return float(parsed.seconds)
    try:
        return float(default)
    except ValueError:
        parser.error("SOAK_SECONDS must be a number of seconds")


def main() -> int:
    seconds = parse_seconds(sys.argv[1:])
    if seconds <= 0:
        print("make soak: the duration must be positive", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        print(f"Starting the topology on free loopback ports, then soaking for {seconds:g} s…", flush=True)
        with running_topology(Path(workdir), overrides={"WEATHER_API_RATE_LIMIT": "1000000"}) as topology:
            tally, memory_start, elapsed = anyio.run(soak, topology, seconds)
            memory_end = resident_memory(topology)
    report(tally, elapsed, memory_start, memory_end)
    if tally.errors or not tally.calls:
        print("\nSOAK FAILED: " + ("errors above" if tally.errors else "no call was made"), file=sys.stderr)
        return 1
    print("\nSoak passed: no errors.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
