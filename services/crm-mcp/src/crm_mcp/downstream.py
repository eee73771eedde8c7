"""How crm-mcp talks to any downstream: one HTTP client factory, bounded safe retries, and failure -> ToolError.

Every pattern module sends through `send()`, so every outbound call has one total deadline (connect,
send and every read of the answer, retries included: `oauth_tokens.deadline`), only idempotent
requests are retried (and only on failures a retry can fix), and every failure reaches the MCP client
as a `DownstreamError` (a `ToolError`, the one exception type whose message the SDK passes on) that
names the service and what went wrong, never a credential.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
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
    """A downstream call failed; the message is safe to show to the MCP client."""


def http_client(timeout_seconds: float, auth: httpx2.Auth | None = None) -> httpx2.AsyncClient:
    """One pooled client per downstream, created at start-up and reused for every call."""
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(timeout_seconds),
        auth=auth,
        follow_redirects=False,
        limits=httpx2.Limits(max_connections=50, max_keepalive_connections=20),
    )


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
    if status == 429:
        retry_after = response.headers.get("retry-after")
        when = f" Retry after {retry_after} s." if retry_after else ""
        return DownstreamError(f"{service} rate limit reached (429 Too Many Requests).{when}")
    if status >= 500:
        return DownstreamError(f"{service} is failing ({status}); try again later.")
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
