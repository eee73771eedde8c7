"""The MCP tools: list/get need tickets:read, create/update need tickets:write (checked per call)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from oauth_tokens.mcp import require_tool_scopes
from oauth_tokens.mcp_step_up import requires_scopes
from pydantic import Field

from tickets_mcp.models import Priority, Status, Ticket, TicketList
from tickets_mcp.store import TicketStore

READ_SCOPE = "tickets:read"
WRITE_SCOPE = "tickets:write"
SCOPES = (READ_SCOPE, WRITE_SCOPE)

CustomerId = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="crm-api customer id", examples=["cus_001"])
]
TicketId = Annotated[str, Field(pattern=r"^tkt_\d{1,9}$", description="Ticket id", examples=["tkt_0001"])]

ToolFunction = TypeVar("ToolFunction", bound=Callable[..., Any])

_READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)


def register_tools(mcp: MCPServer[Any], store: TicketStore) -> None:
    """Add the four ticket tools to `mcp`, bound to `store`."""

    def tool(annotations: ToolAnnotations, scope: str) -> Callable[[ToolFunction], ToolFunction]:
        """Register a tool needing `scope`, described by its docstring, dedented (the SDK keeps indentation)."""

        def register(function: ToolFunction) -> ToolFunction:
            mcp.add_tool(
                function,
                description=inspect.cleandoc(function.__doc__ or ""),
                annotations=annotations,
                meta=requires_scopes(scope),
            )
            return function

        return register

    def not_found(ticket_id: str) -> ToolError:
        return ToolError(f"Ticket {ticket_id!r} not found")

    @tool(_READ_ONLY, READ_SCOPE)
    async def list_tickets(customer_id: CustomerId | None = None, status: Status | None = None) -> TicketList:
        """List support tickets, newest first, optionally for one customer and/or in one status.

        Requires the scope tickets:read.
        """
        require_tool_scopes(READ_SCOPE)
        tickets = await store.find(customer_id, status)
        return TicketList(tickets=tickets, count=len(tickets))

    @tool(_READ_ONLY, READ_SCOPE)
    async def get_ticket(ticket_id: TicketId) -> Ticket:
        """Get one ticket with its description, comments and provenance. Requires the scope tickets:read."""
        require_tool_scopes(READ_SCOPE)
        ticket = await store.get(ticket_id)
        if ticket is None:
            raise not_found(ticket_id)
        return ticket

    @tool(_WRITE, WRITE_SCOPE)
    async def create_ticket(
        customer_id: CustomerId,
        title: Annotated[str, Field(min_length=1, max_length=200)],
        description: Annotated[str, Field(max_length=5000)] = "",
        priority: Priority = "normal",
        requested_by: Annotated[
            str | None,
            Field(
                max_length=200,
                description="Who the ticket is for, as the calling client states it. Recorded as DATA: "
                "it is not authenticated and grants nothing.",
            ),
        ] = None,
    ) -> Ticket:
        """Open a support ticket for a customer. Requires the scope tickets:write.

        The ticket records created_by_client from the caller's access token (verified identity) and
        requested_by exactly as given (unverified data about whom the client acted for).
        """
        access = require_tool_scopes(WRITE_SCOPE)
        # Identity comes only from the validated token; `requested_by` is caller-supplied data that
        # tickets-mcp cannot verify (the client may act for any user), so it is stored, never trusted.
        return await store.create(
            customer_id=customer_id,
            title=title,
            description=description,
            priority=priority,
            created_by_client=access.client_id,
            requested_by=requested_by,
        )

    @tool(_WRITE, WRITE_SCOPE)
    async def update_ticket(
        ticket_id: TicketId,
        status: Status | None = None,
        priority: Priority | None = None,
        comment: Annotated[str | None, Field(min_length=1, max_length=5000)] = None,
    ) -> Ticket:
        """Change a ticket's status and/or priority and/or add a comment. Requires the scope tickets:write."""
        access = require_tool_scopes(WRITE_SCOPE)
        if status is None and priority is None and comment is None:
            raise ToolError("Nothing to update: give a status, a priority or a comment")
        ticket = await store.update(
            ticket_id, status=status, priority=priority, comment=comment, by_client=access.client_id
        )
        if ticket is None:
            raise not_found(ticket_id)
        return ticket
