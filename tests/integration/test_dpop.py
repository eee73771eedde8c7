"""DPoP end to end: the official MCP SDK client, its OAuth flow wrapped in DPoPOverAuth, against the topology of
`make up DPOP=require` (plus nonces everywhere): resource servers require DPoP (AUTH_DPOP=require, and the
calendar's CALENDAR_AUTH_DPOP=require), the calendar's auth-server issues bound tokens only
(CALENDAR_AUTH_SERVER_DPOP=require), and crm-mcp binds its own tokens (CRM_MCP_DPOP=true: pattern 2 to tickets-mcp,
3b to crm-api, 4 and 5 to calendar-api). Since each downstream refuses anything but a DPoP-bound token with a fresh
proof, every tool that reaches one proves crm-mcp's outbound DPoP works; the vault's stored grant is inspected
directly (as an operator could), and a second crm-mcp replica uses it with the key they share.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from devkit.processes import ServiceProcess
from devkit.sessions import mcp_session, oauth_session
from devkit.topology import Topology, running_topology
from oauth_tokens.dpop_client import DPoPKey, DPoPTokenAuth
from oauth_tokens.dpop_keys import persistent_dpop_key
from oauth_tokens.vault import StoredGrant

from tests.integration.test_patterns import call_ok
from tests.integration.test_third_party_calendar import UserAtTheKeyboard, accounts
from tests.support.crm_mcp_state import crm_mcp_vault

pytestmark = pytest.mark.anyio

DPOP_REQUIRED = {
    "AUTH_DPOP": "require",
    "AUTH_DPOP_NONCE": "true",
    "AUTH_DPOP_NONCE_KEYS": secrets.token_urlsafe(32),  # shared by crm-mcp's replicas, as .env makes it
    "CRM_MCP_DPOP": "true",
    "CALENDAR_AUTH_DPOP": "require",
    "CALENDAR_AUTH_SERVER_DPOP": "require",
}


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


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def test_metadata_says_dpop_bound_tokens_are_required(dpop_topology: Topology) -> None:
    """RFC 9728 §2 (RFC 9449 §5.2): both MCP servers say they take DPoP-bound tokens only, and which proofs."""
    async with httpx2.AsyncClient(timeout=10) as http:
        for resource in (dpop_topology.crm_mcp_url, dpop_topology.env["TICKETS_MCP_RESOURCE"]):
            origin = resource.removesuffix("/mcp")
            metadata = (await http.get(f"{origin}/.well-known/oauth-protected-resource/mcp")).json()
            assert metadata["dpop_bound_access_tokens_required"] is True, resource
            assert metadata["dpop_signing_alg_values_supported"] == ["ES256", "RS256", "PS256", "EdDSA"]


@pytest.fixture
def replica(dpop_topology: Topology, tmp_path: Path) -> Iterator[ServiceProcess]:
    """A second crm-mcp with the same settings and data directory (its vault, its DPoP key), as behind a balancer."""
    with dpop_topology.extra("crm-mcp-replica", workdir=tmp_path / "replica") as service:
        yield service


async def test_pattern_4s_grant_is_dpop_bound_in_the_vault_useless_without_the_key_and_shared_by_replicas(
    dpop_topology: Topology, replica: ServiceProcess
) -> None:
    env, url = dpop_topology.env, dpop_topology.crm_mcp_url
    issuer, events = env["CALENDAR_AUTH_ISSUER"], env["CALENDAR_API_URL"] + "/events"
    async with crm_mcp_vault(env) as vault:
        await vault.delete("alice", issuer)
    key = DPoPKey()
    alice = UserAtTheKeyboard(accounts(dpop_topology, "alice"))
    async with oauth_session(
        url, "alice", dpop_topology.password("alice"), dpop_key=key, elicitation_callback=alice
    ) as session:
        listed = await session.client.call_tool("list_my_meetings", {})  # connects: the code redeemed with a proof
        user_token = session.access_token
    assert not listed.is_error, text_of(listed)
    assert len(alice.urls) == 1
    crm_mcp_key = persistent_dpop_key(Path(env["CRM_MCP_DATA_DIR"]) / "dpop-keys")  # as an operator could read it
    async with crm_mcp_vault(env) as vault:
        grant = await vault.get("alice", issuer)
    assert grant is not None
    assert (grant.token_type, grant.dpop_jkt) == ("DPoP", crm_mcp_key.thumbprint)
    assert _claims(grant.access_token)["cnf"] == {"jkt": crm_mcp_key.thumbprint}

    # Stolen from the vault, the token is useless without crm-mcp's key: as Bearer, without a proof, another key's.
    token = grant.access_token
    thief = DPoPKey()
    async with httpx2.AsyncClient(timeout=10) as http:
        as_bearer = await http.get(events, headers={"Authorization": f"Bearer {token}"})
        no_proof = await http.get(events, headers={"Authorization": f"DPoP {token}"})
        other_key = await http.get(events, auth=DPoPTokenAuth(thief, token))
        # A captured request (token and proof) replayed: refused, though the first went through.
        asked = await http.get(
            events,
            headers={"Authorization": f"DPoP {token}", "DPoP": crm_mcp_key.proof("GET", events, access_token=token)},
        )
        assert asked.status_code == 401
        nonce = asked.headers["DPoP-Nonce"]  # calendar-api asks for its nonce (AUTH_DPOP_NONCE=true)
        captured = {
            "Authorization": f"DPoP {token}",
            "DPoP": crm_mcp_key.proof("GET", events, access_token=token, nonce=nonce),
        }
        first = await http.get(events, headers=captured)
        replayed = await http.get(events, headers=captured)
    assert as_bearer.status_code == 401
    assert as_bearer.headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"')
    assert no_proof.status_code == 401
    assert other_key.status_code == 401
    assert first.status_code == 200
    assert replayed.status_code == 401
    assert replayed.headers["WWW-Authenticate"].startswith('DPoP error="invalid_dpop_proof"')

    # A grant stored as a bearer token (before DPoP was turned on) is refreshed before use, with a proof, at a
    # calendar auth-server that issues bound tokens only; the other replica does it, with the key they share.
    async with crm_mcp_vault(env) as vault:
        await vault.put("alice", issuer, StoredGrant(token, grant.refresh_token, time.time() + 3600, grant.scope))
    user_auth = DPoPTokenAuth(key, user_token)
    async with mcp_session(
        replica.url + "/mcp", auth=user_auth, elicitation_callback=UserAtTheKeyboard(None)
    ) as client:
        again = await client.call_tool("list_my_meetings", {})
    assert not again.is_error, text_of(again)
    async with crm_mcp_vault(env) as vault:
        refreshed = await vault.get("alice", issuer)
    assert refreshed is not None
    assert refreshed.access_token != token
    assert refreshed.refresh_token != grant.refresh_token  # rotated
    assert (refreshed.token_type, refreshed.dpop_jkt) == ("DPoP", crm_mcp_key.thumbprint)
    assert "Generated ES256 signing key" not in replica.logs()  # the replica found the key, it made none


async def test_a_nonce_from_one_crm_mcp_replica_is_good_at_the_other(
    dpop_topology: Topology, replica: ServiceProcess
) -> None:
    """AUTH_DPOP_NONCE_KEYS shared: a client that learnt a nonce at one replica is not asked again by the next."""
    key = DPoPKey()
    async with oauth_session(
        dpop_topology.crm_mcp_url, "alice", dpop_topology.password("alice"), dpop_key=key
    ) as session:
        await call_ok(session.client, "get_weather", {"city": "Berlin"})
        token = session.access_token
    first, other = dpop_topology.crm_mcp_url, replica.url + "/mcp"
    async with httpx2.AsyncClient(timeout=10) as http:
        asked = await http.post(
            first,
            json={},
            headers={"Authorization": f"DPoP {token}", "DPoP": key.proof("POST", first, access_token=token)},
        )
        nonce = asked.headers["DPoP-Nonce"]
        there = await http.post(
            other,
            json={},
            headers={
                "Authorization": f"DPoP {token}",
                "DPoP": key.proof("POST", other, access_token=token, nonce=nonce),
            },
        )
    assert asked.status_code == 401
    assert "use_dpop_nonce" in asked.headers["WWW-Authenticate"]
    assert there.status_code != 401, there.headers.get(
        "WWW-Authenticate"
    )  # past DPoP and the token: the MCP layer answers


async def test_pattern_5s_calendar_token_is_dpop_bound(dpop_topology: Topology, tmp_path: Path) -> None:
    """crm-mcp in cross-app mode: the jwt-bearer request carries its proof (the calendar's auth-server issues nothing
    else), and calendar-api takes nothing but a bound token with a fresh proof."""
    data_dir = tmp_path / "crm-mcp-cross-app"
    shutil.copytree(Path(dpop_topology.env["CRM_MCP_DATA_DIR"]) / "client-keys", data_dir / "client-keys")
    with dpop_topology.extra(
        "crm-mcp-cross-app",
        workdir=tmp_path / "x",
        CALENDAR_AUTH_MODE="cross-app-access",
        CRM_MCP_DATA_DIR=str(data_dir),
    ) as crm_mcp:
        key = DPoPKey()
        async with oauth_session(
            dpop_topology.crm_mcp_url, "alice", dpop_topology.password("alice"), dpop_key=key
        ) as session:
            await call_ok(session.client, "get_weather", {"city": "Berlin"})
            auth = DPoPTokenAuth(key, session.access_token)
        async with mcp_session(crm_mcp.url + "/mcp", auth=auth, elicitation_callback=UserAtTheKeyboard(None)) as client:
            listed = await client.call_tool("list_my_meetings", {})
        assert not listed.is_error, text_of(listed)
        assert "grant=jwt_bearer client=crm-mcp sub=alice" in dpop_topology.services["calendar-auth-server"].logs()
        assert "DPoP key jkt" in crm_mcp.logs()
