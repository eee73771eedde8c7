"""Bench group: the scaled topology (devkit.scaled) at 1 and 3 crm-mcp replicas.

For each: crm-mcp restarted in exchange mode (pattern 3b) with a fresh REDIS_KEY_PREFIX, so no token is
cached anywhere; then CALLS concurrent customer_briefing calls, alice's and bob's, sent to one replica
directly (1) or through HAProxy round-robin (3). Counted at the token endpoint (the auth-server
replicas' /metrics, summed): client-credentials requests (target 1) and token exchanges (target 1 per
user), however many replicas. Throughput is reported, not targeted: on 2 cores the client, HAProxy and
every replica share the same CPUs, so more replicas add no capacity there.
"""

from __future__ import annotations

import statistics
import time
import uuid

import anyio
from devkit.scaled import ScaledTopology
from devkit.sessions import mcp_session
from mcp import Client

from scripts.bench.measure import Count, Row, Target, concurrent

CALLS = 100
USERS = ("alice", "bob")
CLIENT_CREDENTIALS = "client_credentials"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a grant type, not a secret


async def _burst(url: str, tokens: dict[str, str], customers: dict[str, str], calls: int, name: str) -> Row:
    """`calls` concurrent briefings, half each user's, over one session per user."""
    samples: list[float] = []

    async def briefing(session: Client, customer: str) -> None:
        begin = time.perf_counter()
        result = await session.call_tool("customer_briefing", {"customer_id": customer})
        if result.is_error:
            raise RuntimeError(f"customer_briefing failed: {result.content}")
        samples.append((time.perf_counter() - begin) * 1000)

    async with mcp_session(url, token=tokens["alice"]) as alice, mcp_session(url, token=tokens["bob"]) as bob:
        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for index in range(calls):
                user, session = ("alice", alice) if index % 2 else ("bob", bob)
                group.start_soon(briefing, session, customers[user])
        elapsed = time.perf_counter() - started
    p95 = statistics.quantiles(samples, n=20)[-1] if len(samples) > 1 else samples[0]
    return Row(name, calls, statistics.median(samples), p95, calls / elapsed)


async def _customers(url: str, tokens: dict[str, str]) -> dict[str, str]:
    customers = {}
    for user, token in tokens.items():
        async with mcp_session(url, token=token) as session:
            found = await session.call_tool("search_customers", {"query": ""})
            content = found.structured_content or {}
            customers[user] = content["result"][0]["id"]
    return customers


async def bench_replicas(
    scaled: ScaledTopology,
    calls: int = CALLS,
    warm_rounds: int = 20,
    replica_counts: tuple[int, ...] = (1, 3),
    restore: bool = True,
) -> tuple[list[Count], list[Row]]:
    """Token-endpoint requests (targeted) and throughput (reported) at 1 and 3 crm-mcp replicas;
    `restore`: crm-mcp back in its own mode afterwards."""
    counts: list[Count] = []
    rows: list[Row] = []
    for replicas in replica_counts:
        scaled.restart(["crm-mcp"], CRM_API_AUTH_MODE="exchange", REDIS_KEY_PREFIX=f"crm-mcp-{uuid.uuid4().hex[:8]}")
        url = scaled.crm_mcp_url if replicas == 3 else scaled.replicas["crm-mcp"][0].url + "/mcp"
        tokens = {user: await scaled.user_token(user) for user in USERS}
        client_credentials = scaled.token_requests(CLIENT_CREDENTIALS)
        exchanges = scaled.token_requests(TOKEN_EXCHANGE)
        customers = await _customers(url, tokens)
        where = f"{replicas} crm-mcp replica{'s' if replicas > 1 else ''}"
        cold = await _burst(url, tokens, customers, calls, f"customer_briefing, {calls} concurrent cold calls, {where}")
        counts += [
            Count(
                f"client-credentials requests, {calls} concurrent briefings, {where}",
                scaled.token_requests(CLIENT_CREDENTIALS) - client_credentials,
                Target("==", 1),
            ),
            Count(
                f"token exchanges, the same calls ({len(USERS)} users), {where}",
                scaled.token_requests(TOKEN_EXCHANGE) - exchanges,
                Target("==", len(USERS)),
            ),
        ]
        arguments = {"customer_id": customers["alice"]}
        async with mcp_session(url, token=tokens["alice"]) as session:
            warm = await concurrent(
                f"customer_briefing, 10 concurrent callers, {where}",
                10,
                warm_rounds,
                lambda: session.call_tool("customer_briefing", arguments),  # noqa: B023 - awaited in this iteration
            )
        rows += [cold, warm]
    if restore:
        scaled.restart(["crm-mcp"])
    return counts, rows
