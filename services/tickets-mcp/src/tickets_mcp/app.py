"""tickets-mcp's ASGI app: an MCP server (Streamable HTTP, /mcp) protected as an OAuth 2.1 resource server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer
from oauth_tokens import AccessTokenValidator
from oauth_tokens.mcp import JWTTokenVerifier, resource_server_auth
from oauth_tokens.mcp_app import protect_mcp_app
from oauth_tokens.service_database import READY_PATH, readiness_endpoint
from oauth_tokens.tool_errors import ModelFriendlyMCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tickets_mcp.settings import TicketsMcpSettings
from tickets_mcp.store import TicketStore
from tickets_mcp.tools import register_tools

logger = logging.getLogger("tickets_mcp")

MCP_PATH = "/mcp"
HEALTH_PATH = "/health"

INSTRUCTIONS = (
    "Support tickets for crm-api's customers (ids like cus_001). list_tickets and get_ticket need the "
    "scope tickets:read; create_ticket and update_ticket need tickets:write."
)


def create_app(settings: TicketsMcpSettings) -> Starlette:
    """Build the MCP server and its Starlette app; the app's lifespan runs the MCP session manager."""
    database = settings.database()
    store = TicketStore(database)
    validator = AccessTokenValidator(settings.validator_config(audiences=[settings.tickets_mcp_resource]))

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[dict[str, Any]]:
        await database.start(migrate_on_start=settings.database_migrate_on_start)
        logger.info(
            "tickets-mcp started: resource %s, issuer %s, database %s",
            settings.tickets_mcp_resource,
            settings.auth_issuer,
            database.description,
        )
        try:
            async with validator:
                yield {}
        finally:
            await database.dispose()

    auth = resource_server_auth(settings.auth_issuer, settings.tickets_mcp_resource)
    mcp: MCPServer[dict[str, Any]] = ModelFriendlyMCPServer(
        name="tickets-mcp",
        instructions=INSTRUCTIONS,
        token_verifier=JWTTokenVerifier(validator, resource=settings.tickets_mcp_resource),
        auth=auth,
        lifespan=lifespan,
        log_level=settings.log_level,
    )
    register_tools(mcp, store)

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    # Called rather than used as a decorator: the SDK's decorator is untyped (mypy would flag it).
    mcp.custom_route(HEALTH_PATH, methods=["GET"])(health)
    mcp.custom_route(READY_PATH, methods=["GET"])(readiness_endpoint(database))  # 503 while the database is away

    # Stateful sessions (the SDK default): crm-mcp keeps one session open and reuses it. A session is
    # bound to the (client_id, iss, sub) of the token that opened it, so a refreshed token of the same
    # client keeps working; idle sessions are closed after MCP_SESSION_IDLE_TIMEOUT_SECONDS, and each
    # caller may hold MCP_MAX_SESSIONS_PER_USER of the MCP_MAX_SESSIONS (oauth_tokens.mcp_sessions).
    return protect_mcp_app(
        mcp,
        auth=auth,
        sessions=settings,
        host=settings.tickets_mcp_host,
        allowed_hosts=settings.tickets_mcp_allowed_hosts,
        allowed_origins=settings.cors_allowed_origins,
        resource_name="tickets-mcp",
        dpop=settings,
        mcp_path=MCP_PATH,
        probe_paths=(HEALTH_PATH, READY_PATH),
    )
