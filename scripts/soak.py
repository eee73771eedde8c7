"""`make soak`: several users call every tool of patterns 1-4 for a bounded time; any error fails the run.

Starts its own topology (seven real processes on free loopback ports, fresh secrets and data), so it
needs nothing running and changes no data of yours. Each user logs in through the real OAuth flow and
connects their calendar once (pattern 4: the URL elicitation's pages walked by the headless browser, as
`make demo` does), then calls each tool in turn until the time is up (finishing the round it is in, so
each is called). A consent asked for during the soak itself counts as an error: the vault keeps the grant.
It prints the calls and latency per tool, the errors by kind, and each service's resident memory at
the start and the end. crm-mcp's growth must stay under CRM_MCP_GROWTH_BOUND_MIB (checked, like errors).
Exits 1 on any error or a growth over the bound. Duration: --seconds N, else SOAK_SECONDS, else 60.

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
from devkit.headless_login import HeadlessBrowser, open_in_browser
from devkit.topology import Topology, running_topology
from mcp import Client
from mcp.types import ElicitRequestParams, ElicitRequestURLParams, ElicitResult

MIB = 1024 * 1024
# crm-mcp's resident memory may grow by less than this over a soak (issue 20: 120 s, under 10 MiB).
CRM_MCP_GROWTH_BOUND_MIB = 10.0
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
        ("list_my_meetings", {}),
        (
            "schedule_meeting",
            {
                "customer_id": customer_id,
                "start": f"2026-12-{1 + round_number % 28:02d}T10:00:00+00:00",
                "minutes": 30,
                "title": f"Soak meeting {round_number}",
            },
        ),
    ]


@dataclass
class Consent:
    """Pattern 4's consent, given by the headless browser before the soak; one asked for during it is an error."""

    env: dict[str, str]
    tally: Tally
    soaking: bool = False

    def callback(self, user: str) -> Any:
        """The elicitation callback of `user`'s sessions: walk the connect pages as `user`, at both servers."""
        people = {
            self.env["AUTH_ISSUER"]: HeadlessBrowser(user, self.env[f"DEMO_{user.upper()}_PASSWORD"]),
            self.env["CALENDAR_AUTH_ISSUER"]: HeadlessBrowser(user, self.env[f"CALENDAR_{user.upper()}_PASSWORD"]),
        }

        async def consent(_: Any, params: ElicitRequestParams) -> ElicitResult:
            if not isinstance(params, ElicitRequestURLParams):
                raise RuntimeError("expected a URL-mode elicitation")
            if self.soaking:
                self.tally.errors["consent asked for during the soak"] += 1
                return ElicitResult(action="decline")
            page = await open_in_browser(params.url, people)
            if page.status_code != 200 or "Calendar connected" not in page.text:
                raise RuntimeError(f"connecting {user}'s calendar ended at {page.status_code}")
            return ElicitResult(action="accept")

        return consent


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


def crm_mcp_growth(memory_start: dict[str, int], memory_end: dict[str, int]) -> tuple[bool, str]:
    """Whether crm-mcp's growth is under CRM_MCP_GROWTH_BOUND_MIB, and the line that says so."""
    growth = (memory_end["crm-mcp"] - memory_start["crm-mcp"]) / MIB
    met = growth < CRM_MCP_GROWTH_BOUND_MIB
    verdict = "met" if met else "NOT MET"
    return met, f"crm-mcp RSS growth {growth:+.1f} MiB, bound {CRM_MCP_GROWTH_BOUND_MIB:g} MiB: {verdict}"


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
    print(crm_mcp_growth(memory_start, memory_end)[1])


async def soak(topology: Topology, seconds: float) -> tuple[Tally, dict[str, int], float]:
    """Log every user in and connect each one's calendar, then run them for `seconds`: the tally, the
    memory at the start, the time taken.

    The start is measured after the logins, the connections and one warm-up round, so the figures
    compare steady states (a login's scrypt check alone raises the auth-server's resident memory once).
    """
    tally = Tally()
    consent = Consent(topology.env, tally)
    async with AsyncExitStack() as sessions:
        clients = [
            await sessions.enter_async_context(topology.user_session(user, elicitation_callback=consent.callback(user)))
            for user in USERS
        ]
        for user in dict.fromkeys(USERS):  # once per user: the grant is the user's, not the session's
            connected = await clients[USERS.index(user)].call_tool("list_my_meetings", {})
            if connected.is_error:
                raise RuntimeError(f"connecting {user}'s calendar failed")
        consent.soaking = True
        # One round each first (counted like the rest), so the start is after every client, pool and
        # session is made: the growth measured is the soak's, not the first use's.
        async with anyio.create_task_group() as group:
            for user, client in zip(USERS, clients, strict=True):
                group.start_soon(user_loop, client, user, 0.0, tally)
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
    growth_met, _ = crm_mcp_growth(memory_start, memory_end)
    if tally.errors or not tally.calls or not growth_met:
        problem = "errors above" if tally.errors else "no call was made" if not tally.calls else "crm-mcp grew"
        print(f"\nSOAK FAILED: {problem}", file=sys.stderr)
        return 1
    print("\nSoak passed: no errors, crm-mcp's memory within its bound.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
