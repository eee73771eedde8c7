"""crm-mcp's tools: what a model sees. Each declares its scopes once (`scoped_tool`: listed in `tools/list`,
a 403 step-up before it runs, checked again as it starts; see oauth_tokens.mcp_step_up), then calls one
pattern's client.

| tool                  | scope(s)                           | downstream pattern                    |
|-----------------------|------------------------------------|---------------------------------------|
| search_customers      | crm:read                           | 3 cascade or 3b exchange → crm-api    |
| get_customer          | crm:read                           | 3 cascade or 3b exchange → crm-api    |
| add_customer_note     | crm:write                          | 3 cascade or 3b exchange → crm-api    |
| list_customer_tickets | tickets:read                       | 2 client credentials → tickets-mcp    |
| open_ticket           | tickets:write                      | 2 client credentials → tickets-mcp    |
| get_weather           | weather:read                       | 1 API key → weather-api               |
| customer_briefing     | crm:read tickets:read weather:read | 3 first, then 1 and 2 concurrently    |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from oauth_tokens.mcp import caller_token
from oauth_tokens.mcp_step_up import scoped_tool
from pydantic import BaseModel, Field

from crm_mcp.api_key_weather import Weather, WeatherApiClient
from crm_mcp.crm_api_client import CrmApiClient, Customer, InlineCustomerSummary
from crm_mcp.tickets_mcp_client import (
    Ticket,
    TicketPriority,
    TicketsMcpClient,
    TicketStatus,
    TicketSummary,
)

CustomerId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="A customer id, e.g. cus_001")]
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


@dataclass
class Downstreams:
    """The three downstream clients, opened once in the server's lifespan and shared by every call."""

    weather: WeatherApiClient
    crm_api: CrmApiClient
    tickets: TicketsMcpClient


class Briefing(BaseModel):
    """Everything about one customer, with any part that could not be fetched named in `unavailable`."""

    customer: Customer
    open_tickets: list[TicketSummary] | None
    weather: Weather | None
    unavailable: dict[str, str] = Field(description="Part -> why it could not be fetched")


def _downstreams(ctx: Context[Downstreams, Any]) -> Downstreams:
    return ctx.request_context.lifespan_context


def _caller() -> str:
    """The authenticated user's `sub`: who a ticket is requested by."""
    token = caller_token()
    return token.subject or token.client_id


def register_tools(mcp: MCPServer[Downstreams]) -> None:
    """Add crm-mcp's tools to `mcp`."""

    @scoped_tool(mcp, "crm:read", annotations=READ_ONLY)
    async def search_customers(
        ctx: Context[Downstreams, Any],
        query: Annotated[
            str | None, Field(max_length=100, description="Part of a name, company or city; omit to list all")
        ] = None,
    ) -> list[InlineCustomerSummary]:
        """Search your customers by name, company or city, or list them all."""
        return await _downstreams(ctx).crm_api.search_customers(query)

    @scoped_tool(mcp, "crm:read", annotations=READ_ONLY)
    async def get_customer(customer_id: CustomerId, ctx: Context[Downstreams, Any]) -> Customer:
        """Get one of your customers by id, with their notes."""
        return await _downstreams(ctx).crm_api.get_customer(customer_id)

    @scoped_tool(mcp, "crm:write", annotations=ToolAnnotations(destructive_hint=False, open_world_hint=False))
    async def add_customer_note(
        customer_id: CustomerId,
        note: Annotated[str, Field(min_length=1, max_length=2000)],
        ctx: Context[Downstreams, Any],
    ) -> Customer:
        """Add a note to one of your customers."""
        return await _downstreams(ctx).crm_api.add_note(customer_id, note)

    @scoped_tool(mcp, "tickets:read", annotations=READ_ONLY)
    async def list_customer_tickets(
        customer_id: CustomerId,
        ctx: Context[Downstreams, Any],
        status: TicketStatus | None = None,
    ) -> list[TicketSummary]:
        """List support tickets of a customer, optionally by status."""
        # Scope is checked against the user; the customer's visibility is checked by crm-api first,
        # so a user cannot list tickets of another rep's customer through crm-mcp's own credentials.
        await _downstreams(ctx).crm_api.get_customer(customer_id)
        return await _downstreams(ctx).tickets.list_tickets(customer_id, status)

    @scoped_tool(
        mcp,
        "tickets:write",
        annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=False, open_world_hint=False),
    )
    async def open_ticket(
        customer_id: CustomerId,
        title: Annotated[str, Field(min_length=3, max_length=200)],
        description: Annotated[str, Field(max_length=5000)],
        ctx: Context[Downstreams, Any],
        priority: TicketPriority = "normal",
    ) -> Ticket:
        """Open a support ticket for one of your customers."""
        await _downstreams(ctx).crm_api.get_customer(customer_id)
        return await _downstreams(ctx).tickets.create_ticket(customer_id, title, description, priority, _caller())

    @scoped_tool(mcp, "weather:read", annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True))
    async def get_weather(
        city: Annotated[str, Field(min_length=1, max_length=100)], ctx: Context[Downstreams, Any]
    ) -> Weather:
        """Current weather in a city (from the external weather provider)."""
        return await _downstreams(ctx).weather.current_weather(city)

    @scoped_tool(mcp, "crm:read", "tickets:read", "weather:read", annotations=READ_ONLY)
    async def customer_briefing(customer_id: CustomerId, ctx: Context[Downstreams, Any]) -> Briefing:
        """A customer briefing: the account, its open tickets and the weather where they are.

        If tickets or weather cannot be fetched, the briefing says which and why instead of failing;
        without the account, it fails.
        """
        clients = _downstreams(ctx)
        # The account first, as the user (pattern 3): it proves the customer is the caller's before
        # crm-mcp uses its own identity (pattern 2) for it, and it gives the city for the weather.
        customer = await clients.crm_api.get_customer(customer_id)
        unavailable: dict[str, str] = {}
        open_tickets: list[TicketSummary] | None = None
        weather: Weather | None = None

        async def fetch_tickets() -> None:
            nonlocal open_tickets
            try:
                open_tickets = await clients.tickets.list_tickets(customer_id, "open")
            except ToolError as exc:
                unavailable["open_tickets"] = str(exc)

        async def fetch_weather() -> None:
            nonlocal weather
            try:
                weather = await clients.weather.current_weather(customer.city)
            except ToolError as exc:
                unavailable["weather"] = str(exc)

        async with anyio.create_task_group() as group:
            group.start_soon(fetch_tickets)
            group.start_soon(fetch_weather)
        return Briefing(customer=customer, open_tickets=open_tickets, weather=weather, unavailable=unavailable)
