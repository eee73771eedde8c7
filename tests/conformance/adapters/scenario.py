"""What every adapter shares: the scenario's data, the trust policy for the suite's servers, one MCP call."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

TIMEOUT_SECONDS = 10.0


def server_url() -> str:
    """The MCP server under test: the suite appends its URL to the adapter's command line."""
    return sys.argv[-1]


def context() -> dict[str, Any]:
    """The scenario's data (client_id, client_secret, keys, ...), as the suite passes it."""
    data: dict[str, Any] = json.loads(os.environ["MCP_CONFORMANCE_CONTEXT"])
    return data


def suite_server(issuer: str) -> bool:
    """Trust policy for `TokenEndpointDiscovery(trust_issuer=...)`: the suite's own mock authorization server.

    The suite starts it on http://localhost:<random port> beside the MCP server, so its issuer cannot be
    configured ahead; nothing else is trusted.
    """
    parts = urlsplit(issuer)
    return parts.scheme == "http" and parts.hostname == "localhost" and not parts.path.strip("/")


async def list_tools(url: str, auth: httpx2.Auth) -> None:
    """Initialize an MCP session at `url` with `auth` on every request, and list its tools."""
    http = httpx2.AsyncClient(auth=auth, timeout=TIMEOUT_SECONDS, follow_redirects=False)
    transport = streamable_http_client(url, http_client=http)
    async with http, Client(transport, read_timeout_seconds=TIMEOUT_SECONDS) as mcp:
        await mcp.list_tools()


def run(main: Callable[[], Awaitable[None]]) -> None:
    """Run an adapter's `main`; an exception exits non-zero with its traceback (the suite keeps stderr)."""
    anyio.run(main)
