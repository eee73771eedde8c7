"""The demo tickets, for crm-api's customers (alice owns cus_001..cus_004, bob cus_005..cus_008).

Seeded by a migration, so replicas starting together seed once, and only into an empty database.
"""

import logging
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

logger = logging.getLogger("tickets_mcp")

SEED_CLIENT = "seed-data"
# (customer, title, description, status, priority, requested by)
TICKETS = (
    (
        "cus_001",
        "Invoice shows the wrong VAT rate",
        "March invoice charged 19% on exempt items.",
        "open",
        "high",
        "alice",
    ),
    (
        "cus_003",
        "Tracking page times out",
        "Shipment tracking has been timing out since Monday.",
        "in_progress",
        "urgent",
        "alice",
    ),
    (
        "cus_004",
        "Robot arm firmware update",
        "Asks for the 2.4 firmware changelog before updating.",
        "open",
        "normal",
        "alice",
    ),
    (
        "cus_005",
        "Add the analytics add-on",
        "Wants the add-on from next month's billing cycle.",
        "open",
        "normal",
        "bob",
    ),
    (
        "cus_006",
        "Password reset emails missing",
        "Reset emails land in no inbox; SPF issue fixed.",
        "resolved",
        "high",
        "bob",
    ),
    ("cus_008", "Invoices in Spanish", "Requests Spanish-language invoices from now on.", "open", "low", "bob"),
)
_COLUMNS = ("customer_id", "title", "description", "status", "priority", "requested_by")


def upgrade() -> None:
    tickets = sa.table(
        "tickets", *(sa.column(name) for name in (*_COLUMNS, "created_by_client", "created_at", "updated_at"))
    )
    if op.get_bind().execute(sa.select(sa.func.count()).select_from(tickets)).scalar_one():
        return
    now = datetime.now(UTC).isoformat(timespec="seconds")
    rows = [
        {
            **dict(zip(_COLUMNS, ticket, strict=True)),
            "created_by_client": SEED_CLIENT,
            "created_at": now,
            "updated_at": now,
        }
        for ticket in TICKETS
    ]
    op.bulk_insert(tickets, rows)
    logger.info("Database seeded with demo tickets")
