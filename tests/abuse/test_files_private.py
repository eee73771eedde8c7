"""Readable databases, measured on main: crm-mcp's SQLite file was 0644 (any local user could copy it) and
`connect_requests` kept each flow's PKCE verifier and OAuth state in plaintext until the flow ended.

Every service's database is created here by its own settings and migrations, under umask 0 (the loosest a
process can run with), and must come out 0600, with SQLite's -wal/-shm files alike; a connect flow's
secrets must not appear in the file, yet the flow still reads them back.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import stat
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from crm_mcp.third_party_calendar.connect_requests import CHECKING, SIGNING_IN, ConnectRequests, pkce_pair
from oauth_tokens.service_database import ServiceDatabase
from oauth_tokens.vault import StoredGrant, TokenVault, parse_vault_keys

pytestmark = pytest.mark.anyio


@pytest.fixture
def loose_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def everything_in(directory: Path) -> bytes:
    """The bytes of every file in `directory`: the database and any journal or WAL next to it."""
    return b"".join(path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file())


def vault_keys() -> str:
    return f"k1:{secrets.token_urlsafe(32)}"


@asynccontextmanager
async def migrated(path: Path, migrations: str = "crm_mcp:migrations") -> AsyncIterator[ServiceDatabase]:
    """A service's default SQLite database at `path` (DATABASE_URL empty), migrated as at start-up."""
    database = ServiceDatabase("", default_sqlite_file=path, migrations=migrations)
    try:
        await database.start(migrate_on_start=True)
        yield database
    finally:
        await database.dispose()


async def test_crm_api_and_tickets_mcp_databases_are_0600(tmp_path: Path, loose_umask: None) -> None:
    customers, tickets = tmp_path / "crm-api" / "crm.sqlite3", tmp_path / "tickets-mcp" / "tickets.sqlite3"
    async with migrated(customers, "crm_api:migrations"), migrated(tickets, "tickets_mcp:migrations"):
        pass

    assert mode(customers) == 0o600
    assert mode(tickets) == 0o600


async def test_crm_mcp_database_and_its_wal_are_0600(tmp_path: Path, loose_umask: None) -> None:
    database = tmp_path / "crm-mcp" / "crm-mcp.sqlite3"
    keys = parse_vault_keys(vault_keys())
    async with migrated(database) as service_database:
        await _write_with_a_reader_open(database, TokenVault(service_database, keys))
    files = [database, *database.parent.glob("crm-mcp.sqlite3-*")]
    modes = {path.name: mode(path) for path in files}
    assert modes == {path.name: 0o600 for path in files}


async def _write_with_a_reader_open(database: Path, vault: TokenVault) -> None:
    reader = sqlite3.connect(database)  # an open connection keeps the WAL and its index in place
    try:
        reader.execute("SELECT COUNT(*) FROM token_grants").fetchone()
        await vault.put("alice", "https://calendar.example", StoredGrant("access", "refresh", 2e9))
        files = [database, *database.parent.glob("crm-mcp.sqlite3-*")]
        modes = {path.name: mode(path) for path in files}
    finally:
        reader.close()
    assert len(files) == 3, modes
    assert modes == {path.name: 0o600 for path in files}


async def test_an_older_readable_database_is_tightened(tmp_path: Path) -> None:
    database = tmp_path / "crm-mcp.sqlite3"
    sqlite3.connect(database).close()
    database.chmod(0o644)

    async with migrated(database):
        pass

    assert mode(database) == 0o600


async def test_a_connect_flows_verifier_and_state_are_not_in_the_file(tmp_path: Path) -> None:
    async with migrated(tmp_path / "crm-mcp.sqlite3") as database:
        requests = ConnectRequests(database, parse_vault_keys(vault_keys()))
        reference, _ = await requests.issue("alice")
        state, (verifier, _) = secrets.token_urlsafe(32), pkce_pair()

        claimed = await requests.claim(reference, state, verifier)
        assert claimed is not None
        raw = everything_in(tmp_path)
        browser, _ = claimed
        step = await requests.take(browser, SIGNING_IN, CHECKING)

    assert state.encode() not in raw
    assert verifier.encode() not in raw
    assert step is not None
    assert (step.subject, step.state, step.code_verifier) == ("alice", state, verifier)


async def test_sealed_flow_secrets_do_not_open_under_other_keys(tmp_path: Path) -> None:
    """A database copied to a crm-mcp with other keys (or whose keys were removed) yields no flow."""
    async with migrated(tmp_path / "crm-mcp.sqlite3") as database:
        requests = ConnectRequests(database, parse_vault_keys(vault_keys()))
        reference, _ = await requests.issue("alice")
        claimed = await requests.claim(reference, secrets.token_urlsafe(32), pkce_pair()[0])
        assert claimed is not None

        other = ConnectRequests(database, parse_vault_keys(vault_keys()))

        assert await other.take(claimed[0], SIGNING_IN, CHECKING) is None
