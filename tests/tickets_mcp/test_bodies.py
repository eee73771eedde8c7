"""tickets-mcp (an MCP server, like crm-mcp) and request bodies: past 1 MiB a 413 even with a valid token,
and malformed, deeply nested or non-UTF-8 JSON a 400, never a 500."""

from __future__ import annotations

import httpx2
import pytest
from devkit.tokens import TestIssuer

from tests.tickets_mcp.conftest import TicketsServer, mint_for

pytestmark = pytest.mark.anyio

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def test_a_body_over_one_mib_is_refused(tickets: TicketsServer, issuer: TestIssuer) -> None:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {mint_for(issuer, tickets, 'tickets:read')}"}
    async with httpx2.AsyncClient(timeout=10.0) as client:
        response = await client.post(tickets.mcp_url, content=b" " * (1024 * 1024 + 1), headers=headers)
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"


@pytest.mark.parametrize(
    "body",
    [b'{"jsonrpc": ', b"[" * 5000 + b"]" * 5000, b'{"jsonrpc": "2.0", "method": "\xff"}'],
    ids=["malformed", "deeply-nested", "not-utf-8"],
)
async def test_bad_json_is_a_400(tickets: TicketsServer, issuer: TestIssuer, body: bytes) -> None:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {mint_for(issuer, tickets, 'tickets:read')}"}
    async with httpx2.AsyncClient(timeout=10.0) as client:
        response = await client.post(tickets.mcp_url, content=body, headers=headers)
    assert response.status_code == 400, response.text
