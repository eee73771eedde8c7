"""oauth_tokens.database on a real SQLite file and a real PostgreSQL: URLs, migrations, outages."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from oauth_tokens.database import (
    DatabaseUnavailableError,
    async_url,
    create_engine,
    migrate,
    ping,
    unavailable_as_error,
)
from oauth_tokens.errors import SettingsError
from sqlalchemy import text

from tests.support.servers import postgres_server

MIGRATIONS = str(Path(__file__).parent / "sample_migrations")


def test_an_empty_url_is_the_services_sqlite_file(tmp_path: Path) -> None:
    assert async_url("", default_sqlite_file=tmp_path / "x.db") == f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"


def test_postgresql_urls_get_the_async_driver_and_keep_the_password() -> None:
    assert async_url("postgresql://u:p%40ss@h:5/db") == "postgresql+asyncpg://u:p%40ss@h:5/db"


@pytest.mark.parametrize("url", ["mysql://u:secret@h/db", "not a url secret"])
def test_an_unsupported_or_broken_url_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(SettingsError) as refused:
        async_url(url)
    assert "secret" not in str(refused.value)


async def _migrate_twice_and_write(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        await migrate(engine, MIGRATIONS)
        await migrate(engine, MIGRATIONS)  # a replica starting later: nothing left to do
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO notes (body) VALUES ('hello')"))
        async with engine.connect() as connection:
            return [row[0] for row in await connection.execute(text("SELECT body FROM notes"))]
    finally:
        await engine.dispose()


def _migrate_in_two_processes_at_once(database_url: str) -> None:
    """Two replicas starting together: both migrate, the lock makes one wait, the schema is made once."""
    program = (
        "import asyncio, sys\n"
        "from oauth_tokens.database import async_url, create_engine, migrate\n"
        "async def main():\n"
        "    engine = create_engine(async_url(sys.argv[1]))\n"
        "    await migrate(engine, sys.argv[2])\n"
        "    await engine.dispose()\n"
        "asyncio.run(main())\n"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", program, database_url, MIGRATIONS], stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr.decode()


def test_migrations_apply_once_on_sqlite(tmp_path: Path) -> None:
    _migrate_in_two_processes_at_once(f"sqlite:///{tmp_path / 'state.db'}")
    url = async_url("", default_sqlite_file=tmp_path / "state.db")
    assert asyncio.run(_migrate_twice_and_write(url)) == ["hello"]


def test_migrations_apply_once_on_postgresql_and_an_outage_is_unavailable_not_a_crash() -> None:
    with postgres_server() as server:
        url = async_url(server.url)
        _migrate_in_two_processes_at_once(server.url)
        assert asyncio.run(_migrate_twice_and_write(url)) == ["hello"]
        server.stop()

        async def while_down() -> tuple[bool, BaseException | None]:
            engine = create_engine(url)
            try:

                async def read() -> object:
                    async with engine.connect() as connection:
                        return await connection.execute(text("SELECT 1"))

                try:
                    await unavailable_as_error(read)
                except DatabaseUnavailableError as error:
                    return await ping(engine), error
                return await ping(engine), None
            finally:
                await engine.dispose()

        ready, error = asyncio.run(while_down())
        assert not ready
        assert isinstance(error, DatabaseUnavailableError)
