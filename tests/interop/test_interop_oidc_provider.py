"""The services against a certified authorization server nobody here wrote: panva/oidc-provider.

Everything the services know about it comes from `.env.oidc-provider.example` (see conftest.py): this proves
"switch the authorization server by configuration alone" against RFC 8414 metadata, RFC 7591 registration,
RFC 8707 resource indicators and RFC 9068 JWT access tokens as another implementation writes them.

What it also shows is the provider reality behind pattern 3: oidc-provider puts exactly one audience in a
token (RFC 8707), so a token for crm-mcp never names crm-api, and crm-api refuses the passed-through token.
Pattern 3b (RFC 8693 token exchange, CRM_API_AUTH_MODE=exchange) works against it, given the grant through
oidc-provider's documented extension point (registerGrantType, in oidc_provider/provider.mjs).
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import httpx2
import jwt
import pytest
from devkit.sessions import mcp_session, oauth_session

from tests.interop.conftest import EXPIRING_CLIENT, Interop
from tests.shared.tokens import claims, mint, rsa_key

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def _token_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


async def _crm_mcp_status(interop: Interop, token: str) -> httpx2.Response:
    """POST an MCP initialize to crm-mcp with `token`: what the bearer check says, before any tool runs."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(timeout=10) as http:
        return await http.post(interop.topology.crm_mcp_url, json=body, headers=headers)


async def test_the_sdk_client_registers_logs_in_and_calls_pattern_1(interop: Interop) -> None:
    """The official SDK client discovers oidc-provider from crm-mcp's 401, registers (RFC 7591), logs in with
    PKCE through the provider's own login and consent pages, and the token it gets works at crm-mcp."""
    async with interop.topology.user_session("alice") as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"get_weather", "search_customers", "customer_briefing"} <= tools
        result = await client.call_tool("get_weather", {"city": "Berlin"})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.structured_content["city"] == "Berlin"


async def test_the_user_token_is_oidc_providers_own_shape(interop: Interop) -> None:
    """RFC 9068 as oidc-provider writes it: typ at+jwt, one audience as a string, scope as a string."""
    token = await interop.topology.user_token("alice")
    header, payload = _token_parts(token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "RS256"
    assert payload["iss"] == interop.issuer
    assert payload["aud"] == interop.topology.crm_mcp_url
    assert payload["sub"] == "alice"
    assert "crm:read" in payload["scope"].split(" ")
    assert payload["client_id"] != interop.topology.env["CRM_MCP_CLIENT_ID"]  # a client registered just now


async def test_pattern_2_client_credentials_token_for_tickets_mcp(interop: Interop) -> None:
    """crm-mcp's own token source (ClientCredentialsAuth, configured from the profile) gets a token from
    oidc-provider's token endpoint for tickets-mcp's resource, and tickets-mcp accepts it."""
    topology = interop.topology
    auth = topology.tickets_auth()
    async with mcp_session(topology.env["TICKETS_MCP_URL"], auth=auth, http_timeout=10) as client:
        result = await client.call_tool("list_tickets", {"customer_id": "cus_001"})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert isinstance(result.structured_content["tickets"], list)
    token = await topology.client_credentials_token(topology.env["TICKETS_MCP_RESOURCE"], "tickets:read")
    _, payload = _token_parts(token)
    assert payload["aud"] == topology.env["TICKETS_MCP_RESOURCE"]
    assert payload["client_id"] == payload["sub"] == topology.env["CRM_MCP_CLIENT_ID"]
    assert payload["scope"] == "tickets:read"


async def test_pattern_3_cascade_is_refused_by_crm_api(interop: Interop) -> None:
    """One audience per token: crm-api refuses alice's crm-mcp token, directly and through crm-mcp."""
    topology = interop.topology
    token = await topology.user_token("alice")
    async with httpx2.AsyncClient(timeout=10) as http:
        direct = await http.get(
            f"{topology.env['CRM_API_URL']}/customers", headers={"Authorization": f"Bearer {token}"}
        )
    assert direct.status_code == 401
    assert 'error="invalid_token"' in direct.headers["www-authenticate"]

    async with topology.user_session("alice") as client:
        result = await client.call_tool("search_customers", {"query": ""})
    assert result.is_error
    assert "crm-api" in result.content[0].text  # type: ignore[union-attr]


async def test_a_token_for_another_resource_is_refused(interop: Interop) -> None:
    """crm-mcp's machine token for tickets-mcp, genuinely signed by oidc-provider, is not a token for crm-mcp."""
    topology = interop.topology
    token = await topology.client_credentials_token(topology.env["TICKETS_MCP_RESOURCE"], "tickets:read")
    response = await _crm_mcp_status(interop, token)
    assert response.status_code == 401
    assert "invalid_token" in response.headers["www-authenticate"]


async def test_an_expired_token_from_the_provider_is_refused(interop: Interop) -> None:
    """A token that oidc-provider issued with a one-second life, used after it ended (and after the leeway)."""
    topology = interop.topology
    async with httpx2.AsyncClient(timeout=10) as http:
        issued = await http.post(
            f"{interop.issuer}/token",
            data={"grant_type": "client_credentials", "resource": topology.env["TICKETS_MCP_RESOURCE"]},
            auth=(EXPIRING_CLIENT, interop.probe_secret),
        )
    issued.raise_for_status()
    token = issued.json()["access_token"]
    _, payload = _token_parts(token)
    assert payload["exp"] - payload["iat"] == 1
    leeway = int(topology.env["AUTH_LEEWAY_SECONDS"])
    await anyio.sleep(max(0.0, payload["exp"] + leeway + 1 - time.time()))
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(
            topology.env["TICKETS_MCP_URL"],
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
        )
    assert response.status_code == 401


async def test_a_token_from_another_issuer_or_key_is_refused(interop: Interop) -> None:
    """Shaped exactly like oidc-provider's, but signed by a key it never published, or naming another issuer."""
    topology = interop.topology
    key = rsa_key("not-the-providers")
    forged_key = claims(interop.issuer, sub="alice", aud=topology.crm_mcp_url, scope="crm:read")
    other_issuer = claims("http://127.0.0.1:9/other", sub="alice", aud=topology.crm_mcp_url, scope="crm:read")
    for token in (mint(key, forged_key, typ="at+jwt"), mint(key, other_issuer, typ="at+jwt")):
        response = await _crm_mcp_status(interop, token)
        assert response.status_code == 401


async def test_pattern_3b_token_exchange_per_user(interop: Interop) -> None:
    """crm-mcp in exchange mode trades each user's token at oidc-provider for one for crm-api: per-user data,
    a note recorded with the acting client, and every pattern at once in customer_briefing."""
    url = interop.exchange_crm_mcp_url
    owners: dict[str, set[str]] = {}
    for user in ("alice", "bob"):
        async with interop.topology.user_session(user, url=url) as client:
            result = await client.call_tool("search_customers", {"query": ""})
            assert not result.is_error, result.content
            assert result.structured_content is not None
            owners[user] = {customer["owner"] for customer in result.structured_content["result"]}
    assert owners == {"alice": {"alice"}, "bob": {"bob"}}

    async with interop.topology.user_session("alice", url=url) as client:
        noted = await client.call_tool("add_customer_note", {"customer_id": "cus_002", "note": "interop: exchanged"})
        briefing = await client.call_tool("customer_briefing", {"customer_id": "cus_001"})
    assert not noted.is_error, noted.content
    assert noted.structured_content is not None
    note = noted.structured_content["notes"][-1]
    assert (note["text"], note["author"], note["actor"]) == (
        "interop: exchanged",
        "alice",
        interop.topology.env["CRM_MCP_CLIENT_ID"],
    )
    assert not briefing.is_error, briefing.content
    assert briefing.structured_content is not None
    assert briefing.structured_content["unavailable"] == {}
    assert briefing.structured_content["weather"]["city"] == "Berlin"


async def test_pattern_3b_exchanged_token_from_oidc_provider(interop: Interop) -> None:
    """The exchanged token as oidc-provider issues it: same user, crm-api alone as audience, `act`, narrowed scope."""
    topology = interop.topology
    user_token = await topology.user_token("alice")
    async with httpx2.AsyncClient(timeout=10) as http:
        answer = await http.post(
            f"{interop.issuer}/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": user_token,
                "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "resource": topology.env["CRM_API_AUDIENCE"],
                "scope": "crm:read",
            },
            auth=(topology.env["CRM_MCP_CLIENT_ID"], topology.env["CRM_MCP_CLIENT_SECRET"]),
        )
    answer.raise_for_status()
    header, payload = _token_parts(answer.json()["access_token"])
    _, subject = _token_parts(user_token)
    assert header["typ"] == "at+jwt"
    assert payload["sub"] == "alice"
    assert payload["aud"] == topology.env["CRM_API_AUDIENCE"]
    assert payload["act"] == {"sub": topology.env["CRM_MCP_CLIENT_ID"]}
    assert payload["scope"] == "crm:read"
    assert payload["exp"] <= subject["exp"]


async def test_step_up_through_oidc_provider(interop: Interop) -> None:
    """alice consents to crm:read only; add_customer_note gets crm-mcp's 403 insufficient_scope, and the SDK
    client goes back to oidc-provider for more scope, then retries (no 403 handling in this test)."""
    url = interop.exchange_crm_mcp_url
    async with oauth_session(url, "alice", interop.topology.password("alice"), scope="crm:read") as alice:
        read = await alice.client.call_tool("get_customer", {"customer_id": "cus_003"})
        _, before = _token_parts(alice.access_token)
        noted = await alice.client.call_tool(
            "add_customer_note", {"customer_id": "cus_003", "note": "interop: step-up"}
        )
        _, after = _token_parts(alice.access_token)
    assert not read.is_error, read.content
    assert before["scope"] == "crm:read"
    assert not noted.is_error, noted.content
    assert {"crm:read", "crm:write"} <= set(after["scope"].split(" "))
    assert after["iss"] == interop.issuer
