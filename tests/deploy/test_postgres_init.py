"""The init script of the scaled compose profile (and the local overlay's, which creates the same databases)
runs on a real PostgreSQL, and each service's DATABASE_URL, in the shape scripts.k8s_secrets and compose
build it, reaches its own database through the services' own engine (oauth_tokens.database)."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit, urlunsplit

from oauth_tokens.database import async_url, create_engine, ping
from sqlalchemy import text

from scripts.k8s_manifests import ROOT
from tests.support.servers import postgres_server


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def run_init_script_then_ping_each(url: str, statements: list[str], databases: list[str]) -> list[bool]:
    admin = create_engine(async_url(url))
    try:
        async with admin.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")  # CREATE DATABASE
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await admin.dispose()
    reachable = []
    for database in databases:
        engine = create_engine(async_url(with_database(url, database)))
        try:
            reachable.append(await ping(engine))
            async with engine.connect() as connection:
                assert (await connection.execute(text("SELECT current_database()"))).scalar() == database
        finally:
            await engine.dispose()
    return reachable


def test_the_init_script_creates_one_reachable_database_per_service() -> None:
    sql = (ROOT / "deploy" / "compose" / "postgres-init.sql").read_text()
    statements = [line.strip() for line in sql.splitlines() if line.startswith("CREATE DATABASE")]
    databases = [re.sub(r"CREATE DATABASE (\w+);", r"\1", statement) for statement in statements]
    assert len(databases) == 5
    with postgres_server() as server:
        assert asyncio.run(run_init_script_then_ping_each(server.url, statements, databases)) == [True] * 5
