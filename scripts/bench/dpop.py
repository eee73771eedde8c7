"""Bench group: DPoP (RFC 9449) — a proof's creation and its check, and a DPoP-bound call against a bearer call.

The rows time the shared package's own work in this process: `DPoPKey.proof` (ES256, PyJWT) and
`DPoPPolicy.verify` (parse, signature, claims, thumbprint, jti into the in-memory replay cache). Two ratios:

- the target one, as crm-mcp makes the call: the tool `search_customers` through a crm-mcp in exchange mode
  with CRM_MCP_DPOP=true (its exchanged token DPoP-bound, a fresh proof on each call to crm-api) against one
  without, both warm (the exchanged token cached);
- the bare hop, no target: `GET /customers` at crm-api sent with a DPoP-bound token and a fresh proof
  (`DPoPTokenAuth`) against the same call with a bearer token, where a proof's creation and check (about
  0.3 ms of CPU together here) weigh most, since the call itself is small.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx2
from devkit.sessions import mcp_session, oauth_session
from devkit.topology import Topology
from oauth_tokens.dpop import DPoPPolicy
from oauth_tokens.dpop_client import DPoPKey, DPoPTokenAuth
from oauth_tokens.replay_cache import InMemoryReplayCache

from scripts.bench.measure import SCALE, Ratio, Row, Target, paired_latency, timed

DPOP_CALL_TARGET = Target("<=", 1.15)


async def bound_user_token(topology: Topology, key: DPoPKey) -> str:
    """alice's token for crm-mcp (and, in cascade mode, crm-api), bound to `key` by the real OAuth flow."""
    async with oauth_session(topology.crm_mcp_url, "alice", topology.password("alice"), dpop_key=key) as session:
        return session.access_token


async def tool_ratio(topology: Topology, bearer_token: str) -> Ratio:
    """search_customers through crm-mcp with its exchanged token DPoP-bound, against bearer; both warm."""
    with (
        topology.extra("bench-crm-mcp-dpop", CRM_API_AUTH_MODE="exchange", CRM_MCP_DPOP="true") as bound_service,
        topology.extra("bench-crm-mcp-bearer", CRM_API_AUTH_MODE="exchange") as bearer_service,
    ):
        async with (
            mcp_session(f"{bound_service.url}/mcp", token=bearer_token) as bound,
            mcp_session(f"{bearer_service.url}/mcp", token=bearer_token) as bearer,
        ):
            return await paired_latency(
                "search_customers: crm-mcp → crm-api DPoP-bound vs bearer (3b, warm)",
                lambda: bound.call_tool("search_customers", {}),
                [lambda: bearer.call_tool("search_customers", {})],
                calls=20,
                rounds=9,
                target=DPOP_CALL_TARGET,
            )


def _proofs(key: DPoPKey, url: str, token: str, count: int) -> Callable[[], str]:
    proofs = iter([key.proof("GET", url, access_token=token) for _ in range(count)])
    return lambda: next(proofs)


async def bench_dpop(topology: Topology, bearer_token: str) -> tuple[list[Row], list[Ratio]]:
    """Proof creation and verification rows; the DPoP-bound vs bearer call to crm-api ratio."""
    key = DPoPKey()
    url = f"{topology.env['CRM_API_URL']}/customers"
    token = await bound_user_token(topology, key)
    policy = DPoPPolicy(replay_cache=InMemoryReplayCache(10_000_000))
    runs = 2000
    next_proof = _proofs(key, url, token, SCALE(runs) + 1)

    async def create() -> None:
        key.proof("GET", url, access_token=token)

    async def verify() -> None:
        await policy.verify(next_proof(), method="GET", url=url, access_token=token)

    rows = [
        await timed("DPoP proof creation (ES256)", runs, create),
        await timed("DPoP proof verification (ES256, jti once)", runs, verify),
    ]
    async with (
        httpx2.AsyncClient(auth=DPoPTokenAuth(key, token), timeout=10) as bound,
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {bearer_token}"}, timeout=10) as bearer,
    ):

        async def dpop_call() -> None:
            (await bound.get(url)).raise_for_status()

        async def bearer_call() -> None:
            (await bearer.get(url)).raise_for_status()

        rows.append(await timed("crm-api GET /customers, DPoP-bound token + fresh proof (warm)", 200, dpop_call))
        hop = await paired_latency(
            "crm-api GET /customers: DPoP-bound + fresh proof vs bearer (warm)",
            dpop_call,
            [bearer_call],
            calls=40,
            rounds=9,
        )
    return rows, [await tool_ratio(topology, bearer_token), hop]
