"""crm-mcp's durable state: the encrypted token vault (token_grants) and pending connect flows (connect_requests).

A SQLite file made before migrations existed already has both tables: token_grants then only gains its
`version` column (its grants are kept), and connect_requests, whose flows live ten minutes, is remade.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "token_grants" in existing:
        with op.batch_alter_table("token_grants") as table:
            table.add_column(sa.Column("version", sa.Integer, nullable=False, server_default="0"))
    else:
        op.create_table(
            "token_grants",
            sa.Column("subject", sa.Text, primary_key=True),
            sa.Column("issuer", sa.Text, primary_key=True),
            sa.Column("key_id", sa.Text, nullable=False),
            sa.Column("nonce", sa.LargeBinary, nullable=False),
            sa.Column("ciphertext", sa.LargeBinary, nullable=False),
            sa.Column("updated_at", sa.Float, nullable=False),
            sa.Column("lease_until", sa.Float, nullable=False, server_default="0"),
            sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        )
    if "connect_requests" in existing:
        op.drop_table("connect_requests")
    op.create_table(
        "connect_requests",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("browser", sa.Text),
        sa.Column("state", sa.Text, nullable=False, server_default=""),
        sa.Column("verifier", sa.Text, nullable=False, server_default=""),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("connect_requests_browser", "connect_requests", ["browser"])
