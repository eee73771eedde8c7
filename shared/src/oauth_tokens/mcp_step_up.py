"""Per-tool scope step-up for MCP resource servers: HTTP 403 `insufficient_scope` before a tool runs.

MCP clients (the SDK's `OAuthClientProvider`, Claude Code, Inspector) widen their grant only when an
HTTP request is refused with `403` and `WWW-Authenticate: Bearer error="insufficient_scope",
scope="..."` (SEP-835, SEP-2350); a tool error inside a 200 leaves them stuck. So the MCP endpoint is
wrapped: a `tools/call` whose token lacks that tool's scopes is answered 403 naming every scope the
tool needs, before any tool code runs. A token holding none of the server's scopes is refused on any
MCP request. Requests without a token get RFC 6750 §3.1's bare challenge (no `error`).

The scopes come from one declaration per tool: `@scoped_tool(mcp, "crm:write")` registers the tool
with a `_meta` entry (`requires_scopes`) that tells clients in `tools/list` what it needs, that this
middleware reads for the 403, and that the tool's own check (`require_tool_scopes`, run before its
body, for callers that bypass HTTP) is made from. Which tool is called comes
from the `Mcp-Method`/`Mcp-Name` headers (2026-07-28: the SDK refuses a request whose headers
disagree with its body), else from the JSON-RPC body, read once (bounded) and replayed to the app.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final, ParamSpec, TypeVar
from weakref import WeakKeyDictionary

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from mcp.shared.inbound import MCP_METHOD_HEADER, MCP_NAME_HEADER, MCP_PROTOCOL_VERSION_HEADER, decode_header_value
from mcp.types import ToolAnnotations
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oauth_tokens.challenge import (
    INVALID_TOKEN_DESCRIPTION,
    MISSING_TOKEN_DESCRIPTION,
    bearer_challenge,
    bearer_error_response,
)
from oauth_tokens.mcp import require_tool_scopes

__all__ = [
    "SCOPES_META_KEY",
    "ToolScopeMiddleware",
    "declared_scopes",
    "enforce_tool_scopes",
    "requires_scopes",
    "scoped_tool",
]

logger = logging.getLogger(__name__)

# A tool's `_meta` key listing the scopes it needs (MCP `_meta` keys: "<reverse-DNS-ish prefix>/<name>").
SCOPES_META_KEY: Final = "oauth-tokens/required-scopes"


def requires_scopes(*scopes: str) -> dict[str, Any]:
    """A tool's `meta`, declaring the scopes calling it needs: `@mcp.tool(meta=requires_scopes("crm:read"))`."""
    if not scopes or not all(isinstance(scope, str) and scope and " " not in scope for scope in scopes):
        raise ValueError("requires_scopes needs one or more scope names without spaces")
    return {SCOPES_META_KEY: list(scopes)}


Params = ParamSpec("Params")
Result = TypeVar("Result")

# What each server's tools declared through scoped_tool, for declared_scopes.
_DECLARED: WeakKeyDictionary[MCPServer[Any], dict[str, tuple[str, ...]]] = WeakKeyDictionary()


def scoped_tool(
    server: MCPServer[Any],
    *scopes: str,
    annotations: ToolAnnotations | None = None,
    name: str | None = None,
) -> Callable[[Callable[Params, Awaitable[Result]]], Callable[Params, Awaitable[Result]]]:
    """Register an async function as a tool of `server` needing `scopes`: the one place they are stated.

    The declaration becomes the tool's `_meta` (`requires_scopes`), which `tools/list` shows to clients
    and `ToolScopeMiddleware` turns into a 403 step-up before the tool runs; the registered function
    checks the same scopes (`require_tool_scopes`) before the body, for callers that reach the tool
    without that middleware (in-memory or stdio transports). The tool's description is its docstring,
    dedented, followed by the scopes it requires, so a model reads them too; the docstring does not repeat
    them. Inside, `oauth_tokens.mcp.caller_token()` gives the caller's token.
    """
    meta = requires_scopes(*scopes)

    def register(function: Callable[Params, Awaitable[Result]]) -> Callable[Params, Awaitable[Result]]:
        @functools.wraps(function)
        async def checked(*args: Params.args, **kwargs: Params.kwargs) -> Result:
            require_tool_scopes(*scopes)
            return await function(*args, **kwargs)

        tool_name = name or function.__name__
        server.add_tool(
            checked,
            name=tool_name,
            description=f"{inspect.cleandoc(function.__doc__ or '')}\n\n{_scopes_sentence(scopes)}".lstrip(),
            annotations=annotations,
            meta=meta,
        )
        _DECLARED.setdefault(server, {})[tool_name] = tuple(scopes)
        return function

    return register


def _scopes_sentence(scopes: Sequence[str]) -> str:
    """`Requires scope a.` / `Requires scopes a, b and c.`: the description's last line."""
    if len(scopes) == 1:
        return f"Requires scope {scopes[0]}."
    return f"Requires scopes {', '.join(scopes[:-1])} and {scopes[-1]}."


def declared_scopes(server: MCPServer[Any]) -> tuple[str, ...]:
    """Every scope `server`'s tools declared with `scoped_tool`, once, in registration order."""
    return _union(_DECLARED.get(server, {}).values())


def _union(groups: Iterable[Sequence[str]]) -> tuple[str, ...]:
    """Every scope in `groups`, once, in first-seen order."""
    return tuple(dict.fromkeys(scope for group in groups for scope in group))


def _tool_names(body: bytes) -> list[str]:
    """The tools a JSON-RPC body (one message or a 2025-03-26 batch) calls; unreadable bodies call none.

    An unreadable body is safe to pass on: the SDK refuses it without running anything.
    """
    try:
        decoded: Any = json.loads(body)
    except (ValueError, RecursionError):
        return []
    messages = decoded if isinstance(decoded, list) else [decoded]
    names: list[str] = []
    for message in messages:
        if isinstance(message, dict) and message.get("method") == "tools/call":
            params = message.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            if isinstance(name, str):
                names.append(name)
    return names


async def _buffered(receive: Receive, limit: int) -> tuple[bytes, Receive] | None:
    """The whole request body and a `receive` replaying it; None if it is over `limit` bytes."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if not message.get("more_body", False):
            break
    body = b"".join(message.get("body", b"") for message in messages if message["type"] == "http.request")

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return body, replay


class ToolScopeMiddleware:
    """Wraps an MCP endpoint (inside the SDK's authentication): RFC 6750 401s and per-tool 403s."""

    def __init__(
        self,
        app: ASGIApp,
        server: MCPServer[Any],
        *,
        resource_metadata_url: str | None,
        max_body_bytes: int = DEFAULT_MAX_REQUEST_BODY_SIZE,
    ) -> None:
        self.app = app
        self.server = server
        self.resource_metadata_url = resource_metadata_url
        self.max_body_bytes = max_body_bytes
        self._tool_scopes: dict[str, tuple[str, ...]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        user = scope.get("user")
        if not isinstance(user, AuthenticatedUser):
            await self._unauthenticated(scope)(scope, receive, send)
            return
        tool_scopes = await self._scopes_by_tool()
        server_scopes = _union(tool_scopes.values())
        granted = set(user.scopes)
        if server_scopes and not granted.intersection(server_scopes):
            logger.info("Token of client %r holds none of this server's scopes", user.access_token.client_id)
            await self._insufficient_scope(server_scopes, "this server")(scope, receive, send)
            return
        if scope["method"] == "POST":
            called = await self._called_tools(scope, receive)
            if called is None:
                await Response("Request body too large", status_code=413)(scope, receive, send)
                return
            names, receive = called
            needed = _union(tool_scopes.get(name, ()) for name in names)
            if not granted.issuperset(needed):
                logger.info("Tool call %s needs scope(s) %s: asking for step-up", ", ".join(names), " ".join(needed))
                await self._insufficient_scope(needed, "this tool")(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _scopes_by_tool(self) -> dict[str, tuple[str, ...]]:
        """Tool name -> scopes from each tool's `_meta`; read once, after every tool is registered."""
        if self._tool_scopes is None:
            self._tool_scopes = {
                tool.name: tuple(tool.meta.get(SCOPES_META_KEY, ())) if tool.meta else ()
                for tool in await self.server.list_tools()
            }
        return self._tool_scopes

    async def _called_tools(self, scope: Scope, receive: Receive) -> tuple[list[str], Receive] | None:
        """The tools this POST calls and the `receive` to hand on; None if the body is too large."""
        headers = Headers(scope=scope)
        version = headers.get(MCP_PROTOCOL_VERSION_HEADER)
        if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
            # 2026-07-28 (and any unknown version, which the SDK refuses): the SDK rejects a request whose
            # Mcp-Method / Mcp-Name headers disagree with its body, so the headers say what would run.
            if headers.get(MCP_METHOD_HEADER) != "tools/call":
                return [], receive
            name = decode_header_value(headers.get(MCP_NAME_HEADER))
            return ([name] if name else []), receive
        buffered = await _buffered(receive, self.max_body_bytes)
        if buffered is None:
            return None
        body, replay = buffered
        return _tool_names(body), replay

    def _unauthenticated(self, scope: Scope) -> Response:
        """401: no `error` without credentials (RFC 6750 §3.1), else `invalid_token`, generic description."""
        authorization = Headers(scope=scope).get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            challenge = bearer_challenge(resource_metadata=self.resource_metadata_url)
            return bearer_error_response(401, challenge, "unauthorized", MISSING_TOKEN_DESCRIPTION)
        challenge = bearer_challenge(
            error="invalid_token",
            error_description=INVALID_TOKEN_DESCRIPTION,
            resource_metadata=self.resource_metadata_url,
        )
        return bearer_error_response(401, challenge, "invalid_token", INVALID_TOKEN_DESCRIPTION)

    def _insufficient_scope(self, needed: Sequence[str], what: str) -> Response:
        scope = " ".join(needed)
        description = f"The access token lacks scope(s) {what} requires: {scope}"
        challenge = bearer_challenge(
            error="insufficient_scope",
            error_description=description,
            scope=scope,
            resource_metadata=self.resource_metadata_url,
        )
        return bearer_error_response(403, challenge, "insufficient_scope", description)


def enforce_tool_scopes(app: Starlette, server: MCPServer[Any], auth: AuthSettings, *, path: str = "/mcp") -> None:
    """Wrap the MCP endpoint at `path` of `server`'s `app` in a ToolScopeMiddleware.

    The SDK's own authentication (and its `required_scopes` check) still runs first; this answers
    what it lets through, or a 401 in the shape RFC 6750 asks for.
    """
    resource_metadata_url = (
        str(build_resource_metadata_url(auth.resource_server_url)) if auth.resource_server_url else None
    )
    for route in app.router.routes:
        if isinstance(route, Route) and route.path == path:
            route.app = ToolScopeMiddleware(route.app, server, resource_metadata_url=resource_metadata_url)
            return
    raise ValueError(f"The app has no MCP endpoint at {path}")
