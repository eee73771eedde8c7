"""Fixtures: an in-test token issuer, one real tickets-mcp process trusting it, and an SDK client session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx2
import pytest
from devkit.processes import ServiceProcess, free_port, start_service
from devkit.tokens import TestIssuer
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

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


@asynccontextmanager
async def mcp_session(url: str, token: str) -> AsyncIterator[tuple[ClientSession, httpx2.AsyncClient]]:
    """An initialised MCP session over Streamable HTTP whose every request carries `Bearer token`."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10.0) as http_client,
        streamable_http_client(url, http_client=http_client) as (read_stream, write_stream),
        ClientSession(read_stream, write_stream) as session,
    ):
        await session.initialize()
        yield session, http_client
