"""tickets-mcp's tables: tickets and their comments (a SQLite file from before migrations keeps its own)."""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "tickets" not in existing:
        op.create_table(
            "tickets",
            sa.Column("number", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("customer_id", sa.Text, nullable=False),
            sa.Column("title", sa.Text, nullable=False),
            sa.Column("description", sa.Text, nullable=False),
            sa.Column("status", sa.Text, nullable=False),
            sa.Column("priority", sa.Text, nullable=False),
            sa.Column("created_by_client", sa.Text, nullable=False),
            sa.Column("requested_by", sa.Text),
            sa.Column("created_at", sa.Text, nullable=False),
            sa.Column("updated_at", sa.Text, nullable=False),
        )
        op.create_index("tickets_customer", "tickets", ["customer_id"])
    if "comments" not in existing:
        op.create_table(
            "comments",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("ticket_number", sa.Integer, sa.ForeignKey("tickets.number"), nullable=False),
            sa.Column("text", sa.Text, nullable=False),
            sa.Column("by_client", sa.Text, nullable=False),
            sa.Column("created_at", sa.Text, nullable=False),
        )
