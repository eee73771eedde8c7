"""crm-mcp's tools in one process: the real downstream apps behind an ASGI transport, no service started.

`InProcessTopology` runs crm-api, tickets-mcp and weather-api as the ASGI apps their `create_app` builds
(each with its lifespan, its own SQLite database in a temporary directory and the demo data), and
`Routes`, one httpx2 transport, sends each request crm-mcp makes to the app mounted for its host: no
socket, no subprocess. crm-mcp's side is its own code: `register_tools` on a `ModelFriendlyMCPServer`
whose lifespan is `open_downstreams` (patterns 1-3, as the service wires them), reached with the MCP
SDK's in-process `Client`.

Two parts are not the real ones, because the real ones cannot run in process here:
- The authorization server is the shared tests' loopback stand-in (`tests.shared.loopback`, uvicorn in
  a thread): the real auth-server needs its own database, users and crm-mcp's published client keys,
  and its token requests (ClientCredentialsAuth, TokenEndpoint) open their own sockets. It serves the
  JWKS of a key this module generates and answers client-credentials requests with real JWTs signed
  by it, which crm-api's and tickets-mcp's real validators check (issuer, audience, scope, expiry).
- The caller's HTTP layer: in process, no bearer middleware runs, so `as_caller` does what the SDK's
  `AuthContextMiddleware` does after crm-mcp's real `JWTTokenVerifier` accepted the user's JWT.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from crm_api.app import create_app as create_crm_api
from crm_api.settings import CrmApiSettings
from crm_mcp.app import open_downstreams
from crm_mcp.client_identity import ClientCredential
from crm_mcp.settings import Settings
from crm_mcp.third_party_calendar.tools import CalendarPattern, register_calendar_tools
from crm_mcp.tools import Downstreams, register_tools
from mcp import Client
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.mcpserver import MCPServer, RequestStateSecurity
from oauth_tokens import AccessTokenValidator, ValidatorConfig
from oauth_tokens.mcp import JWTTokenVerifier
from oauth_tokens.tool_errors import ModelFriendlyMCPServer
from starlette.types import ASGIApp
from tickets_mcp.app import create_app as create_tickets_mcp
from tickets_mcp.settings import TicketsMcpSettings
from weather_api.app import create_app as create_weather_api
from weather_api.settings import WeatherApiSettings

from tests.shared.loopback import LoopbackAuthServer
from tests.shared.tokens import SigningKeyPair, claims, ec_key, mint

# Hosts the downstreams answer at inside the process (no DNS, no socket: `Routes` maps them to apps).
CRM_API = "http://crm-api.test"
WEATHER_API = "http://weather-api.test"
TICKETS_MCP = "http://tickets-mcp.test/mcp"
CRM_MCP = "http://crm-mcp.test/mcp"
CLIENT_ID = "crm-mcp-agent"
WEATHER_KEY = "in-process-weather-key"
CLIENT_OPTIONS = frozenset({"elicitation_callback", "mode"})  # as_caller's options that are the Client's


class Routes(httpx2.AsyncBaseTransport):
    """One transport for every downstream: the ASGI app mounted for the request's host, or ConnectError."""

    def __init__(self, apps: Mapping[str, ASGIApp]) -> None:
        self._apps = {host: httpx2.ASGITransport(app) for host, app in apps.items()}
        self.requests: Counter[str] = Counter()  # host -> requests crm-mcp sent there

    def mount(self, url: str, app: ASGIApp) -> None:
        """From now on, `url`'s host is `app`."""
        self._apps[httpx2.URL(url).host] = httpx2.ASGITransport(app)

    @contextmanager
    def replaced(self, url: str, app: ASGIApp | None) -> Iterator[None]:
        """Within the block, `url`'s host is `app` instead (None: nothing listens there)."""
        host = httpx2.URL(url).host
        real = self._apps.pop(host)
        if app is not None:
            self._apps[host] = httpx2.ASGITransport(app)
        try:
            yield
        finally:
            self._apps[host] = real

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests[request.url.host] += 1
        transport = self._apps.get(request.url.host)
        if transport is None:
            raise httpx2.ConnectError(f"nothing listens at {request.url.host}", request=request)
        return await transport.handle_async_request(request)


@dataclass
class InProcessTopology:
    """The running downstream apps, the token issuer, and crm-mcp's settings pointing at them."""

    issuer: LoopbackAuthServer
    key: SigningKeyPair
    routes: Routes
    settings: Settings
    verifier: JWTTokenVerifier
    # What crm-mcp asked the token endpoint for (pattern 2); `granted_scope`, if set, replaces the scope granted.
    tickets_tokens: list[dict[str, str]] = field(default_factory=list)
    granted_scope: str | None = None
    _server: MCPServer[Downstreams] | None = None

    def user_token(self, scope: str, *, sub: str = "alice", aud: str | list[str] | None = None) -> str:
        """A user's access token as the auth-server issues it for crm-mcp (cascade: crm-api is an audience too)."""
        audience = aud if aud is not None else [CRM_MCP, CRM_API]
        return mint(self.key, claims(self.issuer.url, sub=sub, aud=audience, scope=scope, jti=uuid.uuid4().hex))

    def _client_credentials_token(self, form: dict[str, str]) -> str:
        """What the auth-server answers crm-mcp-agent (pattern 2): its own JWT, for the resource it asked."""
        self.tickets_tokens.append(form)
        payload = claims(
            self.issuer.url,
            sub=CLIENT_ID,
            client_id=CLIENT_ID,
            aud=form.get("resource", ""),
            scope=self.granted_scope if self.granted_scope is not None else form.get("scope", ""),
            jti=uuid.uuid4().hex,
        )
        return mint(self.key, payload)

    def server(self, settings: Settings, calendar: CalendarPattern | None = None) -> MCPServer[Downstreams]:
        """crm-mcp's tools (and pattern 4's, given `calendar`) on an MCPServer built as create_server builds it,
        whose lifespan opens crm-mcp's real downstream clients (open_downstreams) through `routes`."""

        @asynccontextmanager
        async def lifespan(_: MCPServer[Downstreams]) -> AsyncIterator[Downstreams]:
            credential = ClientCredential("client_secret_post", client_secret="in-process-secret")
            async with open_downstreams(settings, credential, transport=self.routes) as downstreams:
                yield downstreams

        server: MCPServer[Downstreams] = ModelFriendlyMCPServer(
            name="crm-mcp",
            lifespan=lifespan,
            request_state_security=RequestStateSecurity(keys=list(settings.crm_mcp_request_state_keys)),
        )
        register_tools(server)
        if calendar is not None:
            register_calendar_tools(server, calendar)
        return server

    @asynccontextmanager
    async def as_caller(
        self, token: str, *, server: MCPServer[Downstreams] | None = None, **options: Any
    ) -> AsyncIterator[Client]:
        """An MCP client of crm-mcp, calling as the user `token` names (checked by crm-mcp's verifier).

        `server`: this one instead of the topology's (built once; its lifespan runs per client). `options`:
        the Client's (e.g. elicitation_callback), else crm-mcp settings to override for a fresh server
        (e.g. crm_mcp_downstream_timeout_seconds)."""
        client_options = {name: value for name, value in options.items() if name in CLIENT_OPTIONS}
        settings = {name: value for name, value in options.items() if name not in CLIENT_OPTIONS}
        if settings:
            server = self.server(self.settings.model_copy(update=settings))
        elif server is None:
            self._server = self._server or self.server(self.settings)
            server = self._server
        access_token = await self.verifier.verify_token(token)
        assert access_token is not None, "crm-mcp's verifier refused the test's user token"
        # What the SDK's AuthContextMiddleware does for an HTTP request whose bearer token was accepted.
        reset = auth_context_var.set(AuthenticatedUser(access_token))
        try:
            async with Client(server, **client_options) as client:
                yield client
        finally:
            auth_context_var.reset(reset)


def _settings(issuer: str, data_dir: Path) -> Settings:
    """crm-mcp's settings for the in-process topology (pattern 4's are required but unused by these tools).

    The downstream deadline is the service's default (10 s), so a slow machine fails no call; the test
    that waits one out sets a short one for itself (`as_caller(..., crm_mcp_downstream_timeout_seconds=…)`)."""
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    return Settings(
        auth_issuer=issuer,
        auth_jwks_url=f"{issuer}/jwks",
        auth_token_url=f"{issuer}/token",
        crm_mcp_resource=CRM_MCP,
        weather_api_url=WEATHER_API,
        weather_api_key=WEATHER_KEY,
        crm_mcp_client_id=CLIENT_ID,
        crm_mcp_client_auth_method="client_secret_post",
        crm_mcp_client_secret="in-process-secret",
        tickets_mcp_url=TICKETS_MCP,
        tickets_mcp_resource=TICKETS_MCP,
        crm_api_url=CRM_API,
        crm_api_audience=CRM_API,
        crm_mcp_public_url="http://crm-mcp.test",
        crm_mcp_data_dir=data_dir / "crm-mcp",
        crm_mcp_vault_keys=f"k1:{key}",
        crm_mcp_request_state_keys=key,
        calendar_api_url="http://calendar-api.test",
        calendar_api_audience="http://calendar-api.test",
        calendar_auth_issuer="http://calendar-auth.test",
        calendar_client_id="crm-mcp",
    )


@asynccontextmanager
async def in_process_topology(data_dir: Path) -> AsyncIterator[InProcessTopology]:
    """Start the issuer and the three downstream apps (lifespans, migrations, demo data); stop them after."""
    issuer = LoopbackAuthServer().start()
    key = ec_key("in-process-1")
    issuer.state.jwks = {"keys": [key.public_jwk()]}
    trust: dict[str, Any] = {"auth_issuer": issuer.url, "auth_jwks_url": f"{issuer.url}/jwks", "_env_file": None}
    crm_api = create_crm_api(CrmApiSettings(**trust, crm_api_audience=CRM_API, crm_api_data_dir=data_dir / "crm"))
    tickets_mcp = create_tickets_mcp(
        TicketsMcpSettings(
            **trust,
            tickets_mcp_resource=TICKETS_MCP,
            tickets_mcp_data_dir=data_dir / "tickets",
            tickets_mcp_allowed_hosts=("tickets-mcp.test",),
        )
    )
    weather_api = create_weather_api(WeatherApiSettings(weather_api_keys=(WEATHER_KEY,), _env_file=None))
    hosts = {"crm-api.test": crm_api, "tickets-mcp.test": tickets_mcp, "weather-api.test": weather_api}
    settings = _settings(issuer.url, data_dir)
    validator = AccessTokenValidator(
        ValidatorConfig(issuers=[issuer.url], audiences=[CRM_MCP], jwks_url=f"{issuer.url}/jwks")
    )
    topology = InProcessTopology(issuer, key, Routes(hosts), settings, JWTTokenVerifier(validator, CRM_MCP))
    issuer.state.token_factory = topology._client_credentials_token
    try:
        async with AsyncExitStack() as running:
            for app in hosts.values():
                await running.enter_async_context(app.router.lifespan_context(app))
            await running.enter_async_context(validator)
            yield topology
    finally:
        issuer.stop()
