"""Store tests on both databases a service supports: its SQLite file and a real PostgreSQL.

Import `postgres` and `database_url` into a test module: `database_url` is parametrised over
"sqlite" (a file in the test's tmp_path) and "postgresql" (a fresh database, per test, in one throwaway
PostgreSQL server per test module, started only when a PostgreSQL case runs; tests/support/servers.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from devkit.local_servers import LocalServer
from oauth_tokens.database import is_unavailable
from oauth_tokens.service_database import ServiceDatabase
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.servers import postgres_server

START_SECONDS = 30.0


@pytest.fixture(scope="module")
def postgres() -> Iterator[LocalServer]:
    with postgres_server() as server:
        yield server


async def create_postgres_database(server: LocalServer) -> str:
    """A new, empty database in `server`; its postgresql:// URL (what DATABASE_URL would say)."""
    name = f"test_{secrets.token_hex(6)}"
    url = make_url(server.url)
    engine = create_async_engine(url.set(drivername="postgresql+asyncpg"), isolation_level="AUTOCOMMIT")
    try:
        # The server's port opens a moment before it accepts connections ("the database system is starting up").
        with anyio.fail_after(START_SECONDS):
            while True:
                try:
                    async with engine.connect() as connection:
                        await connection.execute(text(f'CREATE DATABASE "{name}"'))
                    break
                except DBAPIError as error:
                    if not is_unavailable(error):
                        raise
                    await anyio.sleep(0.1)
    finally:
        await engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def new_postgres_database(server: LocalServer) -> str:
    """`create_postgres_database` for synchronous code (fixtures)."""
    return anyio.run(create_postgres_database, server)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """DATABASE_URL for one test: a SQLite file of its own, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite3'}"
    return new_postgres_database(request.getfixturevalue("postgres"))


async def ready_within(database: ServiceDatabase, seconds: float = 5.0) -> bool:
    """Whether `database` answers within `seconds` (the recovery the shared-state contract promises after a
    server comes back: PostgreSQL accepts connections a moment after its port opens)."""
    with anyio.move_on_after(seconds):
        while True:
            if await database.ready():
                return True
            await anyio.sleep(0.1)
    return False
