"""An MCP resource server with the shared hardening installed, served on loopback and called over HTTP:
a key source that is down is a 503 with Retry-After (never the SDK's 401) and recovers within seconds;
Host and Origin are matched exactly (the SDK's own check reads `localhost:*` as a prefix).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx2
import pytest
from devkit.processes import free_port
from mcp.server.mcpserver import MCPServer
from oauth_tokens import AccessTokenValidator, ValidatorConfig
from oauth_tokens.host_check import allowed, install_strict_host_check
from oauth_tokens.key_source_outage import install_key_source_outage
from oauth_tokens.mcp import JWTTokenVerifier, resource_server_auth, transport_security

from tests.shared.conftest import Keys
from tests.shared.loopback import LoopbackAuthServer
from tests.shared.test_mcp_adapter import _serve
from tests.shared.tokens import claims, mint

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
async def resource(issuer: str, http_client: httpx2.AsyncClient) -> AsyncIterator[str]:
    """An MCP server as the services build it (verifier, transport security, both hardening pieces); its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    config = ValidatorConfig(issuers=[issuer], audiences=[url], jwks_url=f"{issuer}/jwks")
    validator = AccessTokenValidator(config, http_client=http_client)
    server = MCPServer(
        "hardened", token_verifier=JWTTokenVerifier(validator, url), auth=resource_server_auth(issuer, url)
    )
    security = transport_security(["tickets-mcp:8002"])
    app = server.streamable_http_app(transport_security=security)
    install_strict_host_check(app, security)
    install_key_source_outage(app)
    async with _serve(app, port):
        yield url


async def test_keys_unavailable_is_503_with_retry_after_then_tokens_are_accepted_within_seconds(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, resource: str, http_client: httpx2.AsyncClient
) -> None:
    token = mint(keys.rsa, claims(issuer, aud=resource))
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    auth_server.state.jwks_down = True

    down = await http_client.post(resource, json=INITIALIZE, headers=headers)

    assert down.status_code == 503
    assert 1 <= int(down.headers["retry-after"]) <= 5
    assert down.headers["cache-control"] == "no-store"
    assert "www-authenticate" not in down.headers  # nothing is wrong with the token: do not log in again
    assert down.json()["error"] == "temporarily_unavailable"

    auth_server.state.jwks_down = False
    started = anyio.current_time()
    with anyio.fail_after(5):
        while (back := await http_client.post(resource, json=INITIALIZE, headers=headers)).status_code == 503:  # noqa: ASYNC110
            await anyio.sleep(0.2)  # polling another server: there is no event to wait for
    print(f"tokens accepted {anyio.current_time() - started:.2f} s after the JWKS came back")
    assert back.status_code == 200


async def test_a_bad_token_is_still_401_while_the_keys_answer(
    keys: Keys, issuer: str, resource: str, http_client: httpx2.AsyncClient
) -> None:
    token = mint(keys.attacker, claims(issuer, aud=resource))
    refused = await http_client.post(
        resource, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    )
    assert refused.status_code == 401
    assert "invalid_token" in refused.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("host", "origin", "status"),
    [
        ("localhost:80.evil.example", None, 421),  # the SDK alone lets this through
        ("127.0.0.1:8002.evil.example", None, 421),
        ("localhost:", None, 421),
        ("localhost:8002", "http://localhost:80.evil.example", 403),  # the SDK alone lets this through too
        ("localhost:8002", "http://localhost:6274", 401),  # allowed: on to authentication
        ("tickets-mcp:8002", None, 401),
    ],
)
async def test_host_and_origin_are_matched_exactly(
    host: str, origin: str | None, status: int, resource: str, http_client: httpx2.AsyncClient
) -> None:
    headers = {**MCP_HEADERS, "Host": host} | ({"Origin": origin} if origin else {})
    answer = await http_client.post(resource, json=INITIALIZE, headers=headers)
    assert answer.status_code == status


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("localhost:8002", True),
        ("localhost:65535", True),
        ("localhost:65536", False),
        ("localhost:0", False),
        ("localhost:08002", False),
        ("localhost:8002/", False),
        ("localhost:\uff18\uff10\uff10\uff12", False),  # full-width digits: str.isdigit says yes, a browser no
        ("localhost", False),
        ("api.example.com", True),  # listed without a port: exactly that
        ("api.example.com:443", False),
    ],
)
def test_allowed_reads_name_star_as_any_port_and_nothing_else(value: str, expected: bool) -> None:
    assert allowed(value, ["localhost:*", "api.example.com"]) is expected
