"""A real authorization server stand-in on loopback HTTP (uvicorn in a thread) that counts requests.

It serves RFC 8414 metadata, a JWKS, an attacker's JWKS, a token endpoint and a protected
resource, with behaviour the tests switch per case (JWKS down, token errors, a 401 once, ...).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import anyio
import uvicorn
from devkit.processes import free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


@dataclass
class TokenRequest:
    """What the token endpoint received."""

    form: dict[str, str]
    authorization: str | None


@dataclass
class LoopbackState:
    """Everything the routes read (set by tests) and record (read by tests)."""

    base_url: str
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    attacker_jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    jwks_down: bool = False
    jwks_delay_seconds: float = 0.0
    metadata_issuer: str | None = None  # None: the base URL
    metadata_jwks_uri: str | None = None  # None: <base>/jwks
    counts: Counter[str] = field(default_factory=Counter)
    token_requests: list[TokenRequest] = field(default_factory=list)
    token_delay_seconds: float = 0.0
    token_expires_in: int | None = 3600
    token_error: tuple[int, str, str] | None = None  # (status, content type, body)
    # A careless server: refuses with every form value quoted in error_description.
    token_echo_form: bool = False
    token_factory: Callable[[dict[str, str]], str] | None = None
    token_answer_extra: dict[str, Any] = field(default_factory=dict)  # fields added to (or replacing) the answer's
    resource_rejections: int = 0  # how many next resource requests answer 401
    resource_tokens: list[str] = field(default_factory=list)

    def reset(self) -> None:
        fresh = LoopbackState(self.base_url)
        self.__dict__.update(fresh.__dict__)

    def metadata(self, issuer: str) -> dict[str, Any]:
        return {
            "issuer": self.metadata_issuer or issuer,
            "jwks_uri": self.metadata_jwks_uri or f"{self.base_url}/jwks",
            "token_endpoint": f"{self.base_url}/token",
            "response_types_supported": ["code"],
        }


def _routes(state: LoopbackState) -> list[Route]:
    async def metadata(request: Request) -> Response:
        state.counts["metadata"] += 1
        return JSONResponse(state.metadata(state.base_url))

    async def tenant_a_metadata(request: Request) -> Response:  # RFC 8414 §3.1 path-insertion form
        state.counts["metadata:tenant-a"] += 1
        return JSONResponse(state.metadata(f"{state.base_url}/tenant-a"))

    async def tenant_b_openid(request: Request) -> Response:  # OpenID Connect path-append form only
        state.counts["openid:tenant-b"] += 1
        return JSONResponse(state.metadata(f"{state.base_url}/tenant-b"))

    async def jwks(request: Request) -> Response:
        state.counts["jwks"] += 1
        if state.jwks_delay_seconds:
            await anyio.sleep(state.jwks_delay_seconds)
        if state.jwks_down:
            return PlainTextResponse("down", status_code=503)
        return JSONResponse(state.jwks)

    async def attacker(request: Request) -> Response:
        state.counts["attacker"] += 1
        return JSONResponse(state.attacker_jwks)

    async def token(request: Request) -> Response:
        state.counts["token"] += 1
        form = {key: str(value) for key, value in (await request.form()).items()}
        state.token_requests.append(TokenRequest(form, request.headers.get("authorization")))
        if state.token_delay_seconds:
            await anyio.sleep(state.token_delay_seconds)
        if state.token_echo_form:
            echoed = "; ".join(f"{name}={value}" for name, value in form.items())
            return JSONResponse({"error": "invalid_client", "error_description": echoed}, status_code=401)
        if state.token_error is not None:
            status, content_type, body = state.token_error
            return Response(body, status_code=status, media_type=content_type)
        number = state.counts["token"]
        access_token = state.token_factory(form) if state.token_factory else f"opaque-token-{number}"
        answer: dict[str, Any] = {"access_token": access_token, "token_type": "Bearer"}
        if state.token_expires_in is not None:
            answer["expires_in"] = state.token_expires_in
        answer.update(state.token_answer_extra)
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    async def token_redirect(request: Request) -> Response:
        state.counts["token-redirect"] += 1
        return Response(status_code=307, headers={"Location": f"{state.base_url}/token"})

    async def resource(request: Request) -> Response:
        state.counts["resource"] += 1
        state.resource_tokens.append(request.headers.get("authorization", "").removeprefix("Bearer "))
        if state.resource_rejections > 0:
            state.resource_rejections -= 1
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"ok": True})

    return [
        Route("/.well-known/oauth-authorization-server", metadata),
        Route("/.well-known/oauth-authorization-server/tenant-a", tenant_a_metadata),
        Route("/tenant-b/.well-known/openid-configuration", tenant_b_openid),
        Route("/jwks", jwks),
        Route("/attacker/{rest:path}", attacker),
        Route("/token", token, methods=["POST"]),
        Route("/token-redirect", token_redirect, methods=["POST"]),
        Route("/resource", resource, methods=["GET", "POST"]),
    ]


class ThreadedServer:
    """Runs an ASGI app with uvicorn on a free loopback port in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("loopback server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)


class LoopbackAuthServer(ThreadedServer):
    """The authorization server / resource stand-in, with its switchable state."""

    def __init__(self) -> None:
        self.state = LoopbackState(base_url="")
        super().__init__(Starlette(routes=_routes(self.state)))
        self.state.base_url = self.url
