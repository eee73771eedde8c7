"""Host and Origin, measured on main: the strict Host check covered /mcp only (/connect/*, /.well-known and
/health answered any Host, so a DNS-rebound name reached them), and the CORS origin pattern accepted port
99999 and leading zeros in a preflight although the Host check refused them.

crm-mcp and tickets-mcp are the session topology's real processes (these requests never reach their
downstreams, and change nothing). One
policy for every route: a Host or an Origin outside the allow-list is refused everywhere, except /health,
which is exempt on purpose (orchestrator probes send the pod's IP as Host) and says only "ok".
"""

from __future__ import annotations

import httpx2
import pytest
from devkit.processes import ServiceProcess
from devkit.topology import Topology

pytestmark = pytest.mark.anyio

PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
REBOUND_HOSTS = ["evil.example:8001", "localhost:99999", "localhost:08001", "localhost:80.evil.example"]
CRM_MCP_ROUTES = [
    "/mcp",
    "/.well-known/oauth-protected-resource/mcp",
    "/connect/calendar?ref=abc",
    "/connect/calendar/signed-in",
    "/connect/calendar/callback?code=x&state=y",
]


@pytest.fixture
def services(topology: Topology) -> dict[str, ServiceProcess]:
    return topology.services


@pytest.mark.parametrize("origin", ["http://localhost:99999", "http://localhost:08001", "http://127.0.0.1:0"])
async def test_a_preflight_from_an_impossible_port_is_refused(services: dict[str, ServiceProcess], origin: str) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        allowed = await http.options(
            services["crm-mcp"].url + "/mcp", headers={**PREFLIGHT, "Origin": "http://localhost:6274"}
        )
        refused = await http.options(services["crm-mcp"].url + "/mcp", headers={**PREFLIGHT, "Origin": origin})

    assert allowed.status_code == 200
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize("host", REBOUND_HOSTS)
async def test_every_crm_mcp_route_refuses_a_host_outside_the_list(
    services: dict[str, ServiceProcess], host: str
) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        statuses = {
            route: (await http.get(services["crm-mcp"].url + route, headers={"Host": host})).status_code
            for route in CRM_MCP_ROUTES
        }
    assert statuses == dict.fromkeys(CRM_MCP_ROUTES, 421)


async def test_every_crm_mcp_route_refuses_an_origin_outside_the_list(services: dict[str, ServiceProcess]) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        statuses = {
            route: (
                await http.get(services["crm-mcp"].url + route, headers={"Origin": "http://evil.example"})
            ).status_code
            for route in CRM_MCP_ROUTES
        }
    assert statuses == dict.fromkeys(CRM_MCP_ROUTES, 403)


async def test_tickets_mcp_metadata_refuses_a_rebound_host(services: dict[str, ServiceProcess]) -> None:
    url = services["tickets-mcp"].url + "/.well-known/oauth-protected-resource/mcp"
    async with httpx2.AsyncClient(timeout=10) as http:
        listed = await http.get(url)
        rebound = await http.get(url, headers={"Host": "evil.example"})
    assert listed.status_code == 200
    assert rebound.status_code == 421


@pytest.mark.parametrize("name", ["crm-mcp", "tickets-mcp"])
async def test_health_is_the_one_exemption_for_probes_by_pod_ip(services: dict[str, ServiceProcess], name: str) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        probe = await http.get(services[name].url + "/health", headers={"Host": "10.42.0.17:8001"})
    assert probe.status_code == 200
    assert probe.json() == {"status": "ok"}
