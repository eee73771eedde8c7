"""crm-mcp's app: an MCPServer protected as an OAuth 2.1 resource server, with its downstream clients.

User tokens must be for this server (audience CRM_MCP_RESOURCE), checked by the shared validator via
`JWTTokenVerifier` and again by the SDK (`validate_token_resource`). The downstream clients are made
once per process (patterns 1-3 in the lifespan, pattern 4's with the server, since its connect pages are
routes) and shared by every tool call.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import anyio
import httpx2
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer, RequestStateSecurity
from oauth_tokens import AccessTokenValidator, TokenExchange
from oauth_tokens.dpop_client import DPoPKey
from oauth_tokens.mcp import JWTTokenVerifier, resource_server_auth
from oauth_tokens.mcp_app import protect_mcp_app
from oauth_tokens.resource_discovery import TokenEndpointDiscovery
from oauth_tokens.service_database import READY_PATH, install_database_outage, readiness_endpoint
from oauth_tokens.shared_state import SharedState
from oauth_tokens.shared_state.flight import SharedTokens
from oauth_tokens.tool_errors import ModelFriendlyMCPServer
from oauth_tokens.vault import KeyRing
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from crm_mcp.api_key_weather import WeatherApiClient
from crm_mcp.client_credentials_tickets import tickets_credential
from crm_mcp.client_identity import JWKS_PATH, ClientCredential, ClientIdentity
from crm_mcp.crm_api_client import CrmApiClient, CrmApiCredentials
from crm_mcp.settings import Settings
from crm_mcp.third_party_calendar.tools import CalendarPattern, register_calendar_tools
from crm_mcp.tickets_mcp_client import TicketsMcpClient
from crm_mcp.token_cascade_crm_api import CallerToken
from crm_mcp.token_exchange_crm_api import ExchangedToken
from crm_mcp.tools import Downstreams, register_tools

logger = logging.getLogger(__name__)


INSTRUCTIONS = (
    "CRM assistant for sales reps: search and read your customers, add notes, list and open support "
    "tickets, check the weather where a customer is, and see or schedule meetings in your own calendar "
    "(connected once, with your consent). You only see your own accounts."
)


def shared_tokens(settings: Settings, shared: SharedState | None) -> SharedTokens | None:
    """With REDIS_URL: tokens every replica shares (one request per key and lifetime), sealed under the vault keys."""
    if shared is None:
        return None
    # The lock outlives one token request's deadline, so a waiter never starts a second one meanwhile.
    lock_seconds = settings.crm_mcp_downstream_timeout_seconds + 2
    return SharedTokens(shared, KeyRing(settings.crm_mcp_vault_keys), lock_seconds=lock_seconds)


def crm_api_credentials(
    settings: Settings,
    discovery: TokenEndpointDiscovery,
    credential: ClientCredential,
    dpop_key: DPoPKey | None = None,
    shared: SharedTokens | None = None,
) -> CrmApiCredentials:
    """Pattern 3 (forward the caller's token) or 3b (exchange it, DPoP-bound to `dpop_key` if given)."""
    logger.info("crm-api calls: CRM_API_AUTH_MODE=%s", settings.crm_api_auth_mode)
    if settings.crm_api_auth_mode == "cascade":
        return CallerToken()
    exchange = TokenExchange(
        settings.auth_token_url,
        settings.crm_mcp_client_id,
        **credential.token_endpoint_arguments(),
        timeout_seconds=settings.crm_mcp_downstream_timeout_seconds,
        discover_token_url=discovery.token_endpoint,
        dpop_key=dpop_key,
        shared_tokens=shared,
    )
    return ExchangedToken(exchange, settings.crm_api_audience)


@asynccontextmanager
async def open_downstreams(
    settings: Settings,
    credential: ClientCredential,
    shared: SharedState | None = None,
    dpop_key: DPoPKey | None = None,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
) -> AsyncIterator[Downstreams]:
    """Create the clients of patterns 1-3 once; close them (and the MCP session they hold) at shutdown.

    `shared` (REDIS_URL): patterns 2 and 3b share their tokens across replicas (shared_tokens).
    `dpop_key` (CRM_MCP_DPOP): their tokens are bound to it, the key every replica shares.
    `transport`: how the three clients reach weather-api, crm-api and tickets-mcp; None (the service)
    opens sockets, the in-process tests pass one ASGI transport that routes each host to its app.
    Token requests (patterns 2 and 3b) always use their own client."""
    tokens = shared_tokens(settings, shared)
    timeout = settings.crm_mcp_downstream_timeout_seconds
    # Without AUTH_TOKEN_URL, the token endpoint is found the way MCP clients find it: from tickets-mcp.
    discovery = TokenEndpointDiscovery(
        settings.tickets_mcp_url, (settings.auth_issuer, *settings.auth_issuer_aliases), timeout_seconds=timeout
    )
    if dpop_key is not None:
        logger.info("crm-mcp's tokens for tickets-mcp and crm-api are DPoP-bound (jkt %s)", dpop_key.thumbprint)
    tickets_auth = tickets_credential(settings, credential, discovery, dpop_key=dpop_key, shared_tokens=tokens)
    downstreams = Downstreams(
        weather=WeatherApiClient(
            settings.weather_api_url,
            settings.weather_api_key,
            key_header=settings.weather_api_key_header,
            timeout_seconds=timeout,
            transport=transport,
        ),
        crm_api=CrmApiClient(
            settings.crm_api_url,
            crm_api_credentials(settings, discovery, credential, dpop_key, tokens),
            timeout_seconds=timeout,
            dpop_key=dpop_key,
            transport=transport,
        ),
        tickets=TicketsMcpClient(settings.tickets_mcp_url, tickets_auth, timeout_seconds=timeout, transport=transport),
    )
    async with anyio.create_task_group() as session_owner:
        downstreams.tickets.bind(session_owner)
        try:
            yield downstreams
        finally:
            await downstreams.tickets.aclose()
            await downstreams.crm_api.aclose()
            await downstreams.weather.aclose()
            session_owner.cancel_scope.cancel()


HEALTH_PATH = "/health"


async def health(_: Request) -> JSONResponse:
    """Liveness for make up and compose: the process serves HTTP (downstreams are not probed)."""
    return JSONResponse({"status": "ok"})


def create_server(settings: Settings, auth: AuthSettings) -> MCPServer[Downstreams]:
    """The MCPServer: token verification, tools, and /health."""
    validator = AccessTokenValidator(settings.validator_config([settings.crm_mcp_resource]))

    identity = ClientIdentity(settings)  # its client keys: generated on first start
    logger.info("crm-mcp %s", identity.describe())
    database = settings.database()  # pattern 4's vault and connect flows, shared by every replica
    # Pattern 4: connect pages are routes, not tools.
    calendar = CalendarPattern.build(settings, validator, identity, database)
    shared = settings.shared_state("crm-mcp")  # REDIS_URL; None: per-process token caches

    @asynccontextmanager
    async def lifespan(_: MCPServer[Downstreams]) -> AsyncIterator[Downstreams]:
        await database.start(migrate_on_start=settings.database_migrate_on_start)
        try:
            async with (
                validator,
                calendar.running(),
                open_downstreams(settings, identity.own(), shared, identity.dpop_key) as downstreams,
            ):
                yield downstreams
        finally:
            await database.dispose()
            if shared is not None:
                await shared.aclose()

    mcp: MCPServer[Downstreams] = ModelFriendlyMCPServer(
        name="crm-mcp",
        instructions=INSTRUCTIONS,
        token_verifier=JWTTokenVerifier(validator, resource=settings.crm_mcp_resource),
        auth=auth,
        lifespan=lifespan,
        # Shared keys, so the retry after a URL elicitation may reach any replica (pattern 4).
        request_state_security=RequestStateSecurity(keys=list(settings.crm_mcp_request_state_keys)),
    )
    register_tools(mcp)
    register_calendar_tools(mcp, calendar)
    mcp.custom_route(HEALTH_PATH, methods=["GET"])(health)
    mcp.custom_route(READY_PATH, methods=["GET"])(readiness_endpoint(database))
    mcp.custom_route(JWKS_PATH, methods=["GET"])(identity.jwks)
    return mcp


def create_app(settings: Settings) -> Starlette:
    """The ASGI app uvicorn serves: MCP at /mcp, protected by `protect_mcp_app`, connect pages, /health.

    No server-wide scopes: each tool requires its own (see tools.py), so a token with only crm:read can
    still use the read tools; the protected-resource metadata lists every scope the tools declare.
    """
    auth = resource_server_auth(settings.auth_issuer, settings.crm_mcp_resource)
    # Browsers open the /connect/* pages at CRM_MCP_PUBLIC_URL, so its host is one crm-mcp answers to.
    public_host = urlsplit(settings.crm_mcp_public_url).netloc
    app = protect_mcp_app(
        create_server(settings, auth),
        auth=auth,
        sessions=settings,
        host=settings.crm_mcp_host,
        allowed_hosts=(*settings.crm_mcp_allowed_hosts, public_host),
        allowed_origins=settings.cors_allowed_origins,
        resource_name="crm-mcp",
        dpop=settings,
        probe_paths=(HEALTH_PATH, READY_PATH),
    )
    install_database_outage(app)  # the connect pages: 503 + Retry-After while the database is away
    return app
