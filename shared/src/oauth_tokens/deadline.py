"""One total deadline per outbound call: connect, send and every read of the answer, together.

httpx2's timeouts bound each operation on its own, so a server that sends one byte just before
every read timeout keeps a call pending for as long as it likes, and a call that connects and then
waits pays the connect and the read timeout one after the other. Every outbound call of this project
(downstream APIs, MCP sessions and calls, the token endpoint, discovery and JWKS) runs inside
`deadline()` instead: whatever it is doing when the time is up is cancelled, and the caller gets a
`DeadlineExceededError` naming the party that did not answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio

from oauth_tokens.errors import DeadlineExceededError

__all__ = ["DeadlineExceededError", "deadline"]


@contextmanager
def deadline(seconds: float, service: str) -> Iterator[None]:
    """Cancel the body after `seconds` in total and raise DeadlineExceededError naming `service`.

    Only this deadline's own cancellation becomes the error: a caller cancelling from outside, or a
    nested deadline that fired first (its error names its own party), passes through unchanged.
    """
    if seconds <= 0:
        raise ValueError("a deadline must be positive")
    scope = anyio.move_on_after(seconds)
    with scope:
        yield
    if scope.cancelled_caught:
        raise DeadlineExceededError(service, seconds)
