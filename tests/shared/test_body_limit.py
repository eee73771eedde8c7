"""BodyLimitMiddleware over a real ASGI app: declared and chunked bodies past the limit get a 413, the
app never sees a declared oversized body, and bodies up to the limit pass untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest
from oauth_tokens.body_limit import BodyLimitMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

pytestmark = pytest.mark.anyio

LIMIT = 1000


def _app() -> tuple[Starlette, list[str]]:
    calls: list[str] = []

    async def echo_length(request: Request) -> JSONResponse:
        calls.append(request.url.path)
        return JSONResponse({"length": len(await request.body())})

    app = Starlette(routes=[Route("/echo", echo_length, methods=["POST"])])
    app.add_middleware(BodyLimitMiddleware, max_bytes=LIMIT)
    return app, calls


async def _chunks(total: int, size: int = 100) -> AsyncIterator[bytes]:
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


async def test_a_declared_length_over_the_limit_is_refused_before_the_app_runs() -> None:
    app, calls = _app()
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://test") as client:
        response = await client.post("/echo", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"
    assert calls == []


async def test_a_chunked_body_over_the_limit_is_counted_and_refused() -> None:
    app, calls = _app()
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://test") as client:
        response = await client.post("/echo", content=_chunks(LIMIT * 5))
    assert response.status_code == 413  # the app's own answer to its failed read never reaches the client
    assert response.json()["error"] == "request_too_large"
    assert calls == ["/echo"]


@pytest.mark.parametrize("size", [0, LIMIT])
async def test_bodies_up_to_the_limit_pass(size: int) -> None:
    app, _ = _app()
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://test") as client:
        declared = await client.post("/echo", content=b"x" * size)
        chunked = await client.post("/echo", content=_chunks(size))
    assert declared.json() == {"length": size}
    assert chunked.json() == {"length": size}


def test_the_limit_must_be_positive() -> None:
    app, _ = _app()
    with pytest.raises(ValueError, match="positive"):
        BodyLimitMiddleware(app, max_bytes=0)
