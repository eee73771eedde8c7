"""Pattern 2 without AUTH_TOKEN_URL: crm-mcp finds the token endpoint from tickets-mcp (RFC 9728, RFC 8414).

Everything is real: the topology's tickets-mcp and auth-server, and extra crm-mcp processes started with
their own settings next to the topology's (same resource, so alice's token for crm-mcp is good there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from devkit.processes import ServiceProcess, free_port
from devkit.sessions import mcp_session
from devkit.topology import Topology
from oauth_tokens import ClientCredentialsAuth, TokenEndpointError
from oauth_tokens.resource_discovery import TokenEndpointDiscovery

from tests.integration.test_patterns import call_error, call_ok

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def crm_mcp_discovering(topology: Topology) -> Iterator[ServiceProcess]:
    """A crm-mcp configured with only tickets-mcp's URL and its client id and secret."""
    with topology.extra("crm-mcp-discovering", AUTH_TOKEN_URL="") as service:
        yield service


async def test_crm_mcp_discovers_the_token_endpoint_from_tickets_mcp(
    topology: Topology, crm_mcp_discovering: ServiceProcess
) -> None:
    token = await topology.user_token("alice")
    async with mcp_session(crm_mcp_discovering.url + "/mcp", token=token) as alice:
        customer = (await call_ok(alice, "search_customers", {"query": ""}))[0]
        tickets = await call_ok(alice, "list_customer_tickets", {"customer_id": customer["id"]})
    assert all(ticket["customer_id"] == customer["id"] for ticket in tickets)
    assert f"Discovered token endpoint {topology.env['AUTH_TOKEN_URL']}" in crm_mcp_discovering.logs()


async def test_discovery_failure_is_a_clear_tool_error(
    topology: Topology, tmp_path_factory: pytest.TempPathFactory
) -> None:
    nothing_there = f"http://127.0.0.1:{free_port()}/mcp"
    token = await topology.user_token("alice")
    with topology.extra(
        "crm-mcp-lost",
        workdir=tmp_path_factory.mktemp("crm-mcp-lost"),
        AUTH_TOKEN_URL="",
        TICKETS_MCP_URL=nothing_there,
    ) as service:
        async with mcp_session(service.url + "/mcp", token=token) as alice:
            error = await call_error(alice, "list_customer_tickets", {"customer_id": "cus_001"})
    assert error.endswith(
        "crm-mcp could not get a token for tickets-mcp: its authorization server could not be discovered "
        "(the resource is unreachable (ConnectError))."
    )


async def test_the_discovered_endpoint_is_the_trusted_issuers_and_is_cached(topology: Topology) -> None:
    discovery = TokenEndpointDiscovery(topology.env["TICKETS_MCP_URL"], [topology.env["AUTH_ISSUER"]])
    assert await discovery.token_endpoint() == topology.env["AUTH_TOKEN_URL"]
    discovery.resource_url = f"http://127.0.0.1:{free_port()}/mcp"  # nothing there: only the cache can answer
    assert await discovery.token_endpoint() == topology.env["AUTH_TOKEN_URL"]


async def test_an_authorization_server_that_is_not_trusted_is_never_used(topology: Topology) -> None:
    discovery = TokenEndpointDiscovery(topology.env["TICKETS_MCP_URL"], ["https://issuer.example"])
    with pytest.raises(TokenEndpointError, match="names no authorization server this client trusts") as refused:
        await discovery.token_endpoint()
    assert refused.value.error == "discovery_failed"


async def test_a_trust_policy_decides_for_an_issuer_not_listed(topology: Topology) -> None:
    asked: list[str] = []

    def policy(answer: bool) -> Callable[[str], bool]:
        def decide(issuer: str) -> bool:
            asked.append(issuer)
            return answer

        return decide

    refusing = TokenEndpointDiscovery(topology.env["TICKETS_MCP_URL"], (), trust_issuer=policy(False))
    with pytest.raises(TokenEndpointError, match="names no authorization server this client trusts"):
        await refusing.token_endpoint()
    accepting = TokenEndpointDiscovery(topology.env["TICKETS_MCP_URL"], (), trust_issuer=policy(True))
    assert await accepting.token_endpoint() == topology.env["AUTH_TOKEN_URL"]
    assert asked == [topology.env["AUTH_ISSUER"], topology.env["AUTH_ISSUER"]]
    with pytest.raises(ValueError, match="trusted issuer"):
        TokenEndpointDiscovery(topology.env["TICKETS_MCP_URL"], ())


async def test_a_configured_token_url_wins_over_discovery(topology: Topology) -> None:
    async def never() -> str:
        raise AssertionError("discovery must not run when a token URL is configured")

    auth = ClientCredentialsAuth(
        topology.env["AUTH_TOKEN_URL"],
        topology.env["CRM_MCP_CLIENT_ID"],
        **topology.crm_mcp_credential(),
        scope="tickets:read",
        resource=topology.env["TICKETS_MCP_RESOURCE"],
        discover_token_url=never,
    )
    try:
        assert await auth.get_token()
    finally:
        await auth.aclose()
