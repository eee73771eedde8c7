"""The auth-server's durable schema (SQLAlchemy Core): one definition for SQLite and PostgreSQL.

What a second replica must see lives here; counters, limits and caches do not (limits.py, quotas.py, cimd.py).
Tokens and codes are kept by SHA-256 digest only, so the database holds nothing presentable. Times are
Unix seconds (float). Scope lists are space-separated. `seq` (autoincrement) orders rows by creation for
the eviction policy (owned_rows.py); `rank` is that policy's worth of a row (0: cheapest). The Alembic
revisions in migrations/versions create exactly these tables; a change here needs a new revision.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Integer, MetaData, String, Table, Text

metadata = MetaData()

# Dynamically registered clients (RFC 7591). Configured clients stay in the config file.
registered_clients = Table(
    "registered_clients",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(200), nullable=False, unique=True),
    Column("owner", String(100), nullable=False, index=True),  # the registering address (quotas.owner_of_address)
    Column("rank", Integer, nullable=False, default=0),  # 1 once it obtained a token
    Column("registered_at", Float, nullable=False),
    Column("client", Text, nullable=False),  # the Client as JSON (registrations.py)
)

# Sign-ins between /authorize and the consent decision.
pending_sign_ins = Table(
    "pending_sign_ins",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("owner", String(100), nullable=False, index=True),
    Column("rank", Integer, nullable=False, default=0),  # 1 once the user signed in
    Column("client_id", String(2048), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("redirect_uri_in_request", Boolean, nullable=False),
    Column("state", Text, nullable=True),
    Column("code_challenge", String(64), nullable=False),
    Column("resource", String(200), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
    Column("subject", String(200), nullable=True),
    Column("dpop_jkt", String(64), nullable=True),  # RFC 9449 §10: the key the code will be bound to
)

# Authorization codes: redeemed once (redeemed_at set by one conditional UPDATE), then remembered until
# `forget_at` so a replay revokes the refresh family the first redemption started.
authorization_codes = Table(
    "authorization_codes",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("client_id", String(2048), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("resource", String(200), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("redirect_uri_in_request", Boolean, nullable=False),
    Column("code_challenge", String(64), nullable=False),
    Column("dpop_jkt", String(64), nullable=True),  # RFC 9449 §10: only a proof by this key redeems it
    Column("expires_at", Float, nullable=False),
    Column("redeemed_at", Float, nullable=True),
    Column("replayed", Boolean, nullable=False, default=False),
    Column("family_id", String(64), nullable=True),
    Column("forget_at", Float, nullable=False, index=True),
)

# One row per user grant; every rotation of its refresh token stays in it. Revoked as a whole.
refresh_families = Table(
    "refresh_families",
    metadata,
    Column("family_id", String(64), primary_key=True),
    Column("client_id", String(2048), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
    Column("revoked_at", Float, nullable=True),
)

# Refresh tokens by digest. Rotation is one conditional UPDATE (used = false -> true): of two concurrent
# uses exactly one succeeds, the other is reuse (RFC 9700 §4.14.2) and revokes the family.
refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("family_id", String(64), nullable=False, index=True),
    Column("client_id", String(2048), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("resource", String(200), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
    Column("used", Boolean, nullable=False, default=False),
    Column("jkt", String(64), nullable=True),  # a public client's DPoP key (RFC 9449 §5)
)
