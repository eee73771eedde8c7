"""`protect_mcp_app`: one call that turns an MCPServer into a hardened OAuth 2.1 resource server app.

Copy this call, not the steps inside it: the steps are the same for every MCP server of this project
(crm-mcp and tickets-mcp both use it), and their ORDER is what makes them work. Each `install_*` or
`add_middleware` wraps what is already there, so the step applied last runs first on a request. From
the outside in, a request meets:

1. CORS (`allow_browser_origins`), outermost: a browser's preflight has no token and must be answered
   before anything could refuse it, and every refusal further in (401, 403, 413, 421) must carry the
   CORS headers, or a web client sees an opaque network error instead of the challenge.
1b. DPoP (`install_dpop`, AUTH_DPOP=accept|require, RFC 9449): inside CORS (its refusals need CORS
   headers too), outside everything that reads the token: it checks the proof against the request and
   the token's `cnf.jkt`, then hands the token on as Bearer, so the authentication and step-up below run
   unchanged for bearer and DPoP-bound tokens alike (docs/dpop.md).
2. Request body limit (`BodyLimitMiddleware`): a 413 before any layer reads the body; the step-up
   check below buffers a POST body to find the tool it calls, so the limit must be in front of it.
3. Key-source outage (`install_key_source_outage`): outside the SDK's authentication, so the 401 the
   SDK gives when the signing keys cannot be fetched becomes 503 + Retry-After.
4. Host/Origin (`install_strict_host_check`): DNS-rebinding protection on every route (metadata and
   pages too), exact rather than the SDK's prefix match; only the probes' paths (liveness /health,
   readiness /health/ready) are exempt, since probes use the pod's IP.
5. Authentication: the SDK's bearer middleware (from `AuthSettings`) sets the caller; the RFC 9728
   metadata route is put ahead of the SDK's so it lists the server's scopes (`advertise_scopes`).
6. Step-up (`enforce_tool_scopes`), on the MCP endpoint: a token lacking a tool's scopes is refused with
   403 `insufficient_scope` before the tool runs, and before the session quota counts the request.
7. Per-user session quota (`limit_sessions_per_user`), innermost on the endpoint, next to the SDK's
   session table it mirrors: only requests that may actually run open or use a session.
8. Metrics (`McpOperationMetrics`), inside the MCP server: one histogram sample per MCP operation that
   got through all of the above, labelled only with methods and tools the server has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette

from oauth_tokens.body_limit import BodyLimitMiddleware
from oauth_tokens.cors import allow_browser_origins
from oauth_tokens.dpop_resource import install_dpop
from oauth_tokens.host_check import install_strict_host_check
from oauth_tokens.key_source_outage import install_key_source_outage
from oauth_tokens.mcp import advertise_scopes, transport_security
from oauth_tokens.mcp_metrics import McpOperationMetrics
from oauth_tokens.mcp_sessions import McpSessionSettings, limit_sessions_per_user
from oauth_tokens.mcp_step_up import declared_scopes, enforce_tool_scopes
from oauth_tokens.replay_cache import ReplayCache
from oauth_tokens.settings import DPoPSettings

__all__ = ["protect_mcp_app"]


def protect_mcp_app(
    server: MCPServer[Any],
    *,
    auth: AuthSettings,
    sessions: McpSessionSettings,
    host: str,
    allowed_hosts: Sequence[str] = (),
    allowed_origins: Sequence[str],
    resource_name: str,
    scopes_supported: Sequence[str] | None = None,
    dpop: DPoPSettings,
    dpop_replay_cache: ReplayCache | None = None,
    mcp_path: str = "/mcp",
    probe_paths: Sequence[str] = ("/health", "/health/ready"),
) -> Starlette:
    """The Streamable HTTP app of `server`, protected in the order the module docstring explains.

    `auth`: from `resource_server_auth(issuer, resource)`. `sessions`: the service's settings (caps and
    idle timeout). `host`: the bind address (the SDK's default Host checks depend on it).
    `allowed_hosts`: Host headers accepted beyond loopback (`tickets-mcp:8002`, `name:*`).
    `allowed_origins`: CORS_ALLOWED_ORIGINS, used for both CORS and the Origin check so they agree.
    `dpop`: the service's AUTH_DPOP* settings; `dpop_replay_cache`: where proof `jti`s are remembered
    (default in process; a shared one, e.g. Redis, for replicas).
    `scopes_supported`: listed in the RFC 9728 metadata; by default every scope a tool declares
    (`scoped_tool`). Register every tool before calling this.
    """
    server.middleware.append(McpOperationMetrics(server))  # 8: innermost, inside the MCP server
    security: TransportSecuritySettings = transport_security(allowed_hosts, allowed_origins)
    app = server.streamable_http_app(
        streamable_http_path=mcp_path,
        host=host,
        transport_security=security,
        max_sessions=sessions.mcp_max_sessions,
        session_idle_timeout=sessions.mcp_session_idle_timeout_seconds,
    )
    scopes = declared_scopes(server) if scopes_supported is None else tuple(scopes_supported)
    advertise_scopes(  # 5: the metadata clients read, with the DPoP it takes (RFC 9728 §2)
        app,
        auth,
        scopes,
        resource_name=resource_name,
        dpop_algorithms=tuple(dpop.auth_dpop_algorithms),
        dpop_required=dpop.auth_dpop == "require",
    )
    # On the MCP endpoint each wrap goes outside the previous one: 7, then 6.
    limit_sessions_per_user(app, server.session_manager, sessions, path=mcp_path)  # 7
    enforce_tool_scopes(app, server, auth, path=mcp_path)  # 6
    # App-wide middleware: each add_middleware goes outside the previous one: 4, 3, 2, 1b, then 1.
    install_strict_host_check(app, security, exempt_paths=tuple(probe_paths))  # 4
    install_key_source_outage(app)  # 3
    app.add_middleware(BodyLimitMiddleware)  # 2
    install_dpop(app, dpop, dpop_replay_cache)  # 1b
    allow_browser_origins(app, allowed_origins, mcp_path=mcp_path)  # 1: outermost
    return app
