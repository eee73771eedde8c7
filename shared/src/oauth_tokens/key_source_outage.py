"""Key source down is not a bad token: 503 with Retry-After, never 401, on every resource server.

A 401 `invalid_token` tells a client to drop its token and log in again; when the authorization
server's signing keys cannot be fetched, the token may be perfectly good and the right answer is
503 `temporarily_unavailable` with Retry-After (RFC 9110 §10.2.3), so clients wait and retry.

The FastAPI adapter (`oauth_tokens.fastapi`) answers that from its exception handler. The MCP SDK's
bearer middleware cannot: its TokenVerifier returns an AccessToken or None, and None is a 401. So
`JWTTokenVerifier` reports the outage with `report_key_source_outage()`, and
`KeySourceOutageMiddleware`, installed in front of the SDK's middleware with
`install_key_source_outage(app)`, turns that request's 401 into the same 503. It is an ordinary ASGI
middleware: it composes with any other, in any order, as long as it is outside the SDK's
authentication middleware (Starlette's `add_middleware` puts it outermost).
"""

from __future__ import annotations

import json
import math
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "KEYS_UNAVAILABLE_DESCRIPTION",
    "KEYS_UNAVAILABLE_RETRY_AFTER_SECONDS",
    "KeySourceOutageMiddleware",
    "install_key_source_outage",
    "key_source_unavailable_answer",
    "report_key_source_outage",
]

KEYS_UNAVAILABLE_DESCRIPTION = "The token signing keys cannot be fetched right now; retry later"
# When the key cache cannot say when it will try again.
KEYS_UNAVAILABLE_RETRY_AFTER_SECONDS = 5


@dataclass
class _Outage:
    """What the verifier found about the request being served (one per request)."""

    reported: bool = False
    retry_after_seconds: float | None = None


_current: ContextVar[_Outage | None] = ContextVar("oauth_tokens_key_source_outage", default=None)


def report_key_source_outage(retry_after_seconds: float | None) -> None:
    """From a token verifier: this request's token could not be checked because the keys are unavailable."""
    outage = _current.get()
    if outage is not None:
        outage.reported = True
        outage.retry_after_seconds = retry_after_seconds


def key_source_unavailable_answer(retry_after_seconds: float | None) -> tuple[dict[str, str], dict[str, str]]:
    """The 503's JSON body and headers: Retry-After is when the keys will next be fetched (at least 1 s)."""
    seconds = KEYS_UNAVAILABLE_RETRY_AFTER_SECONDS if retry_after_seconds is None else retry_after_seconds
    body = {"error": "temporarily_unavailable", "error_description": KEYS_UNAVAILABLE_DESCRIPTION}
    headers = {"Retry-After": str(max(1, math.ceil(seconds))), "Cache-Control": "no-store"}
    return body, headers


class KeySourceOutageMiddleware:
    """Turns a 401 into 503 + Retry-After when the request's token verifier reported a key-source outage."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        outage = _Outage()
        replacing = False

        async def send_or_replace(message: Message) -> None:
            nonlocal replacing
            if message["type"] == "http.response.start" and message["status"] == 401 and outage.reported:
                replacing = True
                await _send_unavailable(send, outage.retry_after_seconds)
            elif not (replacing and message["type"] == "http.response.body"):
                await send(message)

        token = _current.set(outage)
        try:
            await self.app(scope, receive, send_or_replace)
        finally:
            _current.reset(token)


async def _send_unavailable(send: Send, retry_after_seconds: float | None) -> None:
    body, headers = key_source_unavailable_answer(retry_after_seconds)
    content = json.dumps(body).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": 503, "headers": raw_headers})
    await send({"type": "http.response.body", "body": content})


def install_key_source_outage(app: Starlette) -> None:
    """Answer 503 + Retry-After instead of 401 when `app`'s JWTTokenVerifier cannot fetch the keys."""
    app.add_middleware(KeySourceOutageMiddleware)
