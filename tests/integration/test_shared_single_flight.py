"""Cross-replica single flight (issue 18): two real crm-mcp processes on one Redis, the whole topology
with REDIS_URL and CRM_API_AUTH_MODE=exchange. Many concurrent customer_briefing calls spread over both
replicas cause exactly 1 client-credentials token request and 1 exchange per user, counted at the
auth-server's token endpoint. With Redis stopped, tokens the replicas hold keep serving, a call that needs
a new exchange gets a clear "temporarily unavailable" tool error (the auth-server fails closed on the
assertion's jti), never a 500; within 5 s of Redis's return it succeeds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest
from devkit.local_servers import LocalServer
from devkit.processes import free_port
from devkit.sessions import mcp_session
from devkit.topology import Topology, running_topology
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_patterns import call_ok
from tests.support.servers import redis_server

pytestmark = pytest.mark.anyio

CALLS_PER_SESSION = 10
USERS = ("alice", "bob")


@pytest.fixture(scope="module")
def redis() -> Iterator[LocalServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, redis: LocalServer) -> Iterator[tuple[Topology, list[str]]]:
    workdir = tmp_path_factory.mktemp("shared-flight")
    with running_topology(workdir, crm_api_auth_mode="exchange", overrides={"REDIS_URL": redis.url}) as topology:
        port = free_port()
        # The same data directory (its client keys, as replicas share them) and resource; its own port.
        with topology.extra("crm-mcp-2", port=port, CRM_MCP_ALLOWED_HOSTS=f"127.0.0.1:{port}"):
            yield topology, [topology.crm_mcp_url, f"http://127.0.0.1:{port}/mcp"]


def _issued(topology: Topology, grant: str) -> float:
    text = httpx2.get(topology.metrics_url("auth-server"), timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "oauth_token_requests_total"
                and labels.get("side") == "server"
                and labels.get("grant", "").endswith(grant)
                and labels.get("outcome") == "ok"
            ):
                return float(sample.value)
    return 0.0


async def _briefings(urls: list[str], tokens: dict[str, str], customers: dict[str, str]) -> list[Any]:
    results: list[Any] = []

    async def one_session(url: str, user: str) -> None:
        async with mcp_session(url, token=tokens[user]) as client, anyio.create_task_group() as calls:
            for _ in range(CALLS_PER_SESSION):

                async def call() -> None:
                    results.append(await call_ok(client, "customer_briefing", {"customer_id": customers[user]}))

                calls.start_soon(call)

    async with anyio.create_task_group() as sessions:
        for url in urls:
            for user in USERS:
                sessions.start_soon(one_session, url, user)
    return results


async def _customers(url: str, tokens: dict[str, str]) -> dict[str, str]:
    customers = {}
    for user in USERS:
        async with mcp_session(url, token=tokens[user]) as client:
            customers[user] = (await call_ok(client, "search_customers", {"query": ""}))[0]["id"]
    return customers


async def test_many_briefings_over_two_replicas_make_one_token_request_and_one_exchange_per_user(
    replicas: tuple[Topology, list[str]], redis: LocalServer
) -> None:
    topology, urls = replicas
    tokens = {user: await topology.user_token(user) for user in USERS}
    customers = await _customers(urls[1], tokens)  # one exchange per user, on the second replica
    results = await _briefings(urls, tokens, customers)
    assert len(results) == len(urls) * len(USERS) * CALLS_PER_SESSION
    assert all(result["unavailable"] == {} for result in results)
    assert _issued(topology, "client_credentials") == 1  # not one per replica
    assert _issued(topology, "token-exchange") == len(USERS)  # one per user, across both replicas
    assert topology.env["CRM_MCP_VAULT_KEYS"].split(":", 1)[1] not in topology.logs()

    # Redis stopped: tokens each replica already holds still serve every call (no Redis on that path);
    # a new user token needs an exchange, which the auth-server refuses with 503 while it cannot check
    # the client assertion's jti (fail closed), so the tool says to try again: never a 500, never a bypass.
    fresh = await topology.user_token("alice")
    redis.stop()
    try:
        during = await _briefings(urls, tokens, customers)
        async with mcp_session(urls[0], token=fresh) as client:
            refused = await client.call_tool("customer_briefing", {"customer_id": customers["alice"]})
    finally:
        redis.start()
    returned_at = time.monotonic()
    assert all(result["unavailable"] == {} for result in during)
    assert refused.is_error
    assert "temporarily_unavailable" in str(refused.content)
    async with mcp_session(urls[1], token=fresh) as client:
        while (result := await client.call_tool("customer_briefing", {"customer_id": customers["alice"]})).is_error:
            assert time.monotonic() - returned_at < 5, "not recovered within 5 s of Redis's return"
            await anyio.sleep(0.2)
    assert result.structured_content is not None
    processes = {**topology.services, **topology.extras}
    for name in ("auth-server", "crm-mcp", "crm-mcp-2"):
        logs = processes[name].logs()
        assert "redis://" not in logs
        assert " 500" not in logs
