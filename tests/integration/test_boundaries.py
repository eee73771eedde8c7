"""Trust boundaries and failures: wrong-audience tokens, failing downstreams, and secrets that must never leak."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from devkit.processes import free_port
from devkit.services import service
from devkit.topology import Topology

from tests.integration.test_patterns import call_error, call_ok

pytestmark = pytest.mark.anyio


async def bearer_post(url: str, token: str) -> httpx2.Response:
    """An MCP initialize request with a given bearer token, to see how a server answers at the HTTP layer."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"},
        },
    }
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(timeout=10) as http:
        return await http.post(url, json=body, headers=headers)


async def test_a_tickets_mcp_token_is_refused_by_crm_mcp_and_crm_api(topology: Topology) -> None:
    """No confused deputy: a token issued for tickets-mcp is good only at tickets-mcp."""
    token = await topology.client_credentials_token(topology.env["TICKETS_MCP_RESOURCE"], "tickets:read")

    at_crm_mcp = await bearer_post(topology.crm_mcp_url, token)
    assert at_crm_mcp.status_code == 401
    assert 'error="invalid_token"' in at_crm_mcp.headers["www-authenticate"]
    assert "resource_metadata=" in at_crm_mcp.headers["www-authenticate"]

    async with httpx2.AsyncClient(timeout=10) as http:
        at_crm_api = await http.get(
            topology.env["CRM_API_URL"] + "/customers", headers={"Authorization": f"Bearer {token}"}
        )
    assert at_crm_api.status_code == 401
    assert 'error="invalid_token"' in at_crm_api.headers["www-authenticate"]


async def test_crm_api_refuses_a_token_without_its_audience(topology: Topology) -> None:
    """A token for crm-mcp's resource that lacks crm-api's audience (tickets resource) is refused by crm-api."""
    token = await topology.client_credentials_token(topology.env["TICKETS_MCP_RESOURCE"], "tickets:write")
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.get(
            topology.env["CRM_API_URL"] + "/customers/cus_001", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 401


async def test_tickets_mcp_refuses_a_user_token(topology: Topology) -> None:
    """alice's token is for crm-mcp (and crm-api); tickets-mcp must not accept it."""
    user_token = await topology.user_token("alice")
    response = await bearer_post(topology.env["TICKETS_MCP_URL"], user_token)
    assert response.status_code == 401
    assert "resource_metadata=" in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("downstream", "tool", "arguments", "expected"),
    [
        ("weather-api", "get_weather", {"city": "Rome"}, "weather-api"),
        ("crm-api", "search_customers", {"query": ""}, "crm-api"),
        ("tickets-mcp", "list_customer_tickets", {"customer_id": "cus_001"}, "tickets-mcp"),
    ],
)
async def test_a_stopped_downstream_is_a_clear_tool_error_and_the_rest_still_works(
    topology: Topology, downstream: str, tool: str, arguments: dict[str, str], expected: str
) -> None:
    others = {
        "weather-api": ("search_customers", {"query": ""}),
        "crm-api": ("get_weather", {"city": "Rome"}),
        "tickets-mcp": ("get_weather", {"city": "Rome"}),
    }
    async with topology.user_session("alice") as alice:
        # Make sure the tickets session exists first, so stopping tickets-mcp breaks a live session.
        await call_ok(alice, "list_customer_tickets", {"customer_id": "cus_001"})
        topology.services[downstream].stop()
        try:
            error = await call_error(alice, tool, arguments)
            assert expected in error
            assert "unreachable" in error or "failed" in error
            other_tool, other_arguments = others[downstream]
            assert await call_ok(alice, other_tool, other_arguments)
        finally:
            topology.start(downstream)
        # Once the downstream is back, the same tool works again (a new session for tickets-mcp).
        assert await call_ok(alice, tool, arguments) is not None


async def test_a_wrong_weather_key_is_a_clear_tool_error_without_the_key(topology: Topology) -> None:
    """crm-mcp restarted with a wrong key (same port, so the same resource the auth server knows)."""
    wrong_key = "wrong-" + topology.env["WEATHER_API_KEY"][:8]
    topology.services["crm-mcp"].stop()
    try:
        crm_mcp = topology.start("crm-mcp", WEATHER_API_KEY=wrong_key)
        async with topology.user_session("alice") as alice:
            error = await call_error(alice, "get_weather", {"city": "Rome"})
            assert await call_ok(alice, "search_customers", {"query": ""})
        wrong_key_logs = crm_mcp.logs()
    finally:
        topology.services["crm-mcp"].stop()
        topology.start("crm-mcp")
    assert "weather-api rejected the credentials" in error
    assert wrong_key not in error
    assert wrong_key not in wrong_key_logs


def test_a_missing_weather_key_fails_start_up_naming_the_variable(topology: Topology, tmp_path: Path) -> None:
    env = {k: v for k, v in topology.env.items() if k != "WEATHER_API_KEY"}
    module = service("crm-mcp").module
    completed = subprocess.run(
        [sys.executable, "-m", module],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", **env, "CRM_MCP_PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode != 0
    assert "WEATHER_API_KEY" in completed.stderr


async def test_crm_mcp_never_uses_its_own_identity_for_another_reps_customer(crm_api_topology: Topology) -> None:
    """The account check (as the user) comes before any tickets-mcp call (as crm-mcp), so a user cannot
    make crm-mcp's client-credentials identity act on a customer that is not theirs."""
    tickets_mcp = crm_api_topology.services["tickets-mcp"]
    async with crm_api_topology.user_session("alice") as alice:
        await call_ok(alice, "list_customer_tickets", {"customer_id": "cus_001"})  # the session is open
        requests_before = tickets_mcp.logs().count("POST /mcp")
        for tool in ("customer_briefing", "list_customer_tickets"):
            error = await call_error(alice, tool, {"customer_id": "cus_005"})  # bob's
            assert "404" in error
        opened = await call_error(
            alice, "open_ticket", {"customer_id": "cus_005", "title": "Not mine", "description": "-"}
        )
        assert "404" in opened
    assert tickets_mcp.logs().count("POST /mcp") == requests_before
