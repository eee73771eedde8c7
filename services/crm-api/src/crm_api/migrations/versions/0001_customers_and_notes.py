"""crm-api's tables: customers (each owned by one rep) and their notes.

A SQLite file made before migrations existed already has them: they are kept, and notes gains the
`actor` column if it predates it (its old notes have none).
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names())
    if "customers" not in existing:
        op.create_table(
            "customers",
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("name", sa.Text, nullable=False),
            sa.Column("company", sa.Text, nullable=False),
            sa.Column("city", sa.Text, nullable=False),
            sa.Column("owner", sa.Text, nullable=False),
            sa.Column("tier", sa.Text, nullable=False),
            sa.Column("email", sa.Text, nullable=False),
        )
        op.create_index("customers_owner", "customers", ["owner"])
    if "notes" not in existing:
        op.create_table(
            "notes",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("customer_id", sa.Text, sa.ForeignKey("customers.id"), nullable=False),
            sa.Column("text", sa.Text, nullable=False),
            sa.Column("author", sa.Text, nullable=False),
            sa.Column("client_id", sa.Text),
            sa.Column("actor", sa.Text),
            sa.Column("created_at", sa.Text, nullable=False),
        )
        op.create_index("notes_customer", "notes", ["customer_id"])
    elif "actor" not in {column["name"] for column in inspector.get_columns("notes")}:
        op.add_column("notes", sa.Column("actor", sa.Text))
