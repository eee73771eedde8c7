"""Client plumbing the bench groups share: an MCP session with a bearer token, the bare server, log counts."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.processes import start_service
from tests.support.topology import Topology

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def bearer_session(url: str, token: str) -> AsyncIterator[Client]:
    """An MCP session with `url` that sends `token` on every request (no OAuth flow, no refresh)."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


@contextmanager
def bare_mcp_server(topology: Topology) -> Iterator[str]:
    """Start the bare MCPServer (scripts.bench.bare_mcp) beside the topology; yield its MCP URL."""
    service = start_service(
        "bench-bare-mcp",
        "scripts.bench.bare_mcp",
        port_variable="BENCH_BARE_MCP_PORT",
        env={**topology.env, "PYTHONPATH": str(ROOT)},
        workdir=topology.workdir / "bench-bare-mcp",
    )
    try:
        yield f"{service.url}/mcp"
    finally:
        service.stop()


def auth_server_requests(topology: Topology, method: str, path: str) -> int:
    """How many `method path` requests the auth-server has answered so far, from its own access log."""
    line = re.compile(rf"auth_server\.access: {re.escape(method)} {re.escape(path)} \d{{3}}$", re.MULTILINE)
    return len(line.findall(topology.services["auth-server"].logs()))
