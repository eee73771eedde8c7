"""Fixtures: an in-test token issuer, one real tickets-mcp process trusting it, and an SDK client session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx2
import pytest
from devkit.processes import ServiceProcess, free_port, start_service
from devkit.sessions import mcp_session
from devkit.tokens import TestIssuer
from mcp.client.session import ClientSession

EXTRA_ALLOWED_HOST = "tickets-mcp:8002"


@dataclass(frozen=True)
class TicketsServer:
    process: ServiceProcess
    resource: str  # TICKETS_MCP_RESOURCE: the audience its tokens must carry

    @property
    def mcp_url(self) -> str:
        return f"{self.process.url}/mcp"


@pytest.fixture(scope="package")
def issuer() -> Iterator[TestIssuer]:
    with TestIssuer() as test_issuer:
        yield test_issuer


@pytest.fixture(scope="package")
def tickets(tmp_path_factory: pytest.TempPathFactory, issuer: TestIssuer) -> Iterator[TicketsServer]:
    workdir = tmp_path_factory.mktemp("tickets-mcp")
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    service = start_service(
        "tickets-mcp",
        "tickets_mcp",
        port_variable="TICKETS_MCP_PORT",
        port=port,
        env={
            "AUTH_ISSUER": issuer.issuer,
            "AUTH_JWKS_URL": issuer.jwks_url,
            "TICKETS_MCP_RESOURCE": resource,
            "TICKETS_MCP_DATA_DIR": str(workdir / "data"),
            "TICKETS_MCP_ALLOWED_HOSTS": EXTRA_ALLOWED_HOST,
        },
        workdir=workdir,
    )
    yield TicketsServer(process=service, resource=resource)
    service.stop()


def mint_for(issuer: TestIssuer, tickets: TicketsServer, scope: str, client_id: str = "crm-mcp-agent") -> str:
    """A client-credentials-style token for tickets-mcp (our auth-server puts the client id in `sub`)."""
    return issuer.mint(sub=client_id, client_id=client_id, aud=tickets.resource, scope=scope)


class SwitchableBearer(httpx2.Auth):
    """`Authorization: Bearer <token>` on every request, where the test may change `token` mid-session."""

    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx2.Request) -> Iterator[httpx2.Request]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


@asynccontextmanager
async def legacy_session(url: str, token: str | SwitchableBearer) -> AsyncIterator[ClientSession]:
    """An initialised MCP session (the handshake-era protocol, with a session id) whose every request
    carries `Bearer token` (the token a `SwitchableBearer` holds at the time)."""
    auth = token if isinstance(token, SwitchableBearer) else SwitchableBearer(token)
    async with mcp_session(url, auth=auth, http_timeout=10.0, mode="legacy") as client:
        yield client.session
