"""crm-api's SQLite store on a real file: a database from before notes had an actor is migrated in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from crm_api.store import CustomerStore

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


def test_an_old_database_gains_the_actor_column_and_keeps_its_notes(tmp_path: Path) -> None:
    store = CustomerStore(tmp_path)
    with sqlite3.connect(store.path) as db:
        db.executescript(_OLD_NOTES)

    assert store.initialise() is False  # not reseeded: its customers are kept
    assert store.initialise() is False  # and migrating twice is harmless
    customer = store.add_note("alice", "cus_001", "after", "crm-mcp-agent", actor="crm-mcp-agent")
    assert customer is not None
    assert [(note.text, note.author, note.actor) for note in customer.notes] == [
        ("written before the migration", "alice", None),
        ("after", "alice", "crm-mcp-agent"),
    ]
