"""A reverse proxy on loopback, in the test's own event loop, that forwards to a real service and can be
told to answer some requests itself with an error status (e.g. 429 with Retry-After), as a rate-limiting
gateway or a failing load balancer in front of that service would.

It counts the requests it answered with the fault, so a test can prove a caller did (or did not) retry,
keeps the body of every request it forwarded, and can hold each one `delay_seconds` first (a slow upstream).
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import httpx2
import uvicorn
from starlette.types import Receive, Scope, Send

# Not forwarded: they describe this hop's connection, not the request.
_HOP_HEADERS = frozenset({"host", "connection", "content-length", "transfer-encoding", "keep-alive"})


@dataclass
class Fault:
    """Answer `status` with `headers` to the requests this fault matches (an MCP method, or every request)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    mcp_method: str | None = None


@dataclass
class FaultProxy:
    url: str
    fault: Fault | None = None
    faulted: int = 0
    delay_seconds: float = 0.0
    forwarded: list[bytes] = field(default_factory=list)


@asynccontextmanager
async def fault_proxy(upstream: str) -> AsyncIterator[FaultProxy]:
    """A proxy at `url` forwarding everything to `upstream` (scheme://host:port), except what `fault` matches."""
    # Bound and listening before the server runs, so requests wait in the backlog rather than fail.
    listener = socket.create_server(("127.0.0.1", 0))
    proxy = FaultProxy(url=f"http://127.0.0.1:{listener.getsockname()[1]}")

    async with httpx2.AsyncClient(base_url=upstream, timeout=30) as http:

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            assert scope["type"] == "http"
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            if proxy.fault is not None and _matches(proxy.fault, body):
                proxy.faulted += 1
                injected = [(b"content-type", b"text/plain")]
                injected += [(k.encode(), v.encode()) for k, v in proxy.fault.headers.items()]
                await send({"type": "http.response.start", "status": proxy.fault.status, "headers": injected})
                await send({"type": "http.response.body", "body": b"injected fault"})
                return
            proxy.forwarded.append(body)
            if proxy.delay_seconds:
                await anyio.sleep(proxy.delay_seconds)
            headers = {k.decode(): v.decode() for k, v in scope["headers"] if k.decode().lower() not in _HOP_HEADERS}
            target = scope["path"] + ("?" + scope["query_string"].decode() if scope["query_string"] else "")
            request = http.build_request(scope["method"], target, headers=headers, content=body)
            async with await_stream(http, request) as response:
                answer = [(k.encode(), v.encode()) for k, v in response.headers.items() if k not in _HOP_HEADERS]
                await send({"type": "http.response.start", "status": response.status_code, "headers": answer})
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})

        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [listener])
            try:
                yield proxy
            finally:
                server.should_exit = True


@asynccontextmanager
async def await_stream(http: httpx2.AsyncClient, request: httpx2.Request) -> AsyncIterator[httpx2.Response]:
    response = await http.send(request, stream=True)
    try:
        yield response
    finally:
        await response.aclose()


def _matches(fault: Fault, body: bytes) -> bool:
    if fault.mcp_method is None:
        return True
    try:
        return bool(json.loads(body).get("method") == fault.mcp_method)
    except (ValueError, AttributeError):
        return False
