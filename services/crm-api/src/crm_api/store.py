"""Customer storage in SQLite (stdlib sqlite3), seeded with demo data; every read is scoped to an owner.

Methods are synchronous and open one connection per call: the app runs them in a worker thread,
so the event loop never blocks on disk I/O and no connection is shared between threads.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from oauth_tokens.private_files import create_private_file

from crm_api.models import Customer, CustomerSummary

_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    company TEXT NOT NULL,
    city TEXT NOT NULL,
    owner TEXT NOT NULL,
    tier TEXT NOT NULL,
    email TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS customers_owner ON customers (owner);
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    text TEXT NOT NULL,
    author TEXT NOT NULL,
    client_id TEXT,
    actor TEXT,
    created_at TEXT NOT NULL
);
"""

# Demo data: alice owns cus_001..cus_004, bob cus_005..cus_008 (tickets-mcp seeds tickets for these ids).
_SEED_CUSTOMERS = (
    ("cus_001", "Greta Vogel", "Vogel Maschinenbau GmbH", "Berlin", "alice", "gold", "greta@vogel.example"),
    ("cus_002", "Camille Laurent", "Laurent & Fils", "Paris", "alice", "silver", "camille@laurent.example"),
    (
        "cus_003",
        "Oliver Hughes",
        "Hughes Logistics Ltd",
        "London",
        "alice",
        "platinum",
        "oliver@hughes.example",
    ),
    ("cus_004", "Yuki Tanaka", "Tanaka Robotics KK", "Tokyo", "alice", "bronze", "yuki@tanaka.example"),
    ("cus_005", "Maya Johnson", "Hudson Analytics Inc", "New York", "bob", "gold", "maya@hudson.example"),
    ("cus_006", "Liam O'Connor", "Harbour Bridge Traders", "Sydney", "bob", "silver", "liam@harbour.example"),
    ("cus_007", "Sophie Tremblay", "Maple Leaf Foods", "Toronto", "bob", "bronze", "sophie@maple.example"),
    ("cus_008", "Javier García", "García Energía SA", "Madrid", "bob", "platinum", "javier@garcia.example"),
)

_SEED_NOTES = (
    ("cus_001", "Renewal due next quarter; wants a volume discount.", "alice"),
    ("cus_003", "Escalated a late shipment in May; resolved.", "alice"),
    ("cus_005", "Interested in the analytics add-on.", "bob"),
    ("cus_008", "Prefers calls in the morning (CET).", "bob"),
)

_SUMMARY_COLUMNS = "id, name, company, city, owner, tier"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _like_pattern(query: str) -> str:
    """A LIKE pattern matching `query` literally anywhere (its own % and _ escaped)."""
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _add_actor_column(db: sqlite3.Connection) -> None:
    """Migrate a database made before notes recorded their actor: add the column, its old notes have none."""
    columns = {row["name"] for row in db.execute("PRAGMA table_info(notes)")}
    if "actor" not in columns:
        db.execute("ALTER TABLE notes ADD COLUMN actor TEXT")


class CustomerStore:
    """Customers and notes in one SQLite file; created and seeded on first use."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "crm.sqlite3"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=5.0)
        connection.row_factory = sqlite3.Row
        try:
            with connection:  # commits on success, rolls back on error
                yield connection
        finally:
            connection.close()

    def initialise(self) -> bool:
        """Create the schema and seed the demo data if the database is empty; True if it seeded."""
        create_private_file(self.path)
        with self._connect() as db:
            db.executescript(_SCHEMA)
            _add_actor_column(db)
            if db.execute("SELECT COUNT(*) FROM customers").fetchone()[0]:
                return False
            db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?)", _SEED_CUSTOMERS)
            db.executemany(
                "INSERT INTO notes (customer_id, text, author, client_id, created_at) VALUES (?, ?, ?, ?, ?)",
                [(customer_id, text, author, None, _now()) for customer_id, text, author in _SEED_NOTES],
            )
            return True

    def search(self, owner: str, query: str | None) -> list[CustomerSummary]:
        """The owner's customers whose name, company or city contains `query` (case-insensitive)."""
        sql = f"SELECT {_SUMMARY_COLUMNS} FROM customers WHERE owner = ?"  # noqa: S608 (constant columns)
        params: list[str] = [owner]
        if query:
            sql += " AND (name LIKE ? ESCAPE '\\' OR company LIKE ? ESCAPE '\\' OR city LIKE ? ESCAPE '\\')"
            params += [_like_pattern(query)] * 3
        with self._connect() as db:
            rows = db.execute(sql + " ORDER BY id", params).fetchall()
        return [CustomerSummary.model_validate(dict(row)) for row in rows]

    def get(self, owner: str, customer_id: str) -> Customer | None:
        """The customer if it exists AND belongs to `owner`; None otherwise (the caller cannot tell which)."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM customers WHERE id = ? AND owner = ?", (customer_id, owner)).fetchone()
            if row is None:
                return None
            notes = db.execute("SELECT * FROM notes WHERE customer_id = ? ORDER BY id", (customer_id,)).fetchall()
        return Customer.model_validate({**dict(row), "notes": [dict(note) for note in notes]})

    def add_note(
        self, owner: str, customer_id: str, text: str, client_id: str | None, actor: str | None = None
    ) -> Customer | None:
        """Append a note to the owner's customer and return the customer; None if the owner has no such customer.

        `actor` is who wrote it for the owner (a token exchange's `act.sub`); None when the owner's own token did.
        """
        with self._connect() as db:
            owned = db.execute("SELECT 1 FROM customers WHERE id = ? AND owner = ?", (customer_id, owner)).fetchone()
            if owned is None:
                return None
            db.execute(
                "INSERT INTO notes (customer_id, text, author, client_id, actor, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (customer_id, text, owner, client_id, actor, _now()),
            )
        return self.get(owner, customer_id)
