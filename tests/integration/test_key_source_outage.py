"""crm-mcp started while the authorization server is down: 503 with Retry-After (not 401), then, once the
server is up, a user's token is accepted within seconds (not after the 30 s unknown-kid cool-down).

Its own two-process topology (crm-mcp, then auth-server), so stopping the authorization server disturbs no
other test. The recovery time is printed; the bound asserted is only what tells it from the cool-down.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from devkit.topology import DATA_DIR_VARIABLES, Topology, topology_env

from tests.shared.tokens import claims, mint, rsa_key

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def without_auth_server(tmp_path: Path) -> Iterator[Topology]:
    """crm-mcp running, the authorization server it trusts not (yet) started."""
    topology = Topology(env=topology_env(), workdir=tmp_path)
    for name, variable in DATA_DIR_VARIABLES.items():
        topology.env[variable] = str(tmp_path / name / "data")
    try:
        topology.start("crm-mcp")
        yield topology
    finally:
        for service in topology.services.values():
            service.stop()


async def test_crm_mcp_answers_503_while_the_keys_are_unreachable_and_recovers_within_seconds(
    without_auth_server: Topology,
) -> None:
    topology = without_auth_server
    # Any well-formed token: with no key source its kid cannot be checked either way.
    token = mint(rsa_key("some-kid"), claims(topology.env["AUTH_ISSUER"], aud=topology.crm_mcp_url))
    async with httpx2.AsyncClient(timeout=10) as http:
        down = await http.post(
            topology.crm_mcp_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
        )
    assert down.status_code == 503
    assert 1 <= int(down.headers["retry-after"]) <= 5
    assert "www-authenticate" not in down.headers  # the client must not throw its token away
    assert down.json()["error"] == "temporarily_unavailable"

    topology.start("auth-server")
    started = anyio.current_time()
    failures: list[str] = []
    with anyio.fail_after(15):  # the cool-down would take 30 s; the back-off takes about one
        while True:
            try:
                async with topology.user_session("alice") as client:
                    tools = await client.list_tools()
                break
            except Exception as error:
                failures.append(type(error).__name__)
                await anyio.sleep(0.5)
    print(f"alice's token accepted {anyio.current_time() - started:.2f} s after the auth-server started ({failures})")
    assert "get_weather" in {tool.name for tool in tools.tools}
