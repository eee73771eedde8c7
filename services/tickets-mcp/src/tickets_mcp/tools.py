"""The MCP tools: list/get need tickets:read, create/update need tickets:write, each declared once (`scoped_tool`)."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from oauth_tokens.mcp import caller_token
from oauth_tokens.mcp_step_up import scoped_tool
from pydantic import Field

from tickets_mcp.models import Priority, Status, Ticket, TicketList
from tickets_mcp.store import TicketStore

READ_SCOPE = "tickets:read"
WRITE_SCOPE = "tickets:write"

CustomerId = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="crm-api customer id", examples=["cus_001"])
]
TicketId = Annotated[str, Field(pattern=r"^tkt_\d{1,9}$", description="Ticket id", examples=["tkt_0001"])]

_READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)


def register_tools(mcp: MCPServer[Any], store: TicketStore) -> None:
    """Add the four ticket tools to `mcp`, bound to `store`."""

    def not_found(ticket_id: str) -> ToolError:
        return ToolError(f"Ticket {ticket_id!r} not found")

    @scoped_tool(mcp, READ_SCOPE, annotations=_READ_ONLY)
    async def list_tickets(customer_id: CustomerId | None = None, status: Status | None = None) -> TicketList:
        """List support tickets, newest first, optionally for one customer and/or in one status."""
        tickets = await store.find(customer_id, status)
        return TicketList(tickets=tickets, count=len(tickets))

    @scoped_tool(mcp, READ_SCOPE, annotations=_READ_ONLY)
    async def get_ticket(ticket_id: TicketId) -> Ticket:
        """Get one ticket with its description, comments and provenance."""
        ticket = await store.get(ticket_id)
        if ticket is None:
            raise not_found(ticket_id)
        return ticket

    @scoped_tool(mcp, WRITE_SCOPE, annotations=_WRITE)
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
        """Open a support ticket for a customer.

        The ticket records created_by_client from the caller's access token (verified identity) and
        requested_by exactly as given (unverified data about whom the client acted for).
        """
        access = caller_token()
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

    @scoped_tool(mcp, WRITE_SCOPE, annotations=_WRITE)
    async def update_ticket(
        ticket_id: TicketId,
        status: Status | None = None,
        priority: Priority | None = None,
        comment: Annotated[str | None, Field(min_length=1, max_length=5000)] = None,
    ) -> Ticket:
        """Change a ticket's status and/or priority and/or add a comment."""
        access = caller_token()
        if status is None and priority is None and comment is None:
            raise ToolError("Nothing to update: give a status, a priority or a comment")
        ticket = await store.update(
            ticket_id, status=status, priority=priority, comment=comment, by_client=access.client_id
        )
        if ticket is None:
            raise not_found(ticket_id)
        return ticket
