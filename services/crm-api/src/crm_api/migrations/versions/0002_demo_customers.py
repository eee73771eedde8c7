"""The demo data: alice owns cus_001..cus_004, bob cus_005..cus_008 (tickets-mcp seeds tickets for these ids).

Seeded by a migration, so replicas starting together seed once (migrations run under a lock), and only
into an empty database (one kept from before migrations keeps its own customers).
"""

import logging
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

logger = logging.getLogger("crm_api")

CUSTOMERS = (
    ("cus_001", "Greta Vogel", "Vogel Maschinenbau GmbH", "Berlin", "alice", "gold", "greta@vogel.example"),
    ("cus_002", "Camille Laurent", "Laurent & Fils", "Paris", "alice", "silver", "camille@laurent.example"),
    ("cus_003", "Oliver Hughes", "Hughes Logistics Ltd", "London", "alice", "platinum", "oliver@hughes.example"),
    ("cus_004", "Yuki Tanaka", "Tanaka Robotics KK", "Tokyo", "alice", "bronze", "yuki@tanaka.example"),
    ("cus_005", "Maya Johnson", "Hudson Analytics Inc", "New York", "bob", "gold", "maya@hudson.example"),
    ("cus_006", "Liam O'Connor", "Harbour Bridge Traders", "Sydney", "bob", "silver", "liam@harbour.example"),
    ("cus_007", "Sophie Tremblay", "Maple Leaf Foods", "Toronto", "bob", "bronze", "sophie@maple.example"),
    ("cus_008", "Javier García", "García Energía SA", "Madrid", "bob", "platinum", "javier@garcia.example"),
)
NOTES = (
    ("cus_001", "Renewal due next quarter; wants a volume discount.", "alice"),
    ("cus_003", "Escalated a late shipment in May; resolved.", "alice"),
    ("cus_005", "Interested in the analytics add-on.", "bob"),
    ("cus_008", "Prefers calls in the morning (CET).", "bob"),
)


def upgrade() -> None:
    customers = sa.table(
        "customers", *(sa.column(name) for name in ("id", "name", "company", "city", "owner", "tier", "email"))
    )
    notes = sa.table("notes", *(sa.column(name) for name in ("customer_id", "text", "author", "created_at")))
    if op.get_bind().execute(sa.select(sa.func.count()).select_from(customers)).scalar_one():
        return
    columns = ("id", "name", "company", "city", "owner", "tier", "email")
    op.bulk_insert(customers, [dict(zip(columns, row, strict=True)) for row in CUSTOMERS])
    now = datetime.now(UTC).isoformat(timespec="seconds")
    op.bulk_insert(
        notes, [{"customer_id": c, "text": text, "author": author, "created_at": now} for c, text, author in NOTES]
    )
    logger.info("Database seeded with demo customers")
