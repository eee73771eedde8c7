"""tickets-mcp's store on a real SQLite file and a real PostgreSQL: migrated and seeded once by two replicas
starting together, a ticket created through one read and updated through the other, and an outage."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from devkit.local_servers import LocalServer
from oauth_tokens.database import DatabaseUnavailableError
from oauth_tokens.service_database import ServiceDatabase
from tickets_mcp.store import MIGRATIONS, TicketStore

from tests.support.databases import create_postgres_database, database_url, postgres, ready_within

__all__ = ["database_url", "postgres"]  # fixtures

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def store_at(url: str) -> AsyncIterator[TicketStore]:
    """A tickets-mcp replica's store on `url`, migrated as at its start-up."""
    database = ServiceDatabase(url, default_sqlite_file=Path("unused"), migrations=MIGRATIONS)
    try:
        await database.start(migrate_on_start=True)
        yield TicketStore(database)
    finally:
        await database.dispose()


async def test_two_replicas_share_tickets_seeded_once(database_url: str) -> None:
    async with store_at(database_url) as replica_a, store_at(database_url) as replica_b:
        assert len(await replica_b.find(None, None)) == 6  # the demo tickets, once
        created = await replica_a.create("cus_002", "Quote request", "Needs a quote by Friday", "high", "crm-mcp", None)
        assert await replica_b.find("cus_002", "open") == [
            summary for summary in await replica_a.find(None, None) if summary.id == created.id
        ]
        updated = await replica_b.update(
            created.id, status="in_progress", priority=None, comment="On it", by_client="crm-mcp"
        )
        read_back = await replica_a.get(created.id)
        assert await replica_a.update("tkt_9999", status="closed", priority=None, comment=None, by_client="x") is None
    assert updated is not None
    assert read_back == updated
    assert (updated.status, updated.priority) == ("in_progress", "high")
    assert [comment.text for comment in updated.comments] == ["On it"]


async def test_postgresql_down_is_unavailable_then_recovers(postgres: LocalServer) -> None:
    url = await create_postgres_database(postgres)
    async with store_at(url) as store:
        postgres.stop(signal.SIGINT)  # fast shutdown: pooled connections are cut, as in a crash
        try:
            with pytest.raises(DatabaseUnavailableError):
                await store.find(None, None)
        finally:
            postgres.start()
        assert await ready_within(store.database)
        assert len(await store.find(None, None)) == 6
