"""tickets-mcp as an OAuth 2.1 resource server over raw HTTP: RFC 9728 metadata, 401s, audience, Host checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import httpx2
import pytest
from devkit.processes import free_port, start_service
from devkit.tokens import TestIssuer
from mcp import MCPError

from tests.tickets_mcp.conftest import EXTRA_ALLOWED_HOST, SwitchableBearer, TicketsServer, legacy_session, mint_for

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw-test", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def metadata_url(tickets: TicketsServer) -> str:
    return f"{tickets.process.url}/.well-known/oauth-protected-resource/mcp"


async def post_initialize(tickets: TicketsServer, headers: dict[str, str]) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=5.0) as client:
        return await client.post(tickets.mcp_url, json=INITIALIZE, headers={**MCP_HEADERS, **headers})


async def test_health(tickets: TicketsServer) -> None:
    async with httpx2.AsyncClient(timeout=5.0) as client:
        response = await client.get(f"{tickets.process.url}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_protected_resource_metadata_names_the_authorization_server(
    tickets: TicketsServer, issuer: TestIssuer
) -> None:
    async with httpx2.AsyncClient(timeout=5.0) as client:
        metadata = (await client.get(metadata_url(tickets))).json()
    assert metadata["resource"] == tickets.resource
    assert metadata["authorization_servers"] == [issuer.issuer]  # exact: no trailing slash
    assert metadata["scopes_supported"] == ["tickets:read", "tickets:write"]
    assert metadata["bearer_methods_supported"] == ["header"]


@pytest.mark.parametrize("case", ["no-token", "wrong-audience", "garbage"])
async def test_refused_tokens_get_401_pointing_at_the_metadata(
    tickets: TicketsServer, issuer: TestIssuer, case: str
) -> None:
    tokens = {
        "no-token": None,
        # Valid signature, issuer and scopes, but issued for crm-api: must not be accepted here.
        "wrong-audience": issuer.mint(sub="alice", aud="http://localhost:8003", scope="tickets:read tickets:write"),
        "garbage": "not-a-jwt",
    }
    token = tokens[case]
    response = await post_initialize(tickets, {"Authorization": f"Bearer {token}"} if token else {})
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{metadata_url(tickets)}"' in challenge


async def test_host_header_must_be_local_or_explicitly_allowed(tickets: TicketsServer, issuer: TestIssuer) -> None:
    auth = {"Authorization": f"Bearer {mint_for(issuer, tickets, 'tickets:read')}"}
    allowed = await post_initialize(tickets, {**auth, "Host": EXTRA_ALLOWED_HOST})
    rebound = await post_initialize(tickets, {**auth, "Host": "attacker.example:8002"})
    assert allowed.status_code == 200
    assert rebound.status_code == 421


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("localhost:80.evil.example", None),
        ("127.0.0.1:", None),
        (EXTRA_ALLOWED_HOST, "http://localhost:1.evil.example"),
    ],
)
async def test_host_and_origin_patterns_are_not_prefixes(
    tickets: TicketsServer, issuer: TestIssuer, host: str, origin: str | None
) -> None:
    """The SDK alone reads `localhost:*` as "starts with localhost:"; tickets-mcp matches exactly."""
    headers = {"Authorization": f"Bearer {mint_for(issuer, tickets, 'tickets:read')}", "Host": host}
    refused = await post_initialize(tickets, headers | ({"Origin": origin} if origin else {}))
    assert refused.status_code == (403 if origin else 421)


async def test_unreachable_signing_keys_are_503_not_401(tmp_path: Path, issuer: TestIssuer) -> None:
    """A tickets-mcp whose key source does not answer tells clients to retry, not to get a new token."""
    port = free_port()
    service = start_service(
        "tickets-mcp",
        "tickets_mcp",
        port_variable="TICKETS_MCP_PORT",
        port=port,
        env={
            "AUTH_ISSUER": issuer.issuer,
            "AUTH_JWKS_URL": f"http://127.0.0.1:{free_port()}/jwks",  # nothing listens there
            "TICKETS_MCP_RESOURCE": f"http://127.0.0.1:{port}/mcp",
            "TICKETS_MCP_DATA_DIR": str(tmp_path / "data"),
        },
        workdir=tmp_path,
    )
    try:
        token = issuer.mint(sub="crm-mcp-agent", aud=f"http://127.0.0.1:{port}/mcp", scope="tickets:read")
        async with httpx2.AsyncClient(timeout=5.0) as client:
            response = await client.post(
                f"{service.url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}
            )
    finally:
        service.stop()
    assert response.status_code == 503
    assert 1 <= int(response.headers["retry-after"]) <= 5
    assert "www-authenticate" not in response.headers
    assert response.json()["error"] == "temporarily_unavailable"


async def test_session_survives_a_refreshed_token_but_not_another_client(
    tickets: TicketsServer, issuer: TestIssuer
) -> None:
    """crm-mcp keeps one session: a new token for the same client works on it, another client's does not."""
    bearer = SwitchableBearer(mint_for(issuer, tickets, "tickets:read"))
    async with legacy_session(tickets.mcp_url, bearer) as session:
        bearer.token = mint_for(issuer, tickets, "tickets:read")
        assert not (await session.call_tool("list_tickets", {})).is_error

        bearer.token = mint_for(issuer, tickets, "tickets:read", client_id="another-client")
        with pytest.raises(MCPError, match="Session not found"):
            await session.call_tool("list_tickets", {})


async def test_many_concurrent_sessions(tickets: TicketsServer, issuer: TestIssuer) -> None:
    counts: list[int] = []

    async def one_session(index: int) -> None:
        token = mint_for(issuer, tickets, "tickets:read", client_id=f"client-{index}")
        async with legacy_session(tickets.mcp_url, token) as session:
            result = await session.call_tool("list_tickets", {"customer_id": "cus_005"})
            assert result.structured_content is not None
            counts.append(result.structured_content["count"])

    async with anyio.create_task_group() as group:
        for index in range(12):
            group.start_soon(one_session, index)
    assert len(counts) == 12
    assert len(set(counts)) == 1


async def test_tokens_never_reach_the_log(tickets: TicketsServer, issuer: TestIssuer) -> None:
    token = mint_for(issuer, tickets, "tickets:read")
    async with legacy_session(tickets.mcp_url, token) as session:
        await session.call_tool("list_tickets", {})
    await post_initialize(tickets, {"Authorization": f"Bearer {token}x"})
    log = tickets.process.logs()
    assert token not in log
    assert token.split(".")[2] not in log


def test_start_up_names_a_missing_resource(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "TICKETS_MCP_"))}
    env["AUTH_ISSUER"] = "http://localhost:9000"
    result = subprocess.run(
        [sys.executable, "-m", "tickets_mcp"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert "Missing required setting TICKETS_MCP_RESOURCE" in result.stderr
