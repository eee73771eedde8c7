"""CORS for MCP resource servers: which browser origins may call the MCP endpoint, answered before the bearer check.

A browser-based MCP client (one that runs in a web page and talks to the server directly) sends a CORS
preflight, `OPTIONS` without the token, before every MCP request: `Authorization` and `Content-Type:
application/json` are not "simple". Behind the SDK's bearer check that preflight gets a 401 without CORS
headers and the browser blocks every request. `allow_browser_origins` answers preflights for the MCP path
first, without authentication, for the origins in CORS_ALLOWED_ORIGINS only, and adds the CORS headers to
every answer to them (a 401's `WWW-Authenticate` included, so the client can start its login).

The same list is what the SDK's DNS-rebinding protection accepts as `Origin` (`transport_security` in
`oauth_tokens.mcp`), so a page from any other origin is refused twice: its preflight gets 400 (the browser
sends nothing more), and a request that carries its `Origin` anyway gets 403. No credentials mode: tokens
travel in `Authorization`, never in cookies, so `Access-Control-Allow-Credentials` is never sent and `*` is
never allowed. Needs Starlette (the `mcp` or `fastapi` extra).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from pydantic import field_validator
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from oauth_tokens.settings import CommaList, ServiceSettings

__all__ = [
    "DEFAULT_ALLOWED_ORIGINS",
    "MCP_ALLOWED_HEADERS",
    "MCP_EXPOSED_HEADERS",
    "PORT_PATTERN",
    "CorsSettings",
    "McpCorsMiddleware",
    "allow_browser_origins",
    "checked_origin",
]

# Loopback pages on any port: MCP Inspector's web UI (http://localhost:6274) and local browser clients.
DEFAULT_ALLOWED_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*")

MCP_METHODS = ("GET", "POST", "DELETE")
MCP_ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Mcp-Session-Id",
    "MCP-Protocol-Version",
    "Mcp-Method",
    "Mcp-Name",
    "Last-Event-ID",
    "DPoP",  # a DPoP proof (RFC 9449, docs/dpop.md)
)
# The login starts from WWW-Authenticate; every request after initialize echoes Mcp-Session-Id; a DPoP
# client retries with the DPoP-Nonce a use_dpop_nonce answer carries.
MCP_EXPOSED_HEADERS = ("WWW-Authenticate", "Mcp-Session-Id", "DPoP-Nonce")
PREFLIGHT_MAX_AGE_SECONDS = 600

# scheme://host[:port], where the port may be `*` (any port): the syntax of the SDK's allowed_origins.
# A port is 1-65535 without a leading zero, as the Host check reads it (`oauth_tokens.host_check`).
# A TCP port as written in an origin or a Host: 1-65535, no leading zero (`oauth_tokens.host_check` uses it too).
# Here, not there, because this module must import without the MCP SDK (the auth-server has no `mcp` extra).
PORT_PATTERN = "(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_ORIGIN = re.compile(r"https?://(?:\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(?::(?:" + PORT_PATTERN + r"|\*))?")


def checked_origin(value: str) -> str:
    """`value`, lower-cased, if it is an origin pattern; else ValueError (whose message never quotes it)."""
    origin = value.strip().lower()
    if origin == "*":
        raise ValueError("`*` is not allowed: list each origin, e.g. https://app.example.com or http://localhost:*")
    if not _ORIGIN.fullmatch(origin):
        raise ValueError("each origin must be scheme://host or scheme://host:port (port `*`: any port), no path")
    return origin


def origin_regex(origins: Sequence[str]) -> str | None:
    """A regular expression that fully matches exactly the origins `origins` allows; None for none."""
    alternatives = [
        re.escape(origin[: -len(":*")]) + ":" + PORT_PATTERN if origin.endswith(":*") else re.escape(origin)
        for origin in origins
    ]
    return "|".join(alternatives) or None


class CorsSettings(ServiceSettings):
    """Mixin for an MCP server's settings: CORS_ALLOWED_ORIGINS, the browser origins allowed to call it.

    Comma-separated origins (`scheme://host[:port]`, `:*` for any port); empty: no browser page may call
    the server (non-browser clients send no Origin and are unaffected).
    """

    cors_allowed_origins: CommaList = DEFAULT_ALLOWED_ORIGINS

    @field_validator("cors_allowed_origins")
    @classmethod
    def _origin_patterns(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(checked_origin(origin) for origin in origins)


class McpCorsMiddleware:
    """Starlette's CORSMiddleware for the MCP path only; the SDK's metadata routes keep their own CORS."""

    def __init__(self, app: ASGIApp, *, origins: Sequence[str], paths: Collection[str]) -> None:
        self.app = app
        self.paths = frozenset(paths)
        self.cors = CORSMiddleware(
            app,
            allow_origin_regex=origin_regex(origins),
            allow_methods=MCP_METHODS,
            allow_headers=MCP_ALLOWED_HEADERS,
            expose_headers=MCP_EXPOSED_HEADERS,
            allow_credentials=False,
            max_age=PREFLIGHT_MAX_AGE_SECONDS,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def allow_browser_origins(app: Starlette, origins: Sequence[str], mcp_path: str = "/mcp") -> None:
    """Answer CORS for `mcp_path` in front of everything `app` already has (the bearer check included).

    Call it on the app `streamable_http_app` returns, before it serves; pass the same `origins` to
    `transport_security(allowed_origins=...)` so that the SDK's Origin check agrees.
    """
    app.add_middleware(McpCorsMiddleware, origins=tuple(origins), paths=(mcp_path,))
