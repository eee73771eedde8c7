"""Exact Host and Origin checks in front of every route of an MCP server: DNS-rebinding protection without prefixes.

mcp 2.3's TransportSecurityMiddleware reads an allowed `name:*` as "starts with `name:`", so
`localhost:*` also admits `Host: localhost:80.evil.example`, and `http://localhost:*` the origin
`http://localhost:80.evil.example`: a page on a domain the attacker controls could pass. The SDK
offers no stricter mode, so `StrictHostMiddleware` applies the same allow-list exactly, before the
SDK's own check: a value passes if it is listed as is, or if a listed `name:*` matches it as `name:`
followed by a port number (1-65535, no leading zero) and nothing else. Refusals are the SDK's: 421 for
the Host, 403 for the Origin; a request without an Origin (any non-browser client) is not refused for it.

One policy for the whole app: the MCP endpoint, the RFC 9728 metadata, and pages such as crm-mcp's
/connect/* are all checked, so no route answers a rebound name. The only routes left out are the ones a
service names in `exempt_paths`, each for a stated reason: /health, because orchestrator probes
(Kubernetes' httpGet) send the pod's IP as Host, and it answers nothing but `{"status": "ok"}`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Sequence

from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from oauth_tokens.cors import PORT_PATTERN

__all__ = ["StrictHostMiddleware", "allowed", "install_strict_host_check"]

logger = logging.getLogger(__name__)

_ANY_PORT = ":*"
_PORT = re.compile(PORT_PATTERN)


def _is_port(value: str) -> bool:
    return _PORT.fullmatch(value) is not None


def allowed(value: str, patterns: Sequence[str]) -> bool:
    """Whether `value` is one of `patterns`, or `name:<port>` for a pattern `name:*` (exactly that)."""
    for pattern in patterns:
        if value == pattern:
            return True
        if pattern.endswith(_ANY_PORT):
            name = pattern[: -len(_ANY_PORT)]
            if value.startswith(name + ":") and _is_port(value[len(name) + 1 :]):
                return True
    return False


class StrictHostMiddleware:
    """Refuses requests whose Host (421) or Origin (403) the settings do not allow exactly, on every path
    but `exempt_paths`."""

    def __init__(self, app: ASGIApp, settings: TransportSecuritySettings, exempt_paths: Collection[str] = ()) -> None:
        self.app = app
        self.settings = settings
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        checked = scope["type"] == "http" and scope["path"] not in self.exempt_paths
        if checked and self.settings.enable_dns_rebinding_protection:
            headers = Headers(scope=scope)
            host, origin = headers.get("host"), headers.get("origin")
            if not host or not allowed(host, self.settings.allowed_hosts):
                logger.warning("Refused a request with Host %r", (host or "")[:100])
                await PlainTextResponse("Invalid Host header", status_code=421)(scope, receive, send)
                return
            if origin and not allowed(origin, self.settings.allowed_origins):
                logger.warning("Refused a request with Origin %r", origin[:100])
                await PlainTextResponse("Invalid Origin header", status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_strict_host_check(
    app: Starlette, settings: TransportSecuritySettings, *, exempt_paths: Collection[str] = ()
) -> None:
    """Check Host and Origin of every request to `app` exactly against `settings` (see module doc).

    `exempt_paths` are left unchecked: name each one on purpose (e.g. a /health that probes reach by IP).
    """
    app.add_middleware(StrictHostMiddleware, settings=settings, exempt_paths=tuple(exempt_paths))
