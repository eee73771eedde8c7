"""crm-mcp's `TicketsMcpClient`, owned by a task group as in crm-mcp's lifespan, for tests that drive it directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from crm_mcp.tickets_mcp_client import TicketsMcpClient
from oauth_tokens import ClientCredentialsAuth


@asynccontextmanager
async def running_tickets_client(
    url: str, auth: ClientCredentialsAuth, **options: Any
) -> AsyncIterator[TicketsMcpClient]:
    """A bound `TicketsMcpClient(url, auth, **options)`, closed (session and pools) on the way out."""
    client = TicketsMcpClient(url, auth, **options)
    async with anyio.create_task_group() as owner:
        client.bind(owner)
        try:
            yield client
        finally:
            await client.aclose()
            owner.cancel_scope.cancel()
