"""Pattern 3b against the real topology: what the exchange issues, what crm-api accepts, the cache, failures.

Counts of exchange requests are the authorization server's own: its log line for every token it issues
(`Issued token: grant=token_exchange ...`), not a counter inside crm-mcp.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx2
import pytest
from devkit.processes import free_port
from devkit.services import SERVICES_BY_NAME
from devkit.topology import Topology
from oauth_tokens import AccessTokenValidator, TokenExchange, ValidatorConfig

from scripts.demo import run_demo
from tests.integration.test_patterns import call_error, call_ok

pytestmark = pytest.mark.anyio


def exchanges_for(topology: Topology, user: str) -> int:
    """How many token exchanges for `user` the authorization server has performed so far."""
    return topology.services["auth-server"].logs().count(f"grant=token_exchange client=crm-mcp-agent sub={user} ")


async def get_customers_directly(topology: Topology, token: str) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=10) as http:
        return await http.get(topology.env["CRM_API_URL"] + "/customers", headers={"Authorization": f"Bearer {token}"})


async def test_a_crm_mcp_token_sent_straight_to_crm_api(crm_api_topology: Topology) -> None:
    """Cascade: any MCP client alice signs in to holds a token crm-api accepts. Exchange: it cannot."""
    response = await get_customers_directly(crm_api_topology, await crm_api_topology.user_token("alice"))
    if crm_api_topology.crm_api_auth_mode == "cascade":
        assert response.status_code == 200
    else:
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_the_exchanged_token_names_the_user_crm_api_alone_and_crm_mcp_as_actor(
    exchange_topology: Topology,
) -> None:
    """The exchange crm-mcp performs, made here with its credentials and the same shared client."""
    env = exchange_topology.env
    user_token = await exchange_topology.user_token("alice")
    async with (
        AccessTokenValidator(_validator_config(exchange_topology, env["CRM_MCP_RESOURCE"])) as for_crm_mcp,
        AccessTokenValidator(_validator_config(exchange_topology, env["CRM_API_AUDIENCE"])) as for_crm_api,
    ):
        subject = await for_crm_mcp.validate(user_token)
        exchange = TokenExchange(
            env["AUTH_TOKEN_URL"], env["CRM_MCP_CLIENT_ID"], **exchange_topology.crm_mcp_credential()
        )
        try:
            exchanged = await exchange.token_for(
                user_token, resource=env["CRM_API_AUDIENCE"], scope="crm:read", subject_expires_at=subject.expires_at
            )
        finally:
            await exchange.aclose()
        principal = await for_crm_api.validate(exchanged, ["crm:read"])
    assert subject.audiences == (env["CRM_MCP_RESOURCE"],)  # exchange mode: no crm-api audience to pass through
    assert principal.subject == "alice"
    assert principal.audiences == (env["CRM_API_AUDIENCE"],)
    assert principal.actor == env["CRM_MCP_CLIENT_ID"]
    assert principal.client_id == env["CRM_MCP_CLIENT_ID"]
    assert principal.scopes == frozenset({"crm:read"})
    assert principal.expires_at <= subject.expires_at
    assert (await get_customers_directly(exchange_topology, exchanged)).status_code == 200


async def test_a_note_records_who_acted_for_the_author(crm_api_topology: Topology) -> None:
    async with crm_api_topology.user_session("bob") as bob:
        updated = await call_ok(bob, "add_customer_note", {"customer_id": "cus_007", "note": "Who wrote this?"})
    note = updated["notes"][-1]
    assert note["author"] == "bob"
    expected_actor = "crm-mcp-agent" if crm_api_topology.crm_api_auth_mode == "exchange" else None
    assert note["actor"] == expected_actor


async def test_100_concurrent_searches_of_one_user_make_one_exchange(exchange_topology: Topology) -> None:
    async with exchange_topology.user_session("alice") as alice:
        before = exchanges_for(exchange_topology, "alice")
        results: list[object] = []

        async def search() -> None:
            results.append(await call_ok(alice, "search_customers", {"query": ""}))

        async with anyio.create_task_group() as group:
            for _ in range(100):
                group.start_soon(search)
        assert len(results) == 100
        assert exchanges_for(exchange_topology, "alice") == before + 1
        # Same scope (crm:read): still cached. Another scope (crm:write) is a token of its own.
        await call_ok(alice, "get_customer", {"customer_id": "cus_001"})
        assert exchanges_for(exchange_topology, "alice") == before + 1
        await call_ok(alice, "add_customer_note", {"customer_id": "cus_001", "note": "cache check"})
        await call_ok(alice, "add_customer_note", {"customer_id": "cus_001", "note": "cache check 2"})
        assert exchanges_for(exchange_topology, "alice") == before + 2


async def test_a_token_the_authorization_server_no_longer_honours_is_a_clear_tool_error(
    exchange_topology: Topology,
) -> None:
    """alice signed in; then the auth-server withdrew the key that signed her token (restarted with a new
    one). crm-mcp still admits the token (its JWKS cache holds the old key), but the authorization server
    will not exchange it, and alice is told to sign in again.

    An EXPIRED token never gets this far: the SDK's bearer middleware refuses it with 401 (no leeway),
    and the exchange cache never keeps a token past the subject token's `exp`.
    """
    env = exchange_topology.env
    keys = Path(env["AUTH_SERVER_DATA_DIR"]) / "keys"
    withdrawn = keys.with_name("keys-withdrawn")
    async with exchange_topology.user_session("alice") as alice:
        _restart_auth_server(exchange_topology, lambda: keys.rename(withdrawn))
        try:
            error = await call_error(alice, "search_customers", {"query": "withdrawn"})
        finally:
            _restart_auth_server(exchange_topology, lambda: (shutil.rmtree(keys), withdrawn.rename(keys)))
    assert "sign in again" in error
    assert "crm-api" in error
    assert "invalid_request" in error
    assert "eyJ" not in error


async def test_an_unreachable_token_endpoint_is_a_clear_tool_error(exchange_topology: Topology) -> None:
    auth_server = exchange_topology.services["auth-server"]
    async with exchange_topology.user_session("alice") as alice:
        await call_ok(alice, "search_customers", {"query": ""})  # crm:read exchanged and cached
        auth_server.stop()
        try:
            assert await call_ok(alice, "search_customers", {"query": "Berlin"})  # the cache still serves
            error = await call_error(alice, "add_customer_note", {"customer_id": "cus_001", "note": "x"})
        finally:
            exchange_topology.start("auth-server")  # same port and data: same keys
    assert "Could not reach the authorization server" in error
    assert "try again" in error


def _validator_config(topology: Topology, audience: str) -> ValidatorConfig:
    """Trust as the services do: AUTH_ISSUER, keys by discovery, for one audience."""
    return ValidatorConfig(issuers=[topology.env["AUTH_ISSUER"]], audiences=[audience])


def _restart_auth_server(topology: Topology, while_stopped: Callable[[], object]) -> None:
    topology.services["auth-server"].stop()
    while_stopped()
    topology.start("auth-server")


@pytest.mark.parametrize(
    ("service", "overrides", "named"),
    [
        ("crm-mcp", {"CRM_API_AUTH_MODE": "passthrough"}, "Invalid setting CRM_API_AUTH_MODE"),
        ("auth-server", {"CRM_API_AUTH_MODE": "passthrough"}, "Invalid setting CRM_API_AUTH_MODE"),
        ("crm-mcp", {"CRM_API_AUTH_MODE": "exchange", "CRM_API_AUDIENCE": ""}, "Invalid setting CRM_API_AUDIENCE"),
    ],
)
def test_a_bad_mode_stops_start_up_naming_the_variable(
    topology: Topology, tmp_path: Path, service: str, overrides: dict[str, str], named: str
) -> None:
    module, port_variable = SERVICES_BY_NAME[service].module, SERVICES_BY_NAME[service].port_variable
    completed = subprocess.run(
        [sys.executable, "-m", module],
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            **topology.env,
            **overrides,
            port_variable: str(free_port()),
            "AUTH_SERVER_DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode != 0
    assert named in completed.stderr


async def test_make_demo_narrates_the_exchange(exchange_topology: Topology, capsys: pytest.CaptureFixture[str]) -> None:
    """What `make demo` runs, in exchange mode (tests/docs runs it in the default cascade mode)."""
    await run_demo(exchange_topology.env)  # raises DemoFailure if any check of the demo fails
    narration = capsys.readouterr().out
    assert "CRM_API_AUTH_MODE=exchange" in narration
    assert "Pattern 3b — token exchange (RFC 8693)" in narration
    assert narration.index("\nPattern 2 — ") < narration.index("\nPattern 3b — ")
    assert f"act.sub={exchange_topology.env['CRM_MCP_CLIENT_ID']}" in narration
    assert "crm-api refuses alice's crm-mcp token sent straight to it" in narration
    assert "make up CRM_API_AUTH_MODE=cascade" in narration
    assert "eyJ" not in narration
    assert all(secret not in narration for secret in exchange_topology.secrets.values())
