"""A service's own database, from its settings: DATABASE_URL, migrations, readiness, and outages as 503.

Every service with durable state uses it the same way (`oauth_tokens.database` is the plumbing underneath):

- `DatabaseSettings` is the settings mixin: `DATABASE_URL` (empty: the service's SQLite file in its data
  directory; `postgresql://…`: PostgreSQL; a secret, since it may carry a password) and
  `DATABASE_MIGRATE_ON_START` (default true; false when a separate job runs the migrations).
- `ServiceDatabase` owns the engine: `start()` migrates (unless told not to), `transaction()` runs a
  unit of work and turns "the server is not there" into `DatabaseUnavailableError`, `ready()` pings
  (or runs the service's `schema_probe`, so a replica is unready until its schema has been migrated).
- `install_database_outage(app)` answers `DatabaseUnavailableError` with 503 + Retry-After on any
  Starlette or FastAPI app, and `readiness_endpoint(database, checks)` is `/health/ready` (the database
  plus a service's other dependencies, named in `{"unavailable": [...]}` when one is down).
- `run_migrate_command(...)` is `python -m <package> migrate`: the migrations and nothing else.

The SQLite default file is created 0600 before SQLAlchemy opens it (`oauth_tokens.private_files`).
Needs the `database` extra and Starlette (which every service has, through the `fastapi` or `mcp` extra).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import anyio
from pydantic import SecretStr
from sqlalchemy import Executable
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from oauth_tokens.database import (
    RETRY_AFTER_SECONDS,
    DatabaseUnavailableError,
    async_url,
    create_engine,
    is_unavailable,
    migrate,
    ping,
)
from oauth_tokens.errors import SettingsError
from oauth_tokens.private_files import create_private_file
from oauth_tokens.settings import ServiceSettings, load_settings

__all__ = [
    "READY_PATH",
    "DatabaseSettings",
    "ServiceDatabase",
    "database_unavailable_response",
    "install_database_outage",
    "readiness_endpoint",
    "run_migrate_command",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")
SettingsT = TypeVar("SettingsT", bound="DatabaseSettings")

READY_PATH = "/health/ready"
UNAVAILABLE_DESCRIPTION = "The service's database cannot be reached right now; retry later"
NOT_READY_DESCRIPTION = "A dependency of the service cannot be reached right now; retry later"


class DatabaseSettings(ServiceSettings):
    """Mixin for a service with durable state: DATABASE_URL and DATABASE_MIGRATE_ON_START."""

    # Empty: the service's SQLite file in its data directory. postgresql://user:password@host:port/db: PostgreSQL.
    database_url: SecretStr = SecretStr("")
    # false: start-up does not migrate (run `python -m <package> migrate` first, e.g. as a Kubernetes Job).
    database_migrate_on_start: bool = True


class ServiceDatabase:
    """One service's engine and migrations; `transaction()` is the only way its stores reach the database."""

    def __init__(
        self,
        url: SecretStr | str,
        *,
        default_sqlite_file: Path,
        migrations: str,
        schema_probe: Executable | None = None,
    ) -> None:
        plain = url.get_secret_value() if isinstance(url, SecretStr) else url
        if not plain:
            create_private_file(default_sqlite_file)  # 0600 before SQLite creates it with the umask's mode
        self.engine: AsyncEngine = create_engine(async_url(plain, default_sqlite_file=default_sqlite_file))
        self.migrations = migrations
        # A statement that fails until the schema exists: readiness runs it instead of a bare ping.
        self.schema_probe = schema_probe
        self.description = (
            f"SQLite {default_sqlite_file}" if not plain else f"{self.engine.dialect.name} (DATABASE_URL)"
        )

    @classmethod
    def from_settings(
        cls,
        settings: DatabaseSettings,
        *,
        default_sqlite_file: Path,
        migrations: str,
        schema_probe: Executable | None = None,
    ) -> ServiceDatabase:
        return cls(
            settings.database_url,
            default_sqlite_file=default_sqlite_file,
            migrations=migrations,
            schema_probe=schema_probe,
        )

    async def migrate(self) -> None:
        """Apply the service's Alembic revisions up to head (replicas starting together migrate once).

        An unreachable database is DatabaseUnavailableError naming the setting (never its value, nor the
        driver's message, which may quote the URL: hence `from None`).
        """
        try:
            await migrate(self.engine, self.migrations)
        except Exception as error:
            if is_unavailable(error):
                raise DatabaseUnavailableError("DATABASE_URL: the database cannot be reached to migrate it") from None
            raise

    async def start(self, *, migrate_on_start: bool) -> None:
        """At start-up: migrate, or with DATABASE_MIGRATE_ON_START=false leave that to the migrate command."""
        if migrate_on_start:
            try:
                await self.migrate()
            except DatabaseUnavailableError:
                # Exit (the orchestrator restarts us) rather than serve without a schema; no URL in the line.
                logger.error("Database %s cannot be reached at start-up: not migrated, not starting", self.description)
                raise
            logger.info("Database migrated: %s", self.description)
        else:
            logger.info("Database: %s; not migrated at start (DATABASE_MIGRATE_ON_START=false)", self.description)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed on success; an unreachable server is DatabaseUnavailableError."""
        try:
            async with self.engine.begin() as connection:
                yield connection
        except Exception as error:
            if is_unavailable(error):
                raise DatabaseUnavailableError("the database is unavailable") from error
            raise

    async def run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """`work(connection)` in one transaction."""
        async with self.transaction() as connection:
            return await work(connection)

    async def ready(self) -> bool:
        """Readiness: can the database run a statement now (the schema probe, if any)? Never raises for an outage."""
        if self.schema_probe is None:
            return await ping(self.engine)
        try:
            async with self.transaction() as connection:
                await connection.execute(self.schema_probe)
        except DatabaseUnavailableError:  # unreachable, or (OperationalError) no such table yet
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()


def database_unavailable_response(
    description: str = UNAVAILABLE_DESCRIPTION, *, unavailable: list[str] | None = None
) -> JSONResponse:
    """503 temporarily_unavailable with Retry-After: what an HTTP route answers during a database outage.

    `unavailable`: the dependencies readiness found down (the body's `unavailable` list).
    """
    body: dict[str, object] = {"error": "temporarily_unavailable", "error_description": description}
    if unavailable is not None:
        body["unavailable"] = unavailable
    return JSONResponse(
        body,
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"},
    )


async def _unavailable(_: Request, __: Exception) -> Response:
    return database_unavailable_response()


def install_database_outage(app: Starlette) -> None:
    """Any route of `app` that raises DatabaseUnavailableError answers 503 + Retry-After, not 500."""
    app.add_exception_handler(DatabaseUnavailableError, _unavailable)


def readiness_endpoint(
    database: ServiceDatabase, checks: Mapping[str, Callable[[], Awaitable[bool]]] | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """`/health/ready`: 200 while the database (and every other check) answers, else 503 + Retry-After
    whose body lists what is down: `{"unavailable": ["database", ...]}` (the names are `checks`' keys)."""

    async def ready(_: Request) -> Response:
        problems = [] if await database.ready() else ["database"]
        for name, check in (checks or {}).items():
            if not await check():
                problems.append(name)
        if not problems:
            return JSONResponse({"status": "ready"}, headers={"Cache-Control": "no-store"})
        description = UNAVAILABLE_DESCRIPTION if "database" in problems else NOT_READY_DESCRIPTION
        return database_unavailable_response(description, unavailable=problems)

    return ready


def run_migrate_command(
    name: str, settings_class: type[SettingsT], database: Callable[[SettingsT], ServiceDatabase]
) -> None:
    """`python -m <package> migrate`: load the settings, apply the migrations, exit (1 if unreachable)."""
    try:
        settings = load_settings(settings_class)
    except SettingsError as error:
        sys.exit(f"{name}: {error}")

    async def run() -> None:
        service_database = database(settings)
        try:
            await service_database.migrate()
        finally:
            await service_database.dispose()
        print(f"{name}: database migrated ({service_database.description})")

    try:
        anyio.run(run)
    except DatabaseUnavailableError:
        sys.exit(f"{name}: the database (DATABASE_URL) cannot be reached; nothing was migrated")
