"""Customer storage in crm-api's database (SQLite by default, PostgreSQL with DATABASE_URL); every read is
scoped to an owner.

The tables are SQLAlchemy Core (`CUSTOMERS`, `NOTES`), created and seeded with the demo data by the
Alembic revisions in `crm_api/migrations/versions`, so several crm-api replicas share one database and a
note written through one is read through any other. A database that cannot be reached raises
`DatabaseUnavailableError` (the app answers 503 with Retry-After).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from oauth_tokens.service_database import ServiceDatabase
from sqlalchemy import Column, ForeignKey, Integer, MetaData, Table, Text, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_api.models import Customer, CustomerSummary

MIGRATIONS = "crm_api:migrations"

_metadata = MetaData()
CUSTOMERS = Table(
    "customers",
    _metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("company", Text, nullable=False),
    Column("city", Text, nullable=False),
    Column("owner", Text, nullable=False),
    Column("tier", Text, nullable=False),
    Column("email", Text, nullable=False),
)
NOTES = Table(
    "notes",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", Text, ForeignKey("customers.id"), nullable=False),
    Column("text", Text, nullable=False),
    Column("author", Text, nullable=False),
    Column("client_id", Text),
    Column("actor", Text),
    Column("created_at", Text, nullable=False),
)
_SUMMARY_COLUMNS = tuple(CUSTOMERS.c[name] for name in ("id", "name", "company", "city", "owner", "tier"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class CustomerStore:
    """Customers and notes in crm-api's database."""

    def __init__(self, database: ServiceDatabase) -> None:
        self.database = database

    async def search(self, owner: str, query: str | None) -> list[CustomerSummary]:
        """The owner's customers whose name, company or city contains `query` (case-insensitive, literally)."""
        statement = select(*_SUMMARY_COLUMNS).where(CUSTOMERS.c.owner == owner)
        if query:
            statement = statement.where(
                or_(*(CUSTOMERS.c[name].icontains(query, autoescape=True) for name in ("name", "company", "city")))
            )
        async with self.database.transaction() as db:
            rows = (await db.execute(statement.order_by(CUSTOMERS.c.id))).mappings().all()
        return [CustomerSummary.model_validate(dict(row)) for row in rows]

    async def get(self, owner: str, customer_id: str) -> Customer | None:
        """The customer if it exists AND belongs to `owner`; None otherwise (the caller cannot tell which)."""
        async with self.database.transaction() as db:
            return await _owned_customer(db, owner, customer_id)

    async def add_note(
        self, owner: str, customer_id: str, text: str, client_id: str | None, actor: str | None = None
    ) -> Customer | None:
        """Append a note to the owner's customer and return the customer; None if the owner has no such customer.

        `actor` is who wrote it for the owner (a token exchange's `act.sub`); None when the owner's own token did.
        """
        async with self.database.transaction() as db:
            owned = select(CUSTOMERS.c.id).where(CUSTOMERS.c.id == customer_id, CUSTOMERS.c.owner == owner)
            if (await db.execute(owned)).first() is None:
                return None
            await db.execute(
                insert(NOTES).values(
                    customer_id=customer_id,
                    text=text,
                    author=owner,
                    client_id=client_id,
                    actor=actor,
                    created_at=_now(),
                )
            )
            return await _owned_customer(db, owner, customer_id)


async def _owned_customer(db: AsyncConnection, owner: str, customer_id: str) -> Customer | None:
    customer = (
        (await db.execute(select(CUSTOMERS).where(CUSTOMERS.c.id == customer_id, CUSTOMERS.c.owner == owner)))
        .mappings()
        .first()
    )
    if customer is None:
        return None
    notes = (
        (await db.execute(select(NOTES).where(NOTES.c.customer_id == customer_id).order_by(NOTES.c.id)))
        .mappings()
        .all()
    )
    values: dict[str, Any] = {**customer, "notes": [dict(note) for note in notes]}
    return Customer.model_validate(values)
