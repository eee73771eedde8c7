"""Ticket storage in SQLite (stdlib sqlite3), seeded with demo tickets for crm-api's customers.

Methods are synchronous and open one connection per call: tools run them in a worker thread,
so the event loop never blocks on disk I/O and no connection is shared between threads.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from oauth_tokens.private_files import create_private_file

from tickets_mcp.models import Comment, Priority, Status, Ticket, TicketSummary

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    number INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    priority TEXT NOT NULL,
    created_by_client TEXT NOT NULL,
    requested_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_customer ON tickets (customer_id);
CREATE TABLE IF NOT EXISTS comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_number INTEGER NOT NULL REFERENCES tickets (number),
    text TEXT NOT NULL,
    by_client TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""

SEED_CLIENT = "seed-data"

# Customer ids are crm-api's (alice owns cus_001..cus_004, bob cus_005..cus_008).
_SEED_TICKETS: tuple[tuple[str, str, str, Status, Priority, str], ...] = (
    (
        "cus_001",
        "Invoice shows the wrong VAT rate",
        "March invoice charged 19% on exempt items.",
        "open",
        "high",
        "alice",
    ),
    (
        "cus_003",
        "Tracking page times out",
        "Shipment tracking has been timing out since Monday.",
        "in_progress",
        "urgent",
        "alice",
    ),
    (
        "cus_004",
        "Robot arm firmware update",
        "Asks for the 2.4 firmware changelog before updating.",
        "open",
        "normal",
        "alice",
    ),
    (
        "cus_005",
        "Add the analytics add-on",
        "Wants the add-on from next month's billing cycle.",
        "open",
        "normal",
        "bob",
    ),
    (
        "cus_006",
        "Password reset emails missing",
        "Reset emails land in no inbox; SPF issue fixed.",
        "resolved",
        "high",
        "bob",
    ),
    (
        "cus_008",
        "Invoices in Spanish",
        "Requests Spanish-language invoices from now on.",
        "open",
        "low",
        "bob",
    ),
)

_TICKET_ID = re.compile(r"^tkt_(\d{1,9})$")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def format_ticket_id(number: int) -> str:
    return f"tkt_{number:04d}"


def _summary(row: sqlite3.Row) -> TicketSummary:
    return TicketSummary(
        id=format_ticket_id(row["number"]),
        customer_id=row["customer_id"],
        title=row["title"],
        status=row["status"],
        priority=row["priority"],
        updated_at=row["updated_at"],
    )


class TicketStore:
    """Tickets and their comments in one SQLite file; created and seeded on first use."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "tickets.sqlite3"

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
        """Create the schema and seed the demo tickets if there are none; True if it seeded."""
        create_private_file(self.path)
        with self._connect() as db:
            db.executescript(_SCHEMA)
            if db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0]:
                return False
            now = _now()
            db.executemany(
                "INSERT INTO tickets (customer_id, title, description, status, priority, created_by_client,"
                " requested_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*ticket[:5], SEED_CLIENT, ticket[5], now, now) for ticket in _SEED_TICKETS],
            )
            return True

    def find(self, customer_id: str | None, status: Status | None) -> list[TicketSummary]:
        """Tickets, newest first, optionally only one customer's and/or in one status."""
        conditions: list[str] = []
        params: list[str] = []
        if customer_id is not None:
            conditions.append("customer_id = ?")
            params.append(customer_id)
        if status is not None:
            conditions.append("status = ?")
            params.append(status)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._connect() as db:
            rows = db.execute(f"SELECT * FROM tickets{where} ORDER BY number DESC", params).fetchall()  # noqa: S608
        return [_summary(row) for row in rows]

    def get(self, ticket_id: str) -> Ticket | None:
        match = _TICKET_ID.match(ticket_id)
        if match is None:
            return None
        with self._connect() as db:
            return self._load(db, int(match.group(1)))

    def create(
        self,
        customer_id: str,
        title: str,
        description: str,
        priority: Priority,
        created_by_client: str,
        requested_by: str | None,
    ) -> Ticket:
        now = _now()
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO tickets (customer_id, title, description, status, priority, created_by_client,"
                " requested_by, created_at, updated_at) VALUES (?, ?, ?, 'open', ?, ?, ?, ?, ?)",
                (customer_id, title, description, priority, created_by_client, requested_by, now, now),
            )
            assert cursor.lastrowid is not None
            ticket = self._load(db, cursor.lastrowid)
        assert ticket is not None
        return ticket

    def update(
        self,
        ticket_id: str,
        *,
        status: Status | None,
        priority: Priority | None,
        comment: str | None,
        by_client: str,
    ) -> Ticket | None:
        """Apply the given changes (None = unchanged); None if there is no such ticket."""
        match = _TICKET_ID.match(ticket_id)
        if match is None:
            return None
        number = int(match.group(1))
        now = _now()
        with self._connect() as db:
            cursor = db.execute(
                "UPDATE tickets SET status = COALESCE(?, status), priority = COALESCE(?, priority),"
                " updated_at = ? WHERE number = ?",
                (status, priority, now, number),
            )
            if cursor.rowcount == 0:
                return None
            if comment is not None:
                db.execute(
                    "INSERT INTO comments (ticket_number, text, by_client, created_at) VALUES (?, ?, ?, ?)",
                    (number, comment, by_client, now),
                )
            return self._load(db, number)

    @staticmethod
    def _load(db: sqlite3.Connection, number: int) -> Ticket | None:
        row = db.execute("SELECT * FROM tickets WHERE number = ?", (number,)).fetchone()
        if row is None:
            return None
        comments = db.execute(
            "SELECT text, by_client, created_at FROM comments WHERE ticket_number = ? ORDER BY id", (number,)
        ).fetchall()
        return Ticket(
            **_summary(row).model_dump(),
            description=row["description"],
            created_by_client=row["created_by_client"],
            requested_by=row["requested_by"],
            created_at=row["created_at"],
            comments=[Comment(**dict(comment)) for comment in comments],
        )
