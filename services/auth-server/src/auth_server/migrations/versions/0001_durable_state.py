"""The auth-server's durable state: registered clients, sign-ins, codes, refresh tokens and their families.

A frozen copy of tables.py as of this revision (later revisions alter it; they never edit this one).
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def _seq() -> sa.Column[int]:
    return sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "registered_clients",
        _seq(),
        sa.Column("client_id", sa.String(200), nullable=False, unique=True),
        sa.Column("owner", sa.String(100), nullable=False, index=True),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("registered_at", sa.Float, nullable=False),
        sa.Column("client", sa.Text, nullable=False),
    )
    op.create_table(
        "pending_sign_ins",
        _seq(),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("owner", sa.String(100), nullable=False, index=True),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("client_id", sa.String(2048), nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("redirect_uri_in_request", sa.Boolean, nullable=False),
        sa.Column("state", sa.Text, nullable=True),
        sa.Column("code_challenge", sa.String(64), nullable=False),
        sa.Column("resource", sa.String(200), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False, index=True),
        sa.Column("subject", sa.String(200), nullable=True),
        sa.Column("dpop_jkt", sa.String(64), nullable=True),
    )
    op.create_table(
        "authorization_codes",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(2048), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("resource", sa.String(200), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("redirect_uri_in_request", sa.Boolean, nullable=False),
        sa.Column("code_challenge", sa.String(64), nullable=False),
        sa.Column("dpop_jkt", sa.String(64), nullable=True),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("redeemed_at", sa.Float, nullable=True),
        sa.Column("replayed", sa.Boolean, nullable=False),
        sa.Column("family_id", sa.String(64), nullable=True),
        sa.Column("forget_at", sa.Float, nullable=False, index=True),
    )
    op.create_table(
        "refresh_families",
        sa.Column("family_id", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(2048), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False, index=True),
        sa.Column("revoked_at", sa.Float, nullable=True),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("family_id", sa.String(64), nullable=False, index=True),
        sa.Column("client_id", sa.String(2048), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("resource", sa.String(200), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False, index=True),
        sa.Column("used", sa.Boolean, nullable=False),
        sa.Column("jkt", sa.String(64), nullable=True),
    )
