"""Cross-replica single flight, and pattern 3b through the load balancer.

crm-mcp is restarted in exchange mode (CRM_API_AUTH_MODE=exchange) with a fresh REDIS_KEY_PREFIX, so no
token is cached anywhere (the auth-server stays in cascade mode: the user's token then also names
crm-api, and crm-mcp exchanges it all the same; tests/integration covers the auth-server's side).
Then 100 concurrent customer_briefing calls, alice's and bob's, spread over the 3 crm-mcp replicas,
reach the token endpoint exactly once for the client-credentials token (pattern 2, tickets-mcp) and
once per user for the exchange (pattern 3b), counted by the auth-server replicas themselves (their
/metrics, summed).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from devkit.scaled import ScaledTopology
from devkit.sessions import mcp_session
from mcp import Client

from scripts.bench.replicas import bench_replicas
from tests.integration.test_patterns import call_ok
from tests.scaleout.test_patterns import mcp_requests

pytestmark = pytest.mark.anyio

CALLS = 100
CLIENT_CREDENTIALS = "client_credentials"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


@pytest.fixture(scope="module")
def exchange_mode(scaled: ScaledTopology) -> Iterator[ScaledTopology]:
    scaled.restart(["crm-mcp"], CRM_API_AUTH_MODE="exchange", REDIS_KEY_PREFIX=f"crm-mcp-{uuid.uuid4().hex[:8]}")
    try:
        yield scaled
    finally:
        scaled.restart(["crm-mcp"])


async def test_pattern_3b_each_user_sees_only_their_customers_through_an_exchanged_token(
    exchange_mode: ScaledTopology,
) -> None:
    exchanges = exchange_mode.token_requests(TOKEN_EXCHANGE)
    alice = await exchange_mode.user_token("alice")
    async with mcp_session(exchange_mode.crm_mcp_url, token=alice) as session:
        customers = await call_ok(session, "search_customers", {"query": ""})
    assert customers
    assert {c["owner"] for c in customers} == {"alice"}
    assert exchange_mode.token_requests(TOKEN_EXCHANGE) == exchanges + 1


async def _briefings(url: str, tokens: dict[str, str], customer_ids: dict[str, str]) -> list[Any]:
    results: list[Any] = []

    async def briefing(session: Client, customer_id: str) -> None:
        results.append(await session.call_tool("customer_briefing", {"customer_id": customer_id}))

    async with (
        mcp_session(url, token=tokens["alice"]) as alice,
        mcp_session(url, token=tokens["bob"]) as bob,
        anyio.create_task_group() as group,
    ):
        for index in range(CALLS):
            user, session = ("alice", alice) if index % 2 else ("bob", bob)
            group.start_soon(briefing, session, customer_ids[user])
    return results


async def test_100_concurrent_briefings_over_3_replicas_one_token_request_and_one_exchange_per_user(
    exchange_mode: ScaledTopology,
) -> None:
    tokens = {user: await exchange_mode.user_token(user) for user in ("alice", "bob")}
    client_credentials = exchange_mode.token_requests(CLIENT_CREDENTIALS)
    exchanges = exchange_mode.token_requests(TOKEN_EXCHANGE)
    customer_ids = {}
    for user, token in tokens.items():
        async with mcp_session(exchange_mode.crm_mcp_url, token=token) as session:
            customer_ids[user] = (await call_ok(session, "search_customers", {"query": ""}))[0]["id"]
    before = mcp_requests(exchange_mode)

    results = await _briefings(exchange_mode.crm_mcp_url, tokens, customer_ids)

    assert len(results) == CALLS
    assert not [r for r in results if r.is_error], [r for r in results if r.is_error][:1]
    after = mcp_requests(exchange_mode)
    assert all(after[name] - before[name] >= CALLS // 6 for name in after), (before, after)  # all 3 served
    assert exchange_mode.token_requests(CLIENT_CREDENTIALS) - client_credentials == 1
    # One exchange per user token (the searches and the briefings alike ask crm-api for crm:read).
    assert exchange_mode.token_requests(TOKEN_EXCHANGE) - exchanges == 2


async def test_the_bench_replica_rows_meet_their_count_targets(exchange_mode: ScaledTopology) -> None:
    """`make bench`'s replica group (scripts.bench.replicas), small, at 1 replica (3 is the test above)."""
    counts, rows = await bench_replicas(exchange_mode, calls=20, warm_rounds=2, replica_counts=(1,), restore=False)
    assert [count.value for count in counts] == [1, 2], counts
    assert all(count.met for count in counts)
    assert [row.name.rsplit(", ", 1)[1] for row in rows] == ["1 crm-mcp replica"] * 2
    assert all(row.per_second > 0 for row in rows)
