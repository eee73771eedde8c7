"""Pending account connections (pattern 4): the opaque connect references a tool hands out, and the
browser flows they start, in crm-mcp's SQLite database so every replica sees the same ones.

A reference is 32 random bytes that mean nothing outside this table (no user name, no token) and is
stored only by digest. It lives `lifetime_seconds` and is spent by the first browser that opens it
(`claim`), which gets a random browser binding (a cookie) in exchange; each later step of the flow
must present that binding and is itself single-use (`take`), so a replayed callback finds nothing.

What a flow must remember between redirects, its OAuth `state` and PKCE code verifier, is sealed with
the vault's keys (`oauth_tokens.vault.KeyRing`, bound to the row and the field), so a copy of the
database file reveals neither; the file itself is 0600 (`oauth_tokens.private_files`).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio.to_thread
from oauth_tokens.private_files import create_private_file
from oauth_tokens.vault import KeyRing, VaultKey

_SCHEMA = """
CREATE TABLE IF NOT EXISTS connect_requests (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    stage TEXT NOT NULL,
    browser TEXT,
    state TEXT NOT NULL DEFAULT '',
    verifier TEXT NOT NULL DEFAULT '',
    expires_at REAL NOT NULL
)
"""
ISSUED, SIGNING_IN, CHECKING, CONSENTING = "issued", "signing-in", "checking", "consenting"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def pkce_pair() -> tuple[str, str]:
    """A fresh PKCE code verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


@dataclass(frozen=True)
class FlowStep:
    """One step of a connect flow, as stored: whose it is, and what the redirect back must match."""

    request_id: str
    subject: str
    state: str = field(repr=False)
    code_verifier: str = field(repr=False)


class ConnectRequests:
    """The connect_requests table; every method runs its I/O in a thread."""

    def __init__(self, path: Path, keys: Sequence[VaultKey], lifetime_seconds: float = 600.0) -> None:
        self.path = path
        self.lifetime_seconds = lifetime_seconds
        self._ring = KeyRing(keys)

    async def initialise(self) -> None:
        def create() -> None:
            create_private_file(self.path)
            with self._transaction() as db:
                db.execute(_SCHEMA)

        await anyio.to_thread.run_sync(create)

    async def issue(self, subject: str) -> tuple[str, str]:
        """A new reference for `subject`; returns (reference for the URL, request id to remember it by)."""
        reference = secrets.token_urlsafe(32)
        request_id = digest(reference)

        def insert() -> None:
            now = time.time()
            with self._transaction() as db:
                db.execute("DELETE FROM connect_requests WHERE expires_at < ?", (now,))
                db.execute(
                    "INSERT INTO connect_requests (id, subject, stage, expires_at) VALUES (?, ?, ?, ?)",
                    (request_id, subject, ISSUED, now + self.lifetime_seconds),
                )

        await anyio.to_thread.run_sync(insert)
        return reference, request_id

    async def claim(self, reference: str, state: str, code_verifier: str) -> tuple[str, FlowStep] | None:
        """Spend `reference` (unknown, used or expired: None); returns the browser binding and the step."""
        browser = secrets.token_urlsafe(32)
        request_id, now = digest(reference), time.time()
        sealed = self._seal(request_id, state, code_verifier)

        def update() -> str | None:
            with self._transaction() as db:
                row = db.execute(
                    "UPDATE connect_requests SET stage = ?, browser = ?, state = ?, verifier = ?"
                    " WHERE id = ? AND stage = ? AND expires_at > ? RETURNING subject",
                    (SIGNING_IN, digest(browser), *sealed, request_id, ISSUED, now),
                ).fetchone()
            return None if row is None else str(row[0])

        subject = await anyio.to_thread.run_sync(update)
        if subject is None:
            return None
        return browser, FlowStep(request_id, subject, state, code_verifier)

    async def take(self, browser: str, stage: str, next_stage: str | None) -> FlowStep | None:
        """The flow bound to `browser` if it is at `stage`; moves it to `next_stage` (None: deletes it)."""

        def transition() -> FlowStep | None:
            with self._transaction() as db:
                row = db.execute(
                    "SELECT id, subject, state, verifier FROM connect_requests"
                    " WHERE browser = ? AND stage = ? AND expires_at > ?",
                    (digest(browser), stage, time.time()),
                ).fetchone()
                if row is None:
                    return None
                if next_stage is None:
                    db.execute("DELETE FROM connect_requests WHERE id = ?", (row[0],))
                else:
                    db.execute("UPDATE connect_requests SET stage = ? WHERE id = ?", (next_stage, row[0]))
            return self._opened(str(row[0]), str(row[1]), str(row[2]), str(row[3]))

        return await anyio.to_thread.run_sync(transition)

    async def expect(self, request_id: str, stage: str, state: str, code_verifier: str) -> None:
        """Record what the next redirect back must carry, moving the flow to `stage`."""

        def update() -> None:
            with self._transaction() as db:
                db.execute(
                    "UPDATE connect_requests SET stage = ?, state = ?, verifier = ? WHERE id = ?",
                    (stage, *self._seal(request_id, state, code_verifier), request_id),
                )

        await anyio.to_thread.run_sync(update)

    async def discard(self, request_id: str) -> None:
        def delete() -> None:
            with self._transaction() as db:
                db.execute("DELETE FROM connect_requests WHERE id = ?", (request_id,))

        await anyio.to_thread.run_sync(delete)

    def _seal(self, request_id: str, state: str, code_verifier: str) -> tuple[str, str]:
        return (
            self._ring.seal_text(state, (request_id, "state")),
            self._ring.seal_text(code_verifier, (request_id, "verifier")),
        )

    def _opened(self, request_id: str, subject: str, state: str, code_verifier: str) -> FlowStep | None:
        """The step with its secrets unsealed; None if they do not open (a removed key: the flow is lost)."""
        opened_state = self._ring.open_text(state, (request_id, "state"))
        opened_verifier = self._ring.open_text(code_verifier, (request_id, "verifier"))
        if opened_state is None or opened_verifier is None:
            return None
        return FlowStep(request_id, subject, opened_state, opened_verifier)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front, so a read-then-write is atomic across replicas.
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()
