"""The API's request and response bodies (pydantic models, so they document themselves in OpenAPI)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Tier = Literal["bronze", "silver", "gold", "platinum"]


class Note(BaseModel):
    """A note on a customer, with who wrote it (from the access token, not from the request body)."""

    id: int
    customer_id: str
    text: str
    author: str = Field(description="The token's `sub`: the user the note was written for")
    client_id: str | None = Field(description="The OAuth client that wrote it (the token's `client_id`)")
    actor: str | None = Field(
        default=None,
        description="Who acted for the author (the token's `act.sub`, set by a token exchange); "
        "null when the author's own token was used",
    )
    created_at: str = Field(description="UTC, ISO 8601")


class CustomerSummary(BaseModel):
    """A customer as listed by a search."""

    id: str = Field(examples=["cus_001"])
    name: str
    company: str
    city: str
    owner: str = Field(description="The sales rep who owns the account (a user's `sub`)")
    tier: Tier


class Customer(CustomerSummary):
    """A customer with contact details and notes."""

    email: str
    notes: list[Note]


class CustomerList(BaseModel):
    """Search results: only the caller's own customers."""

    customers: list[CustomerSummary]
    count: int


class NewNote(BaseModel):
    """The body of POST /customers/{id}/notes."""

    text: str = Field(min_length=1, max_length=2000, examples=["Called about the renewal; follow up Friday."])


class ErrorBody(BaseModel):
    """An OAuth-style error (RFC 6750) or a not-found error."""

    error: str
    error_description: str | None = None
