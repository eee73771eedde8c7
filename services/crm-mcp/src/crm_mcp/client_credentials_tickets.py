"""Pattern 2 — MCP → MCP with OAuth 2.1 client credentials: crm-mcp calls tickets-mcp as itself.

crm-mcp acts as an autonomous agent here: it does not forward the user's token (that token's audience
is crm-mcp, and tickets-mcp would rightly refuse it). It authenticates with its own client id and
secret at the token endpoint and presents that token to tickets-mcp.

- `oauth_tokens.ClientCredentialsAuth` (an `httpx2.Auth`) gets the token with the RFC 8707 `resource`
  of tickets-mcp, caches it, refreshes it ahead of expiry, makes one token request for many concurrent
  callers, and on a 401 drops the token and retries once.
- One `httpx2.AsyncClient` (one connection pool) and one MCP session are opened on first use and kept;
  calls are multiplexed over that session instead of opening one per call. A broken session is dropped
  and the next call opens a new one.
- Only read-only tools are retried (once, on a fresh session); a write that failed mid-way is reported,
  never repeated, because tickets-mcp might have done it.
"""

from __future__ import annotations

import logging
from typing import Any, Literal, TypeVar

import anyio
import httpx2
from anyio.abc import TaskGroup, TaskStatus
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import TextContent
from oauth_tokens import ClientCredentialsAuth, TokenEndpointError
from pydantic import BaseModel, TypeAdapter

from crm_mcp.downstream import DownstreamError, http_client, parse_response

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=BaseException)

SERVICE = "tickets-mcp"
READ_ONLY_TOOLS = frozenset({"list_tickets", "get_ticket"})
TicketStatus = Literal["open", "in_progress", "resolved", "closed"]
TicketPriority = Literal["low", "normal", "high", "urgent"]


class TicketSummary(BaseModel):
    """A ticket as tickets-mcp lists it."""

    model_config = {"extra": "allow"}

    id: str
    customer_id: str
    title: str
    status: str
    priority: str


class Ticket(TicketSummary):
    """A ticket in full, with its provenance: who created it (identity) and for whom (data)."""

    description: str
    created_by_client: str
    requested_by: str | None = None


_summaries = TypeAdapter(list[TicketSummary])


class TicketsMcpClient:
    """Calls tickets-mcp's tools with crm-mcp's own client-credentials token over one kept MCP session."""

    def __init__(self, url: str, auth: ClientCredentialsAuth, *, timeout_seconds: float) -> None:
        self._url = url
        self._auth = auth
        self._timeout = timeout_seconds
        self._http = http_client(timeout_seconds, auth=auth)
        self._lock = anyio.Lock()
        self._session: tuple[Client, anyio.Event] | None = None
        self._task_group: TaskGroup | None = None

    def bind(self, task_group: TaskGroup) -> None:
        """Give the client the long-lived task group (the server's lifespan) that owns its MCP session."""
        self._task_group = task_group

    async def list_tickets(self, customer_id: str, status: TicketStatus | None = None) -> list[TicketSummary]:
        arguments: dict[str, Any] = {"customer_id": customer_id}
        if status is not None:
            arguments["status"] = status
        payload = await self.call_tool("list_tickets", arguments)
        return parse_response(SERVICE, lambda: _summaries.validate_python(payload["tickets"]))

    async def create_ticket(
        self, customer_id: str, title: str, description: str, priority: TicketPriority, requested_by: str
    ) -> Ticket:
        arguments = {
            "customer_id": customer_id,
            "title": title,
            "description": description,
            "priority": priority,
            # Data for the record, not identity: tickets-mcp authenticates crm-mcp, not this user.
            "requested_by": requested_by,
        }
        payload = await self.call_tool("create_ticket", arguments)
        return parse_response(SERVICE, lambda: Ticket.model_validate(payload))

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        """Call a tickets-mcp tool; return its structured result or raise DownstreamError."""
        attempts = 2 if name in READ_ONLY_TOOLS else 1
        for attempt in range(1, attempts + 1):
            client = await self._connected()
            try:
                result = await client.call_tool(name, arguments, read_timeout_seconds=self._timeout)
            except TokenEndpointError as exc:
                raise _connect_error(exc) from exc
            except (MCPError, httpx2.HTTPError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                await self._drop_session()
                if attempt == attempts:
                    raise DownstreamError(f"{SERVICE} call '{name}' failed: {_reason(exc)}") from exc
                logger.info("%s session broke during %s; retrying on a new session", SERVICE, name)
                continue
            if result.is_error:
                raise DownstreamError(f"{SERVICE} refused '{name}': {_text(result.content)}")
            return result.structured_content
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _connected(self) -> Client:
        """The kept session, opening one (under a lock, so concurrent first calls share it) if needed."""
        async with self._lock:
            if self._session is not None:
                return self._session[0]
            if self._task_group is None:
                raise RuntimeError("TicketsMcpClient.bind() must be called in the server lifespan")
            try:
                with anyio.fail_after(self._timeout):
                    self._session = await self._task_group.start(self._hold_session)
            except Exception as exc:
                raise _connect_error(exc) from exc
            return self._session[0]

    async def _hold_session(self, *, task_status: TaskStatus[tuple[Client, anyio.Event]]) -> None:
        """Open the MCP session and keep it open, in the lifespan's task group, until it is dropped."""
        closed = anyio.Event()
        started = False
        try:
            transport = streamable_http_client(self._url, http_client=self._http)
            async with Client(transport, read_timeout_seconds=self._timeout) as client:
                task_status.started((client, closed))
                started = True
                await closed.wait()
        except Exception as exc:
            if not started:
                raise
            # The session died after it was handed out; the next call notices and opens a new one.
            logger.warning("%s session ended unexpectedly: %s", SERVICE, _reason(exc))
            if self._session is not None and self._session[1] is closed:
                self._session = None

    async def _drop_session(self) -> None:
        async with self._lock:
            if self._session is not None:
                self._session[1].set()
                self._session = None

    async def aclose(self) -> None:
        await self._drop_session()
        await self._http.aclose()
        await self._auth.aclose()


def _connect_error(exc: BaseException) -> DownstreamError:
    """The tool error for a session that could not be opened (the token request is the usual cause)."""
    token_error = _first(exc, TokenEndpointError)
    if token_error is not None:
        if token_error.status_code is None:  # no answer at all: unreachable or timed out
            return DownstreamError(f"crm-mcp could not get a token for {SERVICE}: {token_error.description}.")
        return DownstreamError(
            f"crm-mcp could not get a token for {SERVICE} (authorization server said: {token_error.error})."
        )
    if isinstance(exc, MCPError):
        return DownstreamError(f"{SERVICE} refused the MCP session: {exc.error.message}")
    return DownstreamError(f"{SERVICE} is unreachable ({_reason(exc)}); try again later.")


def _first(exc: BaseException, kind: type[E]) -> E | None:
    """`exc` or the first exception of `kind` nested in it (task groups wrap errors in groups)."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _first(inner, kind)) is not None:
                return found
    if exc.__cause__ is not None:
        return _first(exc.__cause__, kind)
    return None


def _text(content: list[Any]) -> str:
    return " ".join(block.text for block in content if isinstance(block, TextContent)) or "no details"


def _reason(exc: BaseException) -> str:
    """A short, credential-free reason for a failed call."""
    if isinstance(exc, MCPError):
        return exc.error.message
    if isinstance(exc, httpx2.TimeoutException):
        return "no answer in time"
    if isinstance(exc, httpx2.HTTPError):
        return "connection failed"
    if isinstance(exc, BaseExceptionGroup):
        return _reason(exc.exceptions[0])
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return type(exc).__name__
