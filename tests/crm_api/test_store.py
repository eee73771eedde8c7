"""crm-api's store on a real SQLite file and a real PostgreSQL: migrations, per-owner separation, replicas,
an outage; and a database from before migrations (SQLite) migrated in place."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from crm_api.store import MIGRATIONS, CustomerStore
from devkit.local_servers import LocalServer
from oauth_tokens.database import DatabaseUnavailableError
from oauth_tokens.service_database import ServiceDatabase

from tests.support.databases import create_postgres_database, database_url, postgres, ready_within

__all__ = ["database_url", "postgres"]  # fixtures

pytestmark = pytest.mark.anyio

# The notes table as crm-api created it before it recorded actors (a data/ left by an earlier `make up`).
_OLD_NOTES = """
CREATE TABLE customers (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, company TEXT NOT NULL, city TEXT NOT NULL,
    owner TEXT NOT NULL, tier TEXT NOT NULL, email TEXT NOT NULL
);
CREATE TABLE notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, customer_id TEXT NOT NULL REFERENCES customers (id),
    text TEXT NOT NULL, author TEXT NOT NULL, client_id TEXT, created_at TEXT NOT NULL
);
INSERT INTO customers VALUES ('cus_001', 'Greta Vogel', 'Vogel', 'Berlin', 'alice', 'gold', 'g@v.example');
INSERT INTO notes (customer_id, text, author, client_id, created_at)
    VALUES ('cus_001', 'written before the migration', 'alice', 'dyn-x', '2026-01-01T00:00:00+00:00');
"""


@asynccontextmanager
async def store_at(url: str, *, default_file: Path | None = None) -> AsyncIterator[CustomerStore]:
    """A crm-api replica's store on `url`, migrated as at its start-up."""
    database = ServiceDatabase(url, default_sqlite_file=default_file or Path("unused"), migrations=MIGRATIONS)
    try:
        await database.start(migrate_on_start=True)
        yield CustomerStore(database)
    finally:
        await database.dispose()


async def test_an_old_database_gains_the_actor_column_and_keeps_its_notes(tmp_path: Path) -> None:
    path = tmp_path / "crm.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(_OLD_NOTES)

    async with store_at("", default_file=path) as store:
        async with store_at("", default_file=path):  # migrating twice is harmless
            pass
        customer = await store.add_note("alice", "cus_001", "after", "crm-mcp-agent", actor="crm-mcp-agent")
        assert await store.search("bob", None) == []  # not reseeded: its own customers are kept
    assert customer is not None
    assert [(note.text, note.author, note.actor) for note in customer.notes] == [
        ("written before the migration", "alice", None),
        ("after", "alice", "crm-mcp-agent"),
    ]


async def test_each_rep_sees_only_their_own_customers_and_search_is_literal(database_url: str) -> None:
    async with store_at(database_url) as store:
        alices = await store.search("alice", None)
        assert [customer.id for customer in alices] == ["cus_001", "cus_002", "cus_003", "cus_004"]
        assert [customer.id for customer in await store.search("alice", "berlin")] == ["cus_001"]  # any case
        assert await store.search("alice", "%") == []  # a wildcard is a literal character
        assert await store.search("alice", "Madrid") == []  # bob's customer's city
        assert await store.get("alice", "cus_005") is None  # bob's customer: as if it did not exist
        assert await store.add_note("alice", "cus_005", "not mine", "crm-mcp") is None
        bobs = await store.get("bob", "cus_005")
    assert bobs is not None
    assert [note.text for note in bobs.notes] == ["Interested in the analytics add-on."]


async def test_a_note_written_through_one_replica_is_read_through_another(database_url: str) -> None:
    """Two replicas starting together migrate and seed once; what one writes, the other reads."""
    async with store_at(database_url) as replica_a, store_at(database_url) as replica_b:
        written = await replica_a.add_note("alice", "cus_002", "called about pricing", "crm-mcp", actor=None)
        read = await replica_b.get("alice", "cus_002")
        assert len(await replica_b.search("bob", None)) == 4  # seeded once, not twice
    assert written is not None
    assert read == written
    assert read.notes[-1].text == "called about pricing"


async def test_postgresql_down_is_unavailable_then_recovers(postgres: LocalServer) -> None:
    url = await create_postgres_database(postgres)
    async with store_at(url) as store:
        postgres.stop(signal.SIGINT)  # fast shutdown: the store's pooled connections are cut, as in a crash
        try:
            with pytest.raises(DatabaseUnavailableError):
                await store.search("alice", None)
            assert not await store.database.ready()
        finally:
            postgres.start()
        assert await ready_within(store.database)
        assert len(await store.search("alice", None)) == 4  # the pool replaced its broken connections
