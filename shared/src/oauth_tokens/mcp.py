"""MCP SDK adapter: a TokenVerifier over AccessTokenValidator, per-tool scope checks, resource-server plumbing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

from mcp.server.auth.handlers.metadata import ProtectedResourceMetadataHandler
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import build_resource_metadata_url, cors_middleware
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.auth import ProtectedResourceMetadata
from starlette.applications import Starlette
from starlette.routing import Route

from oauth_tokens.cors import DEFAULT_ALLOWED_ORIGINS
from oauth_tokens.errors import InvalidTokenError, KeySourceUnavailableError
from oauth_tokens.key_source_outage import report_key_source_outage
from oauth_tokens.logs import redact
from oauth_tokens.principal import Principal
from oauth_tokens.telemetry import record_tool_auth
from oauth_tokens.validator import AccessTokenValidator

__all__ = [
    "JWTTokenVerifier",
    "advertise_scopes",
    "caller_token",
    "require_tool_scopes",
    "resource_server_auth",
    "transport_security",
]

LOCAL_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")

logger = logging.getLogger(__name__)


def _same_resource(left: str, right: str) -> bool:
    return left.rstrip("/") == right.rstrip("/")


class JWTTokenVerifier:
    """An mcp `TokenVerifier`: a valid JWT becomes an AccessToken, anything else None (never raises).

    The validator must be configured with this server's resource as an accepted audience; the
    AccessToken's `resource` lets the SDK re-check it (AuthSettings.validate_token_resource=True).
    When the signing keys cannot be fetched it reports the outage, so that the app's
    `install_key_source_outage` middleware answers 503 instead of the SDK's 401.
    """

    def __init__(self, validator: AccessTokenValidator, resource: str) -> None:
        self.validator = validator
        self.resource = resource

    async def verify_token(self, token: str) -> AccessToken | None:
        """The AccessToken for a valid token; None for any failure (an exception here would be a 500)."""
        try:
            principal = await self.validator.validate(token)
            return AccessToken(
                token=token,
                # The SDK needs a client id; a token without one is attributed to its subject.
                client_id=principal.client_id or principal.subject,
                scopes=sorted(principal.scopes),
                expires_at=principal.expires_at,
                resource=self._resource_of(principal),
                subject=principal.subject,
                claims=dict(principal.claims),
            )
        except KeySourceUnavailableError as error:
            logger.debug("MCP bearer token not checked, the key source is down: %s", error.reason)
            report_key_source_outage(error.retry_after_seconds)
        except InvalidTokenError as error:
            logger.debug("MCP bearer token refused: %s", error.reason)
        except Exception as error:
            logger.debug("MCP bearer token refused: %s: %s", type(error).__name__, redact(str(error)))
        return None

    def _resource_of(self, principal: Principal) -> str | None:
        """The audience naming this server (RFC 8707 resource), else the first audience."""
        for audience in principal.audiences:
            if _same_resource(audience, self.resource):
                return audience
        return principal.audiences[0] if principal.audiences else None


def caller_token() -> AccessToken:
    """Inside an MCP tool: the caller's AccessToken (its scopes were checked by `scoped_tool`)."""
    access_token = get_access_token()
    if access_token is None:
        raise ToolError("This tool requires an authenticated caller")
    return access_token


def require_tool_scopes(*scopes: str) -> AccessToken:
    """Inside an MCP tool: the caller's AccessToken if it has every scope; else ToolError naming the gap.

    Tools do not call it themselves: `oauth_tokens.mcp_step_up.scoped_tool` calls it with the scopes
    the tool declares, so the step-up 403, `tools/list` and this check read one declaration.
    """
    access_token = caller_token()
    granted = set(access_token.scopes)
    missing = [scope for scope in scopes if scope not in granted]
    record_tool_auth(access_token.claims or {}, access_token.client_id, access_token.subject, scopes, missing)
    if len(missing) == 1:
        raise ToolError(f"Missing required scope '{missing[0]}' for this tool")
    if missing:
        names = ", ".join(f"'{scope}'" for scope in missing)
        raise ToolError(f"Missing required scopes {names} for this tool")
    return access_token


def resource_server_auth(
    settings_issuer: str, resource: str, scopes_supported: Sequence[str] | None = None
) -> AuthSettings:
    """AuthSettings for an MCP resource server of `settings_issuer`; tokens for other resources refused.

    Beware: mcp 2.3 uses `required_scopes` both as the scopes_supported it advertises (RFC 9728)
    and as scopes EVERY request must carry. Pass only scopes every caller must hold (or None),
    and declare per-tool scopes with `oauth_tokens.mcp_step_up.scoped_tool`.
    """
    return AuthSettings(
        issuer_url=settings_issuer,
        resource_server_url=resource,
        required_scopes=list(scopes_supported) if scopes_supported else None,
        validate_token_resource=True,
    )


def advertise_scopes(
    app: Starlette,
    auth: AuthSettings,
    scopes_supported: Sequence[str],
    resource_name: str,
    *,
    dpop_algorithms: Sequence[str] = (),
    dpop_required: bool = False,
) -> None:
    """Serve RFC 9728 metadata listing `scopes_supported`, ahead of the SDK's own metadata route.

    The SDK lists only `required_scopes`, which it also demands on every request; a server that checks
    scopes per tool requires none at the HTTP layer, so it advertises its scopes here instead. Clients
    (the SDK's OAuth provider among them) request the scopes this metadata lists. With `dpop_algorithms`
    it also says which DPoP proof algorithms it takes (`dpop_signing_alg_values_supported`) and whether
    it takes DPoP-bound tokens only (`dpop_bound_access_tokens_required`, RFC 9728 §2 and RFC 9449 §5.2).
    """
    if auth.resource_server_url is None:
        raise ValueError("advertise_scopes needs AuthSettings.resource_server_url")
    metadata = ProtectedResourceMetadata(
        resource=auth.resource_server_url,
        authorization_servers=[auth.issuer_url],
        scopes_supported=list(scopes_supported),
        resource_name=resource_name,
        dpop_signing_alg_values_supported=list(dpop_algorithms) or None,
        dpop_bound_access_tokens_required=True if dpop_required else None,
    )
    path = urlsplit(str(build_resource_metadata_url(auth.resource_server_url))).path
    handler = ProtectedResourceMetadataHandler(metadata)
    route = Route(path, endpoint=cors_middleware(handler.handle, ["GET", "OPTIONS"]), methods=["GET", "OPTIONS"])
    app.router.routes[0:0] = [route]


def transport_security(
    extra_hosts: Sequence[str] = (), allowed_origins: Sequence[str] = DEFAULT_ALLOWED_ORIGINS
) -> TransportSecuritySettings:
    """DNS-rebinding protection for an MCP endpoint: exactly which Host and Origin headers pass.

    Host (else 421): `127.0.0.1`, `localhost` or `[::1]` with a port, any port (a bare `localhost`
    without a port is refused), plus each of `extra_hosts` exactly as written (`tickets-mcp:8002`),
    or with any port when written `name:*`.
    Origin (else 403): absent (non-browser clients send none), or one of `allowed_origins` exactly as
    written (`https://app.example.com`), or with any port when written `scheme://host:*`. Pass the
    origins CORS allows (CORS_ALLOWED_ORIGINS, `oauth_tokens.cors`), so that a page the browser may
    call from is exactly a page the server accepts; the default is loopback pages on any port.
    """
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*LOCAL_HOSTS, *extra_hosts],
        allowed_origins=list(allowed_origins),
    )
