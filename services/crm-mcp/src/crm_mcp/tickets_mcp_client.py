"""crm-mcp's client of tickets-mcp: one kept MCP session, its tools, and a clear error for each failure.

The credential it sends is pattern 2's, crm-mcp's own token (crm_mcp.client_credentials_tickets); this
module keeps the session that token rides on:

- One `httpx2.AsyncClient` (one connection pool) and one MCP session are opened on first use and kept;
  calls are multiplexed over that session instead of opening one per call. A session whose connection
  is gone is dropped and the next call opens a new one; a timeout, a refused call or an error status
  keeps it. A call out of time is cancelled alone (the SDK aborts its POST); the session's HTTP timeouts
  are only a backstop at twice the deadline, as one firing inside the session would end every call.
- A 429 or 5xx is told as such with its Retry-After (`downstream.error_for_status`; the status the SDK
  hides is read with `downstream.watching_responses`); read-only calls are retried once on 502/503/504.
- Each step has its own total deadline (CRM_MCP_DOWNSTREAM_TIMEOUT_SECONDS) and its own party to
  blame: the token is fetched first (an error names the token endpoint), then the session is opened,
  then the tool is called (an error names tickets-mcp). Concurrent calls share one session set-up and
  its outcome (`oauth_tokens.single_flight`), and a set-up that hung is remembered for a second, so N
  calls against a tickets-mcp that hangs all end within one deadline, not one deadline after another.
  A set-up refused at once is not remembered, so a restarted tickets-mcp is used by the very next call.
- Only read-only tools are retried (once, on a fresh session); a write that failed mid-way is reported,
  never repeated, because tickets-mcp might have done it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import anyio
import httpx2
from anyio.abc import TaskGroup, TaskStatus
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CONNECTION_CLOSED, INTERNAL_ERROR, INVALID_REQUEST, REQUEST_TIMEOUT, TextContent
from oauth_tokens import ClientCredentialsAuth, TokenEndpointError
from oauth_tokens.deadline import DeadlineExceededError, deadline
from oauth_tokens.single_flight import SingleFlight
from oauth_tokens.telemetry import trace_http
from pydantic import BaseModel, TypeAdapter

from crm_mcp.client_credentials_tickets import SERVICE, fresh_token, token_error
from crm_mcp.downstream import (
    RETRYABLE_STATUSES,
    DownstreamError,
    ResponseWatch,
    http_client,
    late,
    parse_response,
    watching_responses,
)

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=BaseException)

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


# MCP errors that mean the connection or the session is gone, not that the call was refused.
SESSION_BROKEN = frozenset({CONNECTION_CLOSED, INVALID_REQUEST, INTERNAL_ERROR})


@dataclass(eq=False)
class _Session:
    """One kept MCP session: its client, and the events that end it and report it ended."""

    client: Client
    dropped: anyio.Event = field(default_factory=anyio.Event)
    closed: anyio.Event = field(default_factory=anyio.Event)


class TicketsMcpClient:
    """Calls tickets-mcp's tools with crm-mcp's own client-credentials token (`auth`, pattern 2) over one
    kept MCP session."""

    def __init__(
        self,
        url: str,
        auth: ClientCredentialsAuth,
        *,
        timeout_seconds: float,
        failure_backoff_seconds: float = 1.0,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport`: None for sockets; in-process tests pass an ASGI transport (downstream.http_client)."""
        self._url = url
        self._auth = auth
        self._timeout = timeout_seconds
        # A backstop only: every call and set-up has its own deadline, which ends it first (see the docstring).
        session_http = http_client(2 * timeout_seconds, auth=auth, transport=transport)
        self._http = trace_http(session_http, pattern="client_credentials", credential="client_credentials")
        self._opening: SingleFlight[_Session] = SingleFlight(
            failure_backoff_seconds=failure_backoff_seconds, remember=_hung
        )
        self._session: _Session | None = None
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
            await fresh_token(self._auth)  # in the caller's task, so the token request joins this trace
            session = await self._connected()
            try:
                with watching_responses() as watch, deadline(self._timeout, SERVICE):
                    result = await session.client.call_tool(name, arguments, read_timeout_seconds=self._timeout)
            except TokenEndpointError as exc:
                raise _connect_error(exc) from exc
            except (MCPError, DeadlineExceededError) as exc:
                if isinstance(exc, DeadlineExceededError) or exc.code == REQUEST_TIMEOUT:
                    # The session is fine and the call may still run: reported, not retried, not dropped.
                    raise DownstreamError(f"{SERVICE} did not answer '{name}' within {self._timeout:g} s.") from exc
                status_error = _status_error(watch)
                if status_error is not None:  # an error status: the session is fine
                    status = watch.response.status_code if watch.response is not None else 0
                    if status in RETRYABLE_STATUSES and attempt < attempts:
                        logger.info("%s answered %d to %s; retrying", SERVICE, status, name)
                        continue
                    raise status_error from exc
                if exc.code not in SESSION_BROKEN:
                    raise DownstreamError(f"{SERVICE} refused '{name}': {exc.error.message}") from exc
                failure: Exception = exc
            except (httpx2.HTTPError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                failure = exc
            else:
                if result.is_error:
                    raise DownstreamError(f"{SERVICE} refused '{name}': {_text(result.content)}")
                return result.structured_content
            # The connection or the session itself is gone: drop it (only this one, which other calls
            # may share), and retry a read-only call once on a new session.
            await self._drop_session(session)
            if attempt == attempts:
                raise DownstreamError(f"{SERVICE} call '{name}' failed: {_reason(failure)}") from failure
            logger.info("%s session broke during %s; retrying on a new session", SERVICE, name)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _connected(self) -> _Session:
        """The kept session, else one set-up shared by every concurrent caller (and its error, if it fails)."""
        if self._session is not None:
            return self._session
        if self._task_group is None:
            raise RuntimeError("TicketsMcpClient.bind() must be called in the server lifespan")
        return await self._opening.run(self._open_session)

    async def _open_session(self) -> _Session:
        if self._session is not None:  # opened by the flight that ended just before this one started
            return self._session
        assert self._task_group is not None
        try:
            with watching_responses() as watch, deadline(self._timeout, SERVICE):
                self._session = await self._task_group.start(self._hold_session)
        except Exception as exc:
            raise (_status_error(watch) or _connect_error(exc)) from exc
        return self._session

    async def _hold_session(self, *, task_status: TaskStatus[_Session]) -> None:
        """Open the MCP session and keep it open, in the lifespan's task group, until it is dropped."""
        session: _Session | None = None
        try:
            transport = streamable_http_client(self._url, http_client=self._http)
            with anyio.CancelScope() as leaving:
                async with Client(transport, read_timeout_seconds=self._timeout) as client:
                    session = _Session(client)
                    task_status.started(session)
                    await session.dropped.wait()
                    leaving.deadline = anyio.current_time() + self._timeout
            # Leaving the Client ends the session on tickets-mcp too (DELETE /mcp, where it keeps sessions),
            # within one deadline even if tickets-mcp hangs.
        except Exception as exc:
            if session is None:
                raise
            # The session died after it was handed out; the next call notices and opens a new one.
            logger.warning("%s session ended unexpectedly: %s", SERVICE, _reason(exc))
            if self._session is session:
                self._session = None
        finally:
            if session is not None:
                session.closed.set()

    async def _drop_session(self, session: _Session | None) -> None:
        """Close `session` (if it is still the current one) and let the next call open a new one."""
        if session is not None and self._session is session:
            self._session = None
            session.dropped.set()

    async def aclose(self) -> None:
        """Close the kept session (waiting briefly for it to end cleanly), then the HTTP pools."""
        session = self._session
        await self._drop_session(session)
        if session is not None:
            with anyio.move_on_after(self._timeout):
                await session.closed.wait()
        await self._http.aclose()
        await self._auth.aclose()


def _connect_error(exc: BaseException) -> DownstreamError:
    """The tool error for a session that could not be opened (the token request is the usual cause)."""
    late_error = _first(exc, DeadlineExceededError)
    if late_error is not None and late_error.service == SERVICE:
        return late(SERVICE, late_error.seconds)
    refused_token = _first(exc, TokenEndpointError)
    if refused_token is not None:
        return token_error(refused_token)
    if isinstance(exc, MCPError):
        return DownstreamError(f"{SERVICE} refused the MCP session: {exc.error.message}")
    return DownstreamError(f"{SERVICE} is unreachable ({_reason(exc)}); try again later.")


def _status_error(watch: ResponseWatch) -> DownstreamError | None:
    """The tool error for tickets-mcp's HTTP answer if it was 403, 429 or 5xx (the session itself is fine).

    A 403 is crm-mcp's token lacking the tool's scope: the error names the scope tickets-mcp asked for.
    Other statuses are left to the SDK's reading: a 400 or 404 may mean the session is gone.
    """
    response = watch.response
    if response is None or not (response.status_code in (403, 429) or response.status_code >= 500):
        return None
    return watch.error(SERVICE)


def _hung(error: Exception) -> bool:
    """Whether a failed session set-up waited out a timeout (remembered for the back-off) rather than
    being refused at once (not remembered: retrying a refused connection costs nothing)."""
    return _first(error, DeadlineExceededError) is not None or _first(error, httpx2.TimeoutException) is not None


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
