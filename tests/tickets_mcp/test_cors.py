"""CORS on a real tickets-mcp's /mcp, on the wire: preflights before the bearer check, other origins refused.

Default CORS_ALLOWED_ORIGINS (loopback pages on any port). What a real browser makes of these answers is
tested in tests/integration/browser/test_cors.py.
"""

from __future__ import annotations

import httpx2
import pytest
from devkit.tokens import TestIssuer

from tests.tickets_mcp.conftest import TicketsServer, mint_for
from tests.tickets_mcp.test_resource_server import metadata_url, post_initialize

pytestmark = pytest.mark.anyio

INSPECTOR = "http://localhost:6274"
MCP_REQUEST_HEADERS = "authorization, content-type, mcp-protocol-version, mcp-session-id, mcp-method, mcp-name"


async def preflight(tickets: TicketsServer, origin: str, method: str = "POST") -> httpx2.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": f"{MCP_REQUEST_HEADERS}, last-event-id",
    }
    async with httpx2.AsyncClient(timeout=5.0) as client:
        return await client.options(tickets.mcp_url, headers=headers)


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
async def test_a_preflight_from_an_allowed_origin_is_answered_without_a_token(
    tickets: TicketsServer, method: str
) -> None:
    answer = await preflight(tickets, INSPECTOR, method)

    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == INSPECTOR
    assert method in answer.headers["Access-Control-Allow-Methods"].split(", ")
    allowed = {name.lower() for name in answer.headers["Access-Control-Allow-Headers"].split(", ")}
    assert {*MCP_REQUEST_HEADERS.split(", "), "last-event-id"} <= allowed
    assert "Access-Control-Allow-Credentials" not in answer.headers
    assert "WWW-Authenticate" not in answer.headers


@pytest.mark.parametrize("origin", ["http://evil.example", "https://localhost:6274", "null"])
async def test_a_preflight_from_another_origin_is_refused(tickets: TicketsServer, origin: str) -> None:
    answer = await preflight(tickets, origin)
    assert answer.status_code == 400
    assert "Access-Control-Allow-Origin" not in answer.headers


async def test_the_401_shows_an_allowed_origin_its_challenge(tickets: TicketsServer) -> None:
    answer = await post_initialize(tickets, {"Origin": INSPECTOR})

    assert answer.status_code == 401
    assert answer.headers["Access-Control-Allow-Origin"] == INSPECTOR
    assert answer.headers["Access-Control-Expose-Headers"] == "WWW-Authenticate, Mcp-Session-Id, DPoP-Nonce"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer ")


async def test_an_allowed_origin_with_a_token_gets_a_session(tickets: TicketsServer, issuer: TestIssuer) -> None:
    token = mint_for(issuer, tickets, "tickets:read")
    answer = await post_initialize(tickets, {"Origin": "http://127.0.0.1:5173", "Authorization": f"Bearer {token}"})

    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:5173"
    assert answer.headers["Mcp-Session-Id"]


async def test_another_origin_is_refused_even_with_a_valid_token(tickets: TicketsServer, issuer: TestIssuer) -> None:
    """DNS-rebinding protection: the Origin check (403) still stands behind CORS."""
    token = mint_for(issuer, tickets, "tickets:read")
    answer = await post_initialize(tickets, {"Origin": "http://evil.example", "Authorization": f"Bearer {token}"})

    assert answer.status_code == 403
    assert "Access-Control-Allow-Origin" not in answer.headers


async def test_the_metadata_keeps_the_sdks_own_cors_for_allowed_origins_only(tickets: TicketsServer) -> None:
    """One Host/Origin policy for every route: the metadata answers the pages /mcp answers, no others."""
    async with httpx2.AsyncClient(timeout=5.0) as client:
        allowed = await client.get(metadata_url(tickets), headers={"Origin": INSPECTOR})
        other = await client.get(metadata_url(tickets), headers={"Origin": "http://evil.example"})
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "*"
    assert other.status_code == 403
