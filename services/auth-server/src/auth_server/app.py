"""The auth-server ASGI app: discovery, JWKS, authorize (login + consent), token, register, health."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from oauth_tokens.cors import PREFLIGHT_MAX_AGE_SECONDS, origin_regex
from oauth_tokens.database import DatabaseUnavailableError
from oauth_tokens.service_database import READY_PATH, readiness_endpoint
from oauth_tokens.shared_state import SharedStateUnavailable
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from auth_server import authorize, metadata, register, revoke, token
from auth_server.config import load_config
from auth_server.errors import (
    OAuthError,
    database_unavailable_handler,
    oauth_error_handler,
    shared_state_unavailable_handler,
)
from auth_server.policy import audiences_of
from auth_server.settings import AuthServerSettings, environment
from auth_server.state import AuthServer

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("auth_server.access")

# Cross-origin (CORS) policy. Browser-based MCP clients (MCP Inspector) call these with fetch(); never
# /authorize, a page the user visits. No endpoint allows credentials (cookies): nothing here reads them.
# - Public metadata (discovery, JWKS): any origin, GET only. It is the same document for everyone and
#   carries no secret, so `*` gives a page nothing it could not fetch from a server.
PUBLIC_CORS_PATHS = frozenset({"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/jwks"})
# - The API endpoints that issue, revoke or register: only the origins in CORS_ALLOWED_ORIGINS, the list
#   the MCP servers use (oauth_tokens.cors; default: pages on localhost, 127.0.0.1 and [::1], any port).
#   A page from another origin gets 400 at its preflight and no CORS header on an answer, so it cannot
#   read tokens or registrations; a non-browser client sends no Origin and is unaffected.
API_CORS_PATHS = frozenset({"/token", "/revoke", "/register"})
CORS_PATHS = PUBLIC_CORS_PATHS | API_CORS_PATHS
_CORS_HEADERS = ["Authorization", "Content-Type", "MCP-Protocol-Version", "DPoP"]


class ApiCorsMiddleware:
    """CORS by path under the policy above; every other path (the pages) gets none."""

    def __init__(self, app: ASGIApp, *, allowed_origins: Sequence[str]) -> None:
        self.app = app
        self.public = CORSMiddleware(app, allow_origins=["*"], allow_methods=["GET"], allow_headers=_CORS_HEADERS)
        self.api = CORSMiddleware(
            app,
            allow_origin_regex=origin_regex(allowed_origins),
            allow_methods=["POST"],
            allow_headers=_CORS_HEADERS,
            expose_headers=["DPoP-Nonce"],  # a browser client's retry after use_dpop_nonce (RFC 9449 §8)
            max_age=PREFLIGHT_MAX_AGE_SECONDS,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in PUBLIC_CORS_PATHS:
            await self.public(scope, receive, send)
        elif scope["type"] == "http" and scope["path"] in API_CORS_PATHS:
            await self.api(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def create_app(settings: AuthServerSettings, environ: Mapping[str, str] | None = None) -> FastAPI:
    """Build the app; reads the config file and secrets (from `environ`, default: env over `.env`)."""
    environ = environment() if environ is None else environ
    config = load_config(settings.auth_server_config, environ)
    server = AuthServer.build(settings, config, environ)
    logger.warning(
        "auth-server is a DEVELOPMENT STAND-IN authorization server (demo users); "
        "use a real identity provider in production"
    )
    logger.info(
        "Issuer %s; config %s; %d resources, %d clients, %d users; signing key %s",
        settings.auth_issuer,
        settings.auth_server_config or "auth_server/auth-server.toml (packaged default)",
        len(config.resources),
        len(config.clients),
        len(config.users),
        server.keystore.signing_key().kid,
    )
    if settings.auth_server_cimd_allow_loopback:
        logger.warning(
            "AUTH_SERVER_CIMD_ALLOW_LOOPBACK is on: client metadata documents may be fetched from loopback "
            "addresses, so a client_id URL can make this server call services on its own machine (development only)"
        )
    for name in config.resources:
        logger.info("Tokens for resource %s carry aud %s", name, ", ".join(audiences_of(config, name)))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await server.database.start(migrate_on_start=settings.database_migrate_on_start)
            yield
        finally:
            await server.id_jags.aclose()
            await server.database.dispose()
            if server.shared is not None:
                await server.shared.aclose()

    app = FastAPI(
        lifespan=lifespan,
        title="auth-server (development stand-in)",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.auth_server = server
    app.add_exception_handler(OAuthError, oauth_error_handler)
    app.add_exception_handler(DatabaseUnavailableError, database_unavailable_handler)
    app.add_exception_handler(SharedStateUnavailable, shared_state_unavailable_handler)
    for module in (metadata, authorize, token, revoke, register):
        app.include_router(module.router)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process serves."""
        return {"status": "ok"}

    async def signing_keys_ready() -> bool:
        try:
            server.keystore.signing_key()
        except (OSError, RuntimeError, ValueError) as error:  # the shared key directory is unreadable
            logger.warning("Signing keys unavailable: %s", type(error).__name__)
            return False
        return True

    # Readiness: the database answers with its schema and a signing key can be read; else 503 + Retry-After
    # naming what is down ({"unavailable": [...]}). Redis is not a check: without it the counters degrade
    # to per-process and only replay checks refuse (503), so a replica stays in rotation.
    readiness = readiness_endpoint(server.database, {"signing keys": signing_keys_ready})
    app.add_route(READY_PATH, readiness, methods=["GET"])

    app.add_middleware(ApiCorsMiddleware, allowed_origins=settings.cors_allowed_origins)

    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # The path only: query strings are not logged (uvicorn's access log is off, see __main__).
        response = await call_next(request)
        access_logger.info("%s %s %d", request.method, request.url.path, response.status_code)
        return response

    return app
