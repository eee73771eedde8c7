"""Ticket storage in tickets-mcp's database (SQLite by default, PostgreSQL with DATABASE_URL).

The tables are SQLAlchemy Core (`TICKETS`, `COMMENTS`), created and seeded with demo tickets for crm-api's
customers by the Alembic revisions in `tickets_mcp/migrations/versions`, so replicas share one database.
A database that cannot be reached raises `DatabaseUnavailableError` (the tools answer a ToolError).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from oauth_tokens.service_database import ServiceDatabase
from sqlalchemy import Column, ForeignKey, Integer, MetaData, Table, Text, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from tickets_mcp.models import Comment, Priority, Status, Ticket, TicketSummary

MIGRATIONS = "tickets_mcp:migrations"

_metadata = MetaData()
TICKETS = Table(
    "tickets",
    _metadata,
    Column("number", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("priority", Text, nullable=False),
    Column("created_by_client", Text, nullable=False),
    Column("requested_by", Text),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)
COMMENTS = Table(
    "comments",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_number", Integer, ForeignKey("tickets.number"), nullable=False),
    Column("text", Text, nullable=False),
    Column("by_client", Text, nullable=False),
    Column("created_at", Text, nullable=False),
)

_TICKET_ID = re.compile(r"^tkt_(\d{1,9})$")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def format_ticket_id(number: int) -> str:
    return f"tkt_{number:04d}"


def _summary(row: RowMapping) -> TicketSummary:
    return TicketSummary(
        id=format_ticket_id(row["number"]),
        customer_id=row["customer_id"],
        title=row["title"],
        status=row["status"],
        priority=row["priority"],
        updated_at=row["updated_at"],
    )


class TicketStore:
    """Tickets and their comments in tickets-mcp's database."""

    def __init__(self, database: ServiceDatabase) -> None:
        self.database = database

    async def find(self, customer_id: str | None, status: Status | None) -> list[TicketSummary]:
        """Tickets, newest first, optionally only one customer's and/or in one status."""
        statement = select(TICKETS)
        if customer_id is not None:
            statement = statement.where(TICKETS.c.customer_id == customer_id)
        if status is not None:
            statement = statement.where(TICKETS.c.status == status)
        async with self.database.transaction() as db:
            rows = (await db.execute(statement.order_by(TICKETS.c.number.desc()))).mappings().all()
        return [_summary(row) for row in rows]

    async def get(self, ticket_id: str) -> Ticket | None:
        match = _TICKET_ID.match(ticket_id)
        if match is None:
            return None
        async with self.database.transaction() as db:
            return await _load(db, int(match.group(1)))

    async def create(
        self,
        customer_id: str,
        title: str,
        description: str,
        priority: Priority,
        created_by_client: str,
        requested_by: str | None,
    ) -> Ticket:
        now = _now()
        values: dict[str, Any] = {
            "customer_id": customer_id,
            "title": title,
            "description": description,
            "status": "open",
            "priority": priority,
            "created_by_client": created_by_client,
            "requested_by": requested_by,
            "created_at": now,
            "updated_at": now,
        }
        async with self.database.transaction() as db:
            number = (await db.execute(insert(TICKETS).values(**values).returning(TICKETS.c.number))).scalar_one()
            ticket = await _load(db, number)
        if ticket is None:
            raise RuntimeError("a ticket just created could not be read back")
        return ticket

    async def update(
        self,
        ticket_id: str,
        *,
        status: Status | None,
        priority: Priority | None,
        comment: str | None,
        by_client: str,
    ) -> Ticket | None:
        """Apply the given changes (None = unchanged); None if there is no such ticket."""
        match = _TICKET_ID.match(ticket_id)
        if match is None:
            return None
        number = int(match.group(1))
        now = _now()
        changes: dict[str, str] = {"updated_at": now}
        if status is not None:
            changes["status"] = status
        if priority is not None:
            changes["priority"] = priority
        statement = update(TICKETS).where(TICKETS.c.number == number).values(**changes)
        async with self.database.transaction() as db:
            if (await db.execute(statement)).rowcount == 0:
                return None
            if comment is not None:
                await db.execute(
                    insert(COMMENTS).values(ticket_number=number, text=comment, by_client=by_client, created_at=now)
                )
            return await _load(db, number)


async def _load(db: AsyncConnection, number: int) -> Ticket | None:
    row = (await db.execute(select(TICKETS).where(TICKETS.c.number == number))).mappings().first()
    if row is None:
        return None
    comments = (
        await db.execute(
            select(COMMENTS.c.text, COMMENTS.c.by_client, COMMENTS.c.created_at)
            .where(COMMENTS.c.ticket_number == number)
            .order_by(COMMENTS.c.id)
        )
    ).mappings()
    return Ticket(
        **_summary(row).model_dump(),
        description=row["description"],
        created_by_client=row["created_by_client"],
        requested_by=row["requested_by"],
        created_at=row["created_at"],
        comments=[Comment(**dict(comment)) for comment in comments],
    )
