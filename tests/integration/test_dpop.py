"""DPoP end to end: the official MCP SDK client, its OAuth flow wrapped in DPoPOverAuth, against a topology whose
resource servers require DPoP (AUTH_DPOP=require, with nonces) and whose crm-mcp binds its own tokens
(CRM_MCP_DPOP=true, pattern 2 to tickets-mcp and 3b to crm-api). Since tickets-mcp and crm-api refuse anything
but a DPoP-bound token with a fresh proof, every tool that reaches them proves crm-mcp's outbound DPoP works.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import jwt
import pytest
from devkit.sessions import oauth_session
from devkit.topology import Topology, running_topology
from oauth_tokens.dpop_client import DPoPKey

from tests.integration.test_patterns import call_ok

pytestmark = pytest.mark.anyio

DPOP_REQUIRED = {"AUTH_DPOP": "require", "AUTH_DPOP_NONCE": "true", "CRM_MCP_DPOP": "true"}


@pytest.fixture(scope="module")
def dpop_topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    with running_topology(
        tmp_path_factory.mktemp("topology-dpop"), crm_api_auth_mode="exchange", overrides=DPOP_REQUIRED
    ) as topology:
        yield topology


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def test_the_sdk_client_and_crm_mcp_use_dpop_on_every_hop(dpop_topology: Topology) -> None:
    key = DPoPKey()
    url = dpop_topology.crm_mcp_url
    async with oauth_session(url, "alice", dpop_topology.password("alice"), dpop_key=key) as session:
        alice = session.client
        customers = await call_ok(alice, "search_customers", {"query": ""})  # 3b: exchanged, DPoP-bound
        assert customers
        assert all(customer["owner"] == "alice" for customer in customers)
        tickets = await call_ok(alice, "list_customer_tickets", {"customer_id": customers[0]["id"]})  # pattern 2
        assert isinstance(tickets, list)
        briefing = await call_ok(alice, "customer_briefing", {"customer_id": customers[0]["id"]})
        assert not briefing["unavailable"]
    user_token = session.access_token
    assert _claims(user_token)["cnf"] == {"jkt": key.thumbprint}
    # Stolen, the same token is useless without alice's key: as Bearer, or as DPoP with another key's proof.
    async with httpx2.AsyncClient(timeout=10) as http:
        as_bearer = await http.post(url, json={}, headers={"Authorization": f"Bearer {user_token}"})
        thief = DPoPKey()
        other_key = await http.post(
            url,
            json={},
            headers={"Authorization": f"DPoP {user_token}", "DPoP": thief.proof("POST", url, access_token=user_token)},
        )
    assert as_bearer.status_code == 401
    assert as_bearer.headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"')
    assert other_key.status_code == 401
    assert other_key.headers["WWW-Authenticate"].startswith("DPoP error=")
    # crm-mcp's own tokens are DPoP-bound exchanges (the auth-server's log names each grant it served).
    assert "grant=token_exchange client=crm-mcp-agent sub=alice" in dpop_topology.services["auth-server"].logs()


async def test_a_bearer_client_is_refused_where_dpop_is_required(dpop_topology: Topology) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        anonymous = await http.post(dpop_topology.crm_mcp_url, json={})
    assert anonymous.status_code == 401
    challenges = anonymous.headers.get_list("WWW-Authenticate")
    assert len(challenges) == 1
    assert challenges[0].startswith("DPoP ")
    assert "resource_metadata=" in challenges[0]  # MCP clients still find the authorization server
