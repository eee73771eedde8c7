"""How crm-mcp talks to any downstream: one HTTP client factory, bounded safe retries, and failure -> ToolError.

Every pattern module sends through `send()`, so every outbound call has one total deadline (connect,
send and every read of the answer, retries included: `oauth_tokens.deadline`), only idempotent
requests are retried (and only on failures a retry can fix), and every failure reaches the MCP client
as a `DownstreamError` (a `ToolError`, the one exception type whose message the SDK passes on) that
names the service and what went wrong, never a credential.

One status policy for every downstream (HTTP APIs and tickets-mcp's MCP endpoint alike, see
`error_for_status`): a 429 says the rate limit was reached, a 5xx that the service is failing, and when
the answer carries Retry-After (RFC 9110 §10.2.3) the tool error says after how many seconds to try
again, in its text and as `DownstreamError.retry_after_seconds`. Clients built by `http_client` record
the last response of the calls made inside `watching_responses()`, so a caller whose library hides the
HTTP answer (the MCP SDK turns any error status into "Server returned an error response") still knows it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

import anyio
import httpx2
from mcp.server.mcpserver.exceptions import ToolError
from oauth_tokens.deadline import DeadlineExceededError, deadline
from pydantic import ValidationError

logger = logging.getLogger(__name__)

# Statuses where the same idempotent request may succeed a moment later.
RETRYABLE_STATUSES = frozenset({502, 503, 504})
RETRY_BACKOFF_SECONDS = 0.2

T = TypeVar("T")


class DownstreamError(ToolError):
    """A downstream call failed; the message is safe to show to the MCP client.

    `retry_after_seconds`: the downstream's Retry-After, when it sent one (also in the message).
    """

    def __init__(self, message: str, *, retry_after_seconds: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


@dataclass
class ResponseWatch:
    """The last HTTP response received by the calls made inside `watching_responses()` (None: none yet)."""

    response: httpx2.Response | None = None

    def error(self, service: str) -> DownstreamError | None:
        """The tool error the last response means, or None if there is none or it was a success."""
        return None if self.response is None else error_for_status(service, self.response)


# A context variable, so the response is recorded in whichever task sends the request on the caller's
# behalf (the MCP SDK sends each request from a task that inherits the caller's context).
_watch: ContextVar[ResponseWatch | None] = ContextVar("crm_mcp_response_watch", default=None)


@contextmanager
def watching_responses() -> Iterator[ResponseWatch]:
    """Record the last response of every `http_client` request made in this context, until the block ends."""
    watch = ResponseWatch()
    token = _watch.set(watch)
    try:
        yield watch
    finally:
        _watch.reset(token)


async def _record_response(response: httpx2.Response) -> None:
    watch = _watch.get()
    if watch is not None:
        watch.response = response


def http_client(
    timeout_seconds: float, auth: httpx2.Auth | None = None, transport: httpx2.AsyncBaseTransport | None = None
) -> httpx2.AsyncClient:
    """One pooled client per downstream, created at start-up and reused for every call.

    `transport`: None (sockets, as deployed); tests pass an ASGI transport to reach the services in process.
    """
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(timeout_seconds),
        auth=auth,
        transport=transport,
        follow_redirects=False,
        limits=httpx2.Limits(max_connections=50, max_keepalive_connections=20),
        event_hooks={"response": [_record_response]},
    )


def retry_after_seconds(response: httpx2.Response) -> int | None:
    """Retry-After as whole seconds from now (it may be a number or an HTTP date); None if absent or unreadable."""
    value = response.headers.get("retry-after", "").strip()
    if value.isdigit():
        return int(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0, math.ceil(when.timestamp() - time.time()))


def parse_response(service: str, parse: Callable[[], T]) -> T:
    """Run `parse` on a downstream's answer; an unexpected shape is a clear tool error, not a masked crash."""
    try:
        return parse()
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        raise DownstreamError(f"{service} returned a response crm-mcp cannot read.") from exc


def error_for_status(service: str, response: httpx2.Response) -> DownstreamError | None:
    """The tool error a non-success response means, or None for a success."""
    status = response.status_code
    if status < 400:
        return None
    if status == 401:
        return DownstreamError(f"{service} rejected the credentials crm-mcp presented (401 Unauthorized).")
    if status == 403:
        challenge = response.headers.get("www-authenticate", "")
        scope = challenge.split('scope="', 1)[1].split('"', 1)[0] if 'scope="' in challenge else None
        needed = f" It requires scope '{scope}'." if scope else ""
        return DownstreamError(f"{service} refused the request (403 Forbidden).{needed}")
    if status == 404:
        return DownstreamError(f"{service}: not found (404).")
    retry_after = retry_after_seconds(response) if status == 429 or status >= 500 else None
    when = "try again later." if retry_after is None else f"retry after {retry_after} s."
    if status == 429:
        return DownstreamError(
            f"{service} rate limit reached (429 Too Many Requests); {when}", retry_after_seconds=retry_after
        )
    if status >= 500:
        return DownstreamError(f"{service} is failing ({status}); {when}", retry_after_seconds=retry_after)
    return DownstreamError(f"{service} rejected the request ({status}).")


def late(service: str, seconds: float) -> DownstreamError:
    """The tool error for a downstream that did not answer within its deadline."""
    return DownstreamError(f"{service} did not answer within {seconds:g} s; try again later.")


async def send(
    service: str,
    request: Callable[[], Awaitable[httpx2.Response]],
    *,
    idempotent: bool,
    deadline_seconds: float,
    attempts: int = 2,
) -> httpx2.Response:
    """Send `request()`; retry an idempotent one on connect errors and 502/503/504, at most `attempts` times.

    Everything, retries included, ends within `deadline_seconds`. Returns the successful response;
    raises DownstreamError for every failure.
    """
    try:
        with deadline(deadline_seconds, service):
            return await _send(service, request, attempts if idempotent else 1)
    except DeadlineExceededError as exc:
        # A call that ran out of time may have run: never retried, and the caller is told plainly.
        raise late(service, deadline_seconds) from exc
    raise AssertionError("unreachable: the deadline either lets the call return or raises")


async def _send(service: str, request: Callable[[], Awaitable[httpx2.Response]], tries: int) -> httpx2.Response:
    for attempt in range(1, tries + 1):
        last = attempt == tries
        try:
            response = await request()
        except httpx2.TimeoutException as exc:
            raise DownstreamError(f"{service} did not answer in time; try again later.") from exc
        except httpx2.TransportError as exc:
            if last:
                raise DownstreamError(f"{service} is unreachable; try again later.") from exc
            logger.info("%s unreachable (attempt %d/%d); retrying", service, attempt, tries)
        else:
            if response.status_code in RETRYABLE_STATUSES and not last:
                logger.info("%s answered %d (attempt %d/%d); retrying", service, response.status_code, attempt, tries)
            elif (error := error_for_status(service, response)) is not None:
                raise error
            else:
                return response
        await anyio.sleep(RETRY_BACKOFF_SECONDS * attempt)
    raise AssertionError("unreachable: the last attempt returns or raises")
