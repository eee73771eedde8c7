"""Per-user caps on open MCP sessions (Streamable HTTP, stateful): no one user can fill the session table.

mcp 2.3's `StreamableHTTPSessionManager` has one table for every caller: `max_sessions` (10 000 by
default) and an idle timeout (30 minutes). One user who opens sessions in a loop fills it, and from then
on every new session of every user gets 503 "Too many open sessions". The SDK offers no per-user limit
and no hook when a session opens or ends, so `SessionQuotaMiddleware` wraps the MCP endpoint (inside
the SDK's authentication, so it knows the caller) and keeps its own table of the sessions it saw opened,
from the `Mcp-Session-Id` of each successful opening answer. The policy, written here:

- A user is a token's (issuer, subject), or its client id when it has no subject: every client a person
  uses counts towards that person's cap, so registering more clients buys no more sessions.
- A user may hold `per_user` sessions. The one who opens another loses their own least recently used
  idle session (no request in flight); if every one of theirs is busy, they are refused with 429.
- The whole table holds `total` sessions. When it is full, the idle session used least recently by the
  user holding the most sessions is ended: the flooder's sessions go first, never the quiet users'.
  Only when no session at all is idle is the opener refused (503, as the SDK does).
- An ended session is closed through the SDK's public entry point, a `DELETE` with its id
  (`session_manager.handle_request`), as the owner would: its id answers 404 from then on, and its
  client opens a new one. Sessions the SDK ends by itself (idle timeout, client DELETE) drop out of
  this table when their id is answered 404 or deleted, or when they are chosen for eviction.

Memory is then bounded by `total` sessions: no event store is configured, so a session keeps no
history, only its transport and streams. 2026-07-28 requests are sessionless and are not counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Annotated

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import Field, ValidationInfo, field_validator
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oauth_tokens.settings import ServiceSettings

__all__ = ["McpSessionSettings", "SessionQuotaMiddleware", "limit_sessions_per_user"]

logger = logging.getLogger(__name__)

_SESSION_HEADER = MCP_SESSION_ID_HEADER.lower().encode("latin-1")


class McpSessionSettings(ServiceSettings):
    """Mixin for an MCP server's settings: how many sessions it keeps open, and for how long.

    MCP_MAX_SESSIONS: sessions open at once, all users together (the SDK's `max_sessions`).
    MCP_MAX_SESSIONS_PER_USER: sessions one user (token issuer and subject) may hold open.
    MCP_SESSION_IDLE_TIMEOUT_SECONDS: a session with no request in flight for this long is closed.
    """

    mcp_max_sessions: Annotated[int, Field(ge=1, le=100_000)] = 1000
    mcp_max_sessions_per_user: Annotated[int, Field(ge=1, le=1000)] = 10
    mcp_session_idle_timeout_seconds: Annotated[float, Field(gt=0, le=86_400)] = 300.0

    @field_validator("mcp_max_sessions_per_user")
    @classmethod
    def _within_the_total(cls, value: int, info: ValidationInfo) -> int:
        total = info.data.get("mcp_max_sessions")
        if total is not None and value > total:
            raise ValueError("must not exceed MCP_MAX_SESSIONS")
        return value


@dataclass
class _Session:
    owner: Hashable
    user: AuthenticatedUser
    host: bytes
    last_used: float = field(default_factory=time.monotonic)
    in_flight: int = 0

    @property
    def idle(self) -> bool:
        return self.in_flight == 0


def _owner(user: AuthenticatedUser) -> Hashable:
    token = user.access_token
    issuer = (token.claims or {}).get("iss")
    return (str(issuer) if issuer is not None else None, token.subject or f"client:{token.client_id}")


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((value for key, value in scope["headers"] if key == name), None)


def _refusal(status: int, message: str) -> JSONResponse:
    """A JSON-RPC error without id, as the SDK's own refusals of a session are shaped."""
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}
    return JSONResponse(body, status_code=status, headers={"Retry-After": "1"} if status == 429 else None)


class SessionQuotaMiddleware:
    """Wraps the MCP endpoint: caps each user's open sessions and the table's, evicting idle ones (module doc)."""

    def __init__(
        self, app: ASGIApp, session_manager: StreamableHTTPSessionManager, *, per_user: int, total: int
    ) -> None:
        if per_user < 1 or total < per_user:
            raise ValueError("need 1 <= per_user <= total")
        self.app = app
        self.session_manager = session_manager
        self.per_user = per_user
        self.total = total
        self._sessions: dict[str, _Session] = {}
        self._opening: dict[Hashable, int] = {}
        self._admission = anyio.Lock()

    def open_sessions(self, user: AuthenticatedUser | None = None) -> int:
        """How many sessions this table holds, of `user` only if given (sessions ended by the SDK may linger)."""
        if user is None:
            return len(self._sessions)
        owner = _owner(user)
        return sum(1 for session in self._sessions.values() if session.owner == owner)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        version = _header(scope, MCP_PROTOCOL_VERSION_HEADER.lower().encode("latin-1"))
        sessionless = version is not None and version.decode("latin-1") not in HANDSHAKE_PROTOCOL_VERSIONS
        if scope["type"] != "http" or not isinstance(user, AuthenticatedUser) or sessionless:
            await self.app(scope, receive, send)
            return
        session_id = _header(scope, _SESSION_HEADER)
        if session_id is None:
            await self._open(user, scope, receive, send)
        else:
            await self._use(session_id.decode("latin-1"), scope, receive, send)

    async def _open(self, user: AuthenticatedUser, scope: Scope, receive: Receive, send: Send) -> None:
        owner = _owner(user)
        async with self._admission:
            refusal = await self._make_room(owner)
            if refusal is None:
                self._opening[owner] = self._opening.get(owner, 0) + 1
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        opened: list[str] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                value = next((v for k, v in message.get("headers", []) if k.lower() == _SESSION_HEADER), None)
                if value is not None:
                    session_id = value.decode("latin-1")
                    opened.append(session_id)
                    self._sessions[session_id] = _Session(owner, user, _header(scope, b"host") or b"", in_flight=1)
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self._opening[owner] -= 1
            if not self._opening[owner]:
                del self._opening[owner]
            for session_id in opened:
                self._done(session_id)

    async def _use(self, session_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        session = self._sessions.get(session_id)
        if session is None:
            await self.app(scope, receive, send)
            return
        session.in_flight += 1
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            answer = status[0] if status else None
            if answer == 404 or (scope["method"] == "DELETE" and answer is not None and answer < 300):
                self._sessions.pop(session_id, None)
            else:
                self._done(session_id)

    def _done(self, session_id: str) -> None:
        session = self._sessions.get(session_id)
        if session is not None:
            session.in_flight -= 1
            session.last_used = time.monotonic()

    async def _make_room(self, owner: Hashable) -> JSONResponse | None:
        """Under the admission lock: evict what the policy says so `owner` may open one more; else a refusal."""
        held = [session_id for session_id, session in self._sessions.items() if session.owner == owner]
        if len(held) + self._opening.get(owner, 0) >= self.per_user:
            victim = self._least_recently_used(held)
            if victim is None:
                logger.warning("Refused a new MCP session: the user holds %d busy sessions", len(held))
                return _refusal(429, "Too many open sessions for this user")
            await self._end(victim, "the same user opened more than MCP_MAX_SESSIONS_PER_USER")
        if len(self._sessions) + sum(self._opening.values()) >= self.total:
            victim = self._victim_of_the_largest_holder()
            if victim is None:
                logger.warning("Refused a new MCP session: %d sessions open, none idle", len(self._sessions))
                return _refusal(503, "Too many open sessions")
            await self._end(victim, "MCP_MAX_SESSIONS are open; its user holds the most")
        return None

    def _least_recently_used(self, session_ids: list[str]) -> str | None:
        idle = [session_id for session_id in session_ids if self._sessions[session_id].idle]
        return min(idle, key=lambda session_id: self._sessions[session_id].last_used, default=None)

    def _victim_of_the_largest_holder(self) -> str | None:
        by_owner: dict[Hashable, list[str]] = {}
        for session_id, session in self._sessions.items():
            by_owner.setdefault(session.owner, []).append(session_id)
        for held in sorted(by_owner.values(), key=len, reverse=True):
            victim = self._least_recently_used(held)
            if victim is not None:
                return victim
        return None

    async def _end(self, session_id: str, reason: str) -> None:
        """Close a session as its owner would, with a DELETE through the session manager; forget it."""
        session = self._sessions.pop(session_id)
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "DELETE",
            "scheme": "http",
            "path": "/",
            "raw_path": b"/",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", session.host), (_SESSION_HEADER, session_id.encode("latin-1"))],
            "client": None,
            "server": None,
            "user": session.user,
            "auth": None,
        }

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        statuses: list[int] = []

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await self.session_manager.handle_request(scope, receive, send)
        logger.info("Ended an idle MCP session (%s): %s", reason, statuses[0] if statuses else "no answer")


def limit_sessions_per_user(
    app: Starlette, session_manager: StreamableHTTPSessionManager, settings: McpSessionSettings, *, path: str = "/mcp"
) -> None:
    """Wrap the MCP endpoint at `path` of `app` in a SessionQuotaMiddleware with `settings`' caps.

    Build `app` with `streamable_http_app(max_sessions=settings.mcp_max_sessions,
    session_idle_timeout=settings.mcp_session_idle_timeout_seconds)`, so the SDK's own table agrees.
    Call it before `enforce_tool_scopes`, so that requests refused for their scopes never reach it.
    """
    for route in app.router.routes:
        if isinstance(route, Route) and route.path == path:
            route.app = SessionQuotaMiddleware(
                route.app,
                session_manager,
                per_user=settings.mcp_max_sessions_per_user,
                total=settings.mcp_max_sessions,
            )
            return
    raise ValueError(f"The app has no MCP endpoint at {path}")
