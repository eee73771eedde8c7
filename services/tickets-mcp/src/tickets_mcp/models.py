"""Tool inputs' vocabularies and tool results (pydantic models, returned as MCP structured output)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Status = Literal["open", "in_progress", "resolved", "closed"]
Priority = Literal["low", "normal", "high", "urgent"]


class Comment(BaseModel):
    """A comment added through update_ticket."""

    text: str
    by_client: str = Field(description="OAuth client that added it (from its access token)")
    created_at: str


class TicketSummary(BaseModel):
    """A ticket as listed."""

    id: str = Field(examples=["tkt_0001"])
    customer_id: str = Field(examples=["cus_001"])
    title: str
    status: Status
    priority: Priority
    updated_at: str


class Ticket(TicketSummary):
    """A ticket in full, with its provenance."""

    description: str
    created_by_client: str = Field(
        description="Identity: the OAuth client_id of the token that created the ticket (verified)."
    )
    requested_by: str | None = Field(
        description="Data, not identity: the end user the client says it acted for (NOT authenticated)."
    )
    created_at: str
    comments: list[Comment]


class TicketList(BaseModel):
    """The result of list_tickets."""

    tickets: list[TicketSummary]
    count: int
