"""The auth-server's database: its engine from DATABASE_URL, migrations, and transactions that turn an
unreachable server into `DatabaseUnavailableError` (answered 503 + Retry-After by app.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from oauth_tokens.database import DatabaseUnavailableError, async_url, create_engine, is_unavailable, migrate
from oauth_tokens.private_files import create_private_file
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from auth_server.settings import AuthServerSettings
from auth_server.tables import refresh_families

MIGRATIONS = "auth_server:migrations"
# Expired rows are deleted at most this often per store and process (a write path pays for it).
SWEEP_INTERVAL_SECONDS = 60.0


def engine_for(settings: AuthServerSettings) -> AsyncEngine:
    """The engine DATABASE_URL names (empty: SQLite at <AUTH_SERVER_DATA_DIR>/auth-server.db)."""
    url = settings.database_url.get_secret_value()
    if not url:  # 0600 before SQLite creates it (its -wal and -shm follow): sign-ins name users and clients
        create_private_file(settings.database_file)
    return create_engine(async_url(url, default_sqlite_file=settings.database_file))


async def migrate_schema(engine: AsyncEngine) -> None:
    """Apply the auth-server's Alembic revisions (under the cross-replica lock of oauth_tokens.database).

    An unreachable database is DatabaseUnavailableError naming the setting (never its value).
    """
    try:
        await migrate(engine, MIGRATIONS)
    except Exception as error:
        if is_unavailable(error):
            raise DatabaseUnavailableError("DATABASE_URL: the database cannot be reached to migrate it") from None
        raise


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One transaction; committed if the block ends normally. An unreachable database is DatabaseUnavailableError."""
    try:
        async with engine.begin() as connection:
            yield connection
    except DatabaseUnavailableError:
        raise
    except Exception as error:
        if is_unavailable(error):
            raise DatabaseUnavailableError("the database is unavailable") from error
        raise


async def schema_ready(engine: AsyncEngine) -> bool:
    """Readiness: the database answers and holds the schema (a replica started with
    DATABASE_MIGRATE_ON_START=false stays unready until `python -m auth_server migrate` has run)."""
    try:
        async with transaction(engine) as connection:
            await connection.execute(select(refresh_families.c.family_id).limit(1))
    except DatabaseUnavailableError:  # unreachable, or (OperationalError) no such table yet
        return False
    return True


class Sweeper:
    """Says when a store should delete its expired rows: at most once per SWEEP_INTERVAL_SECONDS."""

    def __init__(self) -> None:
        self._last = float("-inf")

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < SWEEP_INTERVAL_SECONDS:
            return False
        self._last = now
        return True
