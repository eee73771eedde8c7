"""MCP adapter: the TokenVerifier never raises, picks the right resource; tool scopes; a real MCP round trip."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn
from devkit.processes import free_port
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecurityMiddleware
from oauth_tokens import AccessTokenValidator, ClientCredentialsAuth, ValidatorConfig
from oauth_tokens.cors import DEFAULT_ALLOWED_ORIGINS
from oauth_tokens.mcp import JWTTokenVerifier, require_tool_scopes, resource_server_auth, transport_security
from starlette.requests import Request

from tests.shared.conftest import Keys
from tests.shared.loopback import LoopbackAuthServer
from tests.shared.tokens import AUDIENCE, claims, mint

pytestmark = pytest.mark.anyio

RESOURCE = "http://localhost:8002/mcp"


@pytest.fixture
async def mcp_validator(issuer: str, http_client: httpx2.AsyncClient) -> AsyncIterator[AccessTokenValidator]:
    config = ValidatorConfig(issuers=[issuer], audiences=[RESOURCE, AUDIENCE], jwks_url=f"{issuer}/jwks")
    async with AccessTokenValidator(config, http_client=http_client) as validator:
        yield validator


@pytest.mark.parametrize("garbage", ["", "garbage", "a.b.c", "x" * 20_000, "eyJhbGciOiJub25lIn0.e30."])
async def test_verifier_returns_none_for_garbage(garbage: str, mcp_validator: AccessTokenValidator) -> None:
    assert await JWTTokenVerifier(mcp_validator, RESOURCE).verify_token(garbage) is None


async def test_verifier_returns_none_when_keys_are_unreachable(keys: Keys, issuer: str) -> None:
    config = ValidatorConfig(issuers=[issuer], audiences=[RESOURCE], jwks_url=f"http://127.0.0.1:{free_port()}/jwks")
    async with AccessTokenValidator(config) as validator:
        token = mint(keys.rsa, claims(issuer, aud=RESOURCE))
        assert await JWTTokenVerifier(validator, RESOURCE).verify_token(token) is None


async def test_verifier_maps_a_valid_token(keys: Keys, issuer: str, mcp_validator: AccessTokenValidator) -> None:
    token_claims = claims(issuer, aud=[AUDIENCE, RESOURCE + "/"], scope="tickets:read crm:read")
    token = mint(keys.rsa, token_claims)

    access = await JWTTokenVerifier(mcp_validator, RESOURCE).verify_token(token)

    assert access == AccessToken(
        token=token,
        client_id="crm-mcp",
        scopes=["crm:read", "tickets:read"],
        expires_at=token_claims["exp"],
        resource=RESOURCE + "/",  # the audience naming this server, trailing slash aside
        subject="alice",
        claims=token_claims,
    )


async def test_verifier_falls_back_to_the_first_audience(
    keys: Keys, issuer: str, mcp_validator: AccessTokenValidator
) -> None:
    token = mint(keys.rsa, claims(issuer, aud=[AUDIENCE, "https://other"], client_id=None))
    access = await JWTTokenVerifier(mcp_validator, RESOURCE).verify_token(token)
    assert access is not None
    assert access.resource == AUDIENCE
    assert access.client_id == "alice"  # no client claim: attributed to the subject


@contextlib.contextmanager
def _caller(scopes: list[str]) -> Any:
    user = AuthenticatedUser(AccessToken(token="t", client_id="c", scopes=scopes, subject="alice"))
    reset_token = auth_context_var.set(user)
    try:
        yield
    finally:
        auth_context_var.reset(reset_token)


def test_require_tool_scopes() -> None:
    with _caller(["tickets:read"]):
        assert require_tool_scopes("tickets:read").subject == "alice"
        with pytest.raises(ToolError, match=r"^Missing required scope 'tickets:write' for this tool$"):
            require_tool_scopes("tickets:read", "tickets:write")
        with pytest.raises(ToolError, match="Missing required scopes 'a', 'b' for this tool"):
            require_tool_scopes("a", "b")
    with pytest.raises(ToolError, match="authenticated caller"):
        require_tool_scopes("tickets:read")


def test_resource_server_auth() -> None:
    settings = resource_server_auth("http://localhost:9000", RESOURCE, None)
    assert str(settings.issuer_url) == "http://localhost:9000"
    assert str(settings.resource_server_url) == RESOURCE
    assert settings.validate_token_resource is True
    assert settings.required_scopes is None
    assert resource_server_auth("http://as", RESOURCE, ["tickets:read"]).required_scopes == ["tickets:read"]


@pytest.mark.parametrize(
    ("host", "origin", "status"),
    [
        ("127.0.0.1:8002", None, None),  # no Origin: a non-browser client
        ("localhost:55555", "http://localhost:6274", None),  # a loopback page, any port
        ("[::1]:8002", "http://[::1]:8002", None),
        ("tickets-mcp:8002", "https://app.example.com", None),  # an extra host; an origin as written
        ("localhost", None, 421),  # the localhost patterns need a port
        ("tickets-mcp:9999", None, 421),  # an extra host without `:*` allows only its own port
        ("evil.example:8002", None, 421),
        ("localhost:8002", "http://evil.example", 403),
        ("localhost:8002", "http://localhost", 403),  # `:*` means some port
        ("localhost:8002", "https://localhost:6274", 403),  # another scheme is another origin
        ("localhost:8002", "https://tickets-mcp:8002", 403),  # an allowed Host is not an allowed Origin
        ("localhost:8002", "https://app.example.com:8443", 403),
        ("api.example.com", "https://app.example.com", None),
        ("api.example.com:443", None, 421),
    ],
)
async def test_transport_security_allows_what_its_docstring_says(
    host: str, origin: str | None, status: int | None
) -> None:
    origins = [*DEFAULT_ALLOWED_ORIGINS, "https://app.example.com"]
    middleware = TransportSecurityMiddleware(transport_security(["tickets-mcp:8002", "api.example.com"], origins))
    headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin else [])
    refusal = await middleware.validate_request(Request({"type": "http", "method": "GET", "headers": headers}))
    assert (refusal.status_code if refusal else None) == status


async def test_transport_security_allows_loopback_origins_by_default() -> None:
    assert transport_security().allowed_origins == list(DEFAULT_ALLOWED_ORIGINS)


@contextlib.asynccontextmanager
async def _serve(app: Any, port: int) -> AsyncIterator[None]:
    """Serve `app` with uvicorn as a task of this test's event loop."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
                await anyio.sleep(0.01)
        try:
            yield
        finally:
            server.should_exit = True


async def test_mcp_round_trip_with_client_credentials(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"

    def issue(form: dict[str, str]) -> str:  # the token endpoint mints a real JWT for the asked resource
        return mint(keys.rsa, claims(issuer, aud=form["resource"], sub="agent", client_id="agent", scope=form["scope"]))

    auth_server.state.token_factory = issue
    config = ValidatorConfig(issuers=[issuer], audiences=[resource], jwks_url=f"{issuer}/jwks")
    validator = AccessTokenValidator(config, http_client=http_client)
    server = MCPServer(
        "tickets",
        token_verifier=JWTTokenVerifier(validator, resource),
        auth=resource_server_auth(issuer, resource, None),
    )

    @server.tool()
    async def whoami() -> str:
        token = require_tool_scopes("tickets:read")
        return f"{token.subject} via {token.client_id}"

    @server.tool()
    async def close_ticket() -> str:
        require_tool_scopes("tickets:write")
        return "closed"

    auth = ClientCredentialsAuth(
        f"{auth_server.url}/token", "agent", "agent-secret", scope="tickets:read", resource=resource
    )
    async with (
        _serve(server.streamable_http_app(), port),
        httpx2.AsyncClient(auth=auth, verify=False, timeout=10) as mcp_http,
        streamable_http_client(resource, http_client=mcp_http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        allowed = await session.call_tool("whoami", {})
        refused = await session.call_tool("close_ticket", {})
        # A token issued for another resource never gets in.
        foreign = mint(keys.rsa, claims(issuer, aud="http://127.0.0.1:1/mcp", scope="tickets:read"))
        answer = await http_client.post(resource, json={}, headers={"Authorization": f"Bearer {foreign}"})
    await auth.aclose()

    assert allowed.content[0].text == "agent via agent"  # type: ignore[union-attr]
    assert refused.is_error
    refusal = refused.content[0].text  # type: ignore[union-attr]
    assert refusal.endswith("Missing required scope 'tickets:write' for this tool")
    assert answer.status_code == 401
    assert auth_server.state.counts["token"] == 1
    assert auth_server.state.token_requests[0].form["resource"] == resource
