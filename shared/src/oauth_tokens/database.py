"""Durable state on SQLite (the embedded default) or PostgreSQL: one SQLAlchemy schema, one Alembic path.

Every service with durable state reads one setting, `DATABASE_URL`:

- empty: a SQLite file in the service's data directory (what `make up` uses; no server to install);
- `postgresql://user:password@host:port/db`: PostgreSQL, through asyncpg;
- `sqlite:///path`: another SQLite file.

`async_url` turns either into SQLAlchemy's async form, so services never switch on the dialect; a table
defined once with SQLAlchemy Core works on both. Each service keeps its Alembic revisions in its own
package (`<service>/migrations/versions`); `migrate` applies them with no `env.py` and no `alembic.ini`,
under a lock so N replicas starting together migrate once while the others wait: a PostgreSQL advisory
lock, or for SQLite an exclusive lock on a file beside the database. (Alembic keeps its context in a
module global, so one process runs one migration at a time; replicas are processes.)

SQLite is opened in WAL mode with a busy timeout, so several local processes (two replicas on one host)
can share a file. A server that cannot be reached surfaces as `DatabaseUnavailableError`; services answer
it with 503 and Retry-After (never 500) and recover when the server returns (the pool pre-pings).
"""

from __future__ import annotations

import fcntl
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import anyio.to_thread
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from oauth_tokens.errors import DatabaseUnavailableError, SettingsError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

T = TypeVar("T")

# How long a caller is told to wait after the database could not be reached (Retry-After, seconds).
RETRY_AFTER_SECONDS = DatabaseUnavailableError.retry_after_seconds
# A statement's and a connection attempt's deadline, so an unreachable server is a quick 503, not a hang.
CONNECT_TIMEOUT_SECONDS = 3.0


__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "RETRY_AFTER_SECONDS",
    "DatabaseUnavailableError",
    "async_url",
    "create_engine",
    "is_unavailable",
    "migrate",
    "ping",
    "unavailable_as_error",
]


def async_url(url: str, *, default_sqlite_file: Path | None = None) -> str:
    """`DATABASE_URL` in SQLAlchemy's async form; empty means SQLite at `default_sqlite_file`."""
    if not url:
        if default_sqlite_file is None:
            raise SettingsError("DATABASE_URL is empty and this service has no default SQLite file")
        default_sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{default_sqlite_file}"
    try:
        parsed = make_url(url)
    except Exception as error:  # the URL itself may hold a password: never echo it
        raise SettingsError("DATABASE_URL is not a database URL (postgresql://… or sqlite:///…)") from error
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    raise SettingsError(f"DATABASE_URL names an unsupported database ({backend}): use postgresql:// or sqlite:///")


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer; several processes share it
    cursor.execute("PRAGMA busy_timeout=5000")  # a writer waits for another's lock instead of failing
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str, *, pool_size: int = 5) -> AsyncEngine:
    """An async engine for an `async_url`; pre-ping so connections broken by a server restart are replaced."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": CONNECT_TIMEOUT_SECONDS})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=CONNECT_TIMEOUT_SECONDS,
        connect_args={"timeout": CONNECT_TIMEOUT_SECONDS, "command_timeout": CONNECT_TIMEOUT_SECONDS},
    )


# PostgreSQL SQLSTATEs of a server that is not (yet, or any more) serving: class 08 (connection exception) and
# 57P01-57P03 (shut down by an operator or a crash, or still starting up). asyncpg raises them as plain
# DBAPIError, not OperationalError.
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def is_unavailable(error: BaseException) -> bool:
    """True for errors that mean "the server is not there" rather than a bug or a constraint violation."""
    if isinstance(error, (OperationalError, InterfaceError)):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    sqlstate = getattr(getattr(error, "orig", None), "sqlstate", None)
    if isinstance(error, DBAPIError) and isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
        return True
    return isinstance(error, (OSError, TimeoutError))


async def unavailable_as_error(operation: Callable[[], Awaitable[T]]) -> T:
    """Run `operation`; a database that cannot be reached becomes `DatabaseUnavailableError`."""
    try:
        return await operation()
    except Exception as error:
        if is_unavailable(error):
            raise DatabaseUnavailableError("the database is unavailable") from error
        raise


async def ping(engine: AsyncEngine) -> bool:
    """Readiness: can a connection run `SELECT 1` now?"""
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:
        if is_unavailable(error):
            return False
        raise
    return True


def _alembic_scripts(script_location: str) -> tuple[Config, ScriptDirectory]:
    """Alembic's configuration and revision scripts for `script_location`.

    Alembic (with Mako and Pygments behind it) is imported here, as only migrating needs it, not by every
    importer of this module."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", script_location)
    return config, ScriptDirectory.from_config(config)


def _upgrade_to_head(connection: Connection, config: Config, script: ScriptDirectory) -> None:
    from alembic.runtime.environment import EnvironmentContext

    def upgrade(revision: Any, _context: Any) -> Any:
        return script._upgrade_revs("head", revision)

    with EnvironmentContext(config, script, fn=upgrade, destination_rev="head") as environment:
        # render_as_batch: SQLite cannot ALTER most things, so Alembic rebuilds the table there.
        environment.configure(connection=connection, render_as_batch=True)
        with environment.begin_transaction():
            environment.run_migrations()


async def migrate(engine: AsyncEngine, script_location: str) -> None:
    """Apply every Alembic revision in `script_location` (a `package:path` or a directory) up to head."""
    # Alembic is imported before the lock is taken: a replica waiting for the lock gives up after
    # CONNECT_TIMEOUT_SECONDS (asyncpg's command_timeout), so its holder must not spend that long importing.
    config, script = _alembic_scripts(script_location)
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            lock = zlib.crc32(script_location.encode()) & 0x7FFFFFFF
            await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock})
            try:
                await connection.run_sync(_upgrade_to_head, config, script)
                await connection.commit()
            finally:
                await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock})
                await connection.commit()
        else:
            lock_file = await anyio.to_thread.run_sync(_sqlite_migration_lock, engine.url.database)
            try:
                await connection.run_sync(_upgrade_to_head, config, script)
                await connection.commit()
            finally:
                if lock_file is not None:
                    lock_file.close()  # releases the lock


def _sqlite_migration_lock(database: str | None) -> IO[str] | None:
    """An exclusive lock on `<database>.migrate-lock`, waited for (in a worker thread)."""
    if not database or database == ":memory:":
        return None
    lock_file = open(f"{database}.migrate-lock", "a")  # noqa: SIM115 - closed by the caller to unlock
    fcntl.flock(lock_file, fcntl.LOCK_EX)
    return lock_file
