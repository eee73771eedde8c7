"""Scope step-up end to end: a user who consented to less widens the grant when a tool needs more.

alice logs in through the real login and consent pages with crm:read only. crm-mcp answers
add_customer_note with HTTP 403 insufficient_scope before the tool runs; the official SDK client
(`OAuthClientProvider`) re-authorizes with the union of scopes and retries. Nothing here handles
the 403: the test only sees that the note was added, with a wider token.
"""

from __future__ import annotations

import re
from contextlib import AbstractAsyncContextManager

import httpx2
import jwt
import pytest
from devkit.sessions import OAuthSession, oauth_session
from devkit.topology import Topology

from tests.integration.test_patterns import call_ok

pytestmark = pytest.mark.anyio

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def scopes_of(access_token: str) -> set[str]:
    return set(jwt.decode(access_token, options={"verify_signature": False})["scope"].split(" "))


def challenge_params(response: httpx2.Response) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', response.headers["www-authenticate"]))


def alice_with_crm_read_only(topology: Topology) -> AbstractAsyncContextManager[OAuthSession]:
    """alice's SDK client session, logged in through the real pages having consented to crm:read only."""
    return oauth_session(topology.crm_mcp_url, "alice", topology.password("alice"), scope="crm:read")


async def test_the_sdk_client_steps_up_to_add_a_note(topology: Topology) -> None:
    async with alice_with_crm_read_only(topology) as alice:
        customer = (await call_ok(alice.client, "search_customers", {"query": ""}))[0]
        first_token = alice.access_token
        assert scopes_of(first_token) == {"crm:read"}

        noted = await call_ok(alice.client, "add_customer_note", {"customer_id": customer["id"], "note": "Stepped up"})
        # The earlier grant is kept (SEP-2350 union), so the read tools keep working.
        again = await call_ok(alice.client, "get_customer", {"customer_id": customer["id"]})

    assert alice.access_token != first_token
    assert scopes_of(alice.access_token) >= {"crm:read", "crm:write"}
    assert any(note["text"] == "Stepped up" for note in noted["notes"])
    assert any(note["text"] == "Stepped up" for note in again["notes"])


async def test_a_read_only_token_gets_403_naming_crm_write_before_the_tool_runs(topology: Topology) -> None:
    url = topology.crm_mcp_url
    async with alice_with_crm_read_only(topology) as alice:
        customer = (await call_ok(alice.client, "search_customers", {"query": ""}))[0]
    call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "add_customer_note", "arguments": {"customer_id": customer["id"], "note": "Never"}},
    }
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {alice.access_token}"}
    async with httpx2.AsyncClient(timeout=10) as http:
        refused = await http.post(url, json=call, headers=headers)
        anonymous = await http.post(url, json=call, headers=MCP_HEADERS)
    assert refused.status_code == 403
    params = challenge_params(refused)
    assert params["error"] == "insufficient_scope"
    assert "crm:write" in params["scope"].split(" ")
    assert params["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp")

    assert anonymous.status_code == 401
    assert set(challenge_params(anonymous)) == {"resource_metadata"}  # RFC 6750 §3.1: no error code

    async with topology.user_session("alice") as full:
        notes = (await call_ok(full, "get_customer", {"customer_id": customer["id"]}))["notes"]
    assert all(note["text"] != "Never" for note in notes)


async def test_every_crm_mcp_tool_declares_its_scopes(topology: Topology) -> None:
    """The step-up check reads each tool's scopes from its registration: a tool without them gets no 403."""
    async with topology.user_session("alice") as client:
        tools = (await client.list_tools()).tools
    declared = {tool.name: (tool.meta or {}).get("oauth-tokens/required-scopes") for tool in tools}
    assert {"list_my_meetings", "schedule_meeting", "disconnect_calendar", "add_customer_note"} <= declared.keys()
    assert [name for name, scopes in declared.items() if not scopes] == []
