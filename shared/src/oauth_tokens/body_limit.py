"""Request body limit: ASGI middleware that refuses an oversized body with 413 before the app reads it.

A declared `Content-Length` over the limit is answered at once, without calling the app. A body with no
declared length (chunked) or a short declared one is counted as it arrives: past the limit the app's read
fails, whatever the app answers to that is dropped, and the client gets the 413 instead. So no service
ever holds more than the limit (plus one chunk) of a request body in memory. Needs Starlette (the
`fastapi` or `mcp` extra).

Lingering close: a client still sending its body when the 413 arrives and the connection closes sees a
reset, not the 413. So before answering, up to `LINGER_BYTES` more of the body are read and thrown away
(never kept; `LINGER_SECONDS` at most); a body declared larger than that is answered at once.
"""

from __future__ import annotations

import json

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DEFAULT_MAX_BODY_BYTES", "BodyLimitMiddleware", "BodyTooLargeError"]

# MCP messages and API requests of this project are a few KiB; 1 MiB leaves ample room.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
LINGER_BYTES = 8 * 1024 * 1024
LINGER_SECONDS = 2.0


class BodyTooLargeError(Exception):
    """Raised inside the app's `receive` once the body passes the limit; the middleware answers 413."""


class BodyLimitMiddleware:
    """Answer 413 (JSON `request_too_large`) to any HTTP request whose body exceeds `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            if int(declared) <= self.max_bytes + LINGER_BYTES:
                await _discard(receive)
            await self._too_large(send)
            return

        received = 0
        exceeded = False
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLargeError(f"request body over {self.max_bytes} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if exceeded and not response_started:
                return  # the app's answer to its failed read: replaced by the 413 below
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLargeError:
            if response_started:
                raise  # too late for a 413: let the server close the connection
        if exceeded and not response_started:
            await _discard(receive)
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": "request_too_large",
                "error_description": f"The request body is larger than {self.max_bytes} bytes",
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),  # the rest of the body is not read
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _discard(receive: Receive) -> None:
    """Read and drop up to LINGER_BYTES of the rest of the body, for LINGER_SECONDS at most."""
    left = LINGER_BYTES
    with anyio.move_on_after(LINGER_SECONDS):
        while left > 0:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            left -= len(message.get("body", b""))
