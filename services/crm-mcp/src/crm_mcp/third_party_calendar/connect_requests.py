"""Pending account connections (pattern 4): the opaque connect references a tool hands out, and the
browser flows they start, in crm-mcp's database (SQLite, or PostgreSQL with DATABASE_URL) so every
replica sees the same ones: a flow may start at one replica and finish at another.

A reference is 32 random bytes that mean nothing outside this table (no user name, no token) and is
stored only by digest. It lives `lifetime_seconds` and is spent by the first browser that opens it
(`claim`), which gets a random browser binding (a cookie) in exchange; each later step of the flow
must present that binding and is itself single-use (`take`, one conditional UPDATE or DELETE … RETURNING,
so two replicas racing on one step cannot both win it), so a replayed callback finds nothing.

What a flow must remember between redirects, its OAuth `state` and PKCE code verifier, is sealed with
the vault's keys (`oauth_tokens.vault.KeyRing`, bound to the row and the field), so a copy of the
database reveals neither; the SQLite file is 0600 (`oauth_tokens.private_files`).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from oauth_tokens.service_database import ServiceDatabase
from oauth_tokens.vault import KeyRing, VaultKey
from sqlalchemy import Column, Float, MetaData, Table, Text, delete, insert, update

CONNECT_REQUESTS = Table(
    "connect_requests",
    MetaData(),
    Column("id", Text, primary_key=True),
    Column("subject", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("browser", Text),
    Column("state", Text, nullable=False, default=""),
    Column("verifier", Text, nullable=False, default=""),
    Column("expires_at", Float, nullable=False),
)
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
    """The connect_requests table in crm-mcp's database."""

    def __init__(self, database: ServiceDatabase, keys: Sequence[VaultKey], lifetime_seconds: float = 600.0) -> None:
        self.database = database
        self.lifetime_seconds = lifetime_seconds
        self._ring = KeyRing(keys)

    async def issue(self, subject: str) -> tuple[str, str]:
        """A new reference for `subject`; returns (reference for the URL, request id to remember it by)."""
        reference = secrets.token_urlsafe(32)
        request_id = digest(reference)
        now = time.time()
        async with self.database.transaction() as db:
            await db.execute(delete(CONNECT_REQUESTS).where(CONNECT_REQUESTS.c.expires_at < now))
            await db.execute(
                insert(CONNECT_REQUESTS).values(
                    id=request_id, subject=subject, stage=ISSUED, expires_at=now + self.lifetime_seconds
                )
            )
        return reference, request_id

    async def claim(self, reference: str, state: str, code_verifier: str) -> tuple[str, FlowStep] | None:
        """Spend `reference` (unknown, used or expired: None); returns the browser binding and the step."""
        browser = secrets.token_urlsafe(32)
        request_id = digest(reference)
        sealed_state, sealed_verifier = self._seal(request_id, state, code_verifier)
        table = CONNECT_REQUESTS.c
        statement = (
            update(CONNECT_REQUESTS)
            .where(table.id == request_id, table.stage == ISSUED, table.expires_at > time.time())
            .values(stage=SIGNING_IN, browser=digest(browser), state=sealed_state, verifier=sealed_verifier)
            .returning(table.subject)
        )
        async with self.database.transaction() as db:
            row = (await db.execute(statement)).first()
        if row is None:
            return None
        return browser, FlowStep(request_id, str(row.subject), state, code_verifier)

    async def take(self, browser: str, stage: str, next_stage: str | None) -> FlowStep | None:
        """The flow bound to `browser` if it is at `stage`; moves it to `next_stage` (None: deletes it)."""
        table = CONNECT_REQUESTS.c
        match = (table.browser == digest(browser), table.stage == stage, table.expires_at > time.time())
        columns = (table.id, table.subject, table.state, table.verifier)
        async with self.database.transaction() as db:
            if next_stage is None:
                result = await db.execute(delete(CONNECT_REQUESTS).where(*match).returning(*columns))
            else:
                result = await db.execute(
                    update(CONNECT_REQUESTS).where(*match).values(stage=next_stage).returning(*columns)
                )
            row = result.first()
        if row is None:
            return None
        return self._opened(str(row.id), str(row.subject), str(row.state), str(row.verifier))

    async def expect(self, request_id: str, stage: str, state: str, code_verifier: str) -> None:
        """Record what the next redirect back must carry, moving the flow to `stage`."""
        sealed_state, sealed_verifier = self._seal(request_id, state, code_verifier)
        statement = (
            update(CONNECT_REQUESTS)
            .where(CONNECT_REQUESTS.c.id == request_id)
            .values(stage=stage, state=sealed_state, verifier=sealed_verifier)
        )
        async with self.database.transaction() as db:
            await db.execute(statement)

    async def discard(self, request_id: str) -> None:
        async with self.database.transaction() as db:
            await db.execute(delete(CONNECT_REQUESTS).where(CONNECT_REQUESTS.c.id == request_id))

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
