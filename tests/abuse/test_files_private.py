"""Readable databases, measured on main: crm-mcp's SQLite file was 0644 (any local user could copy it) and
`connect_requests` kept each flow's PKCE verifier and OAuth state in plaintext until the flow ended.

Every service's database is created here by the service's own store class, under umask 0 (the loosest a
process can run with), and must come out 0600, with SQLite's -wal/-shm files alike; a connect flow's
secrets must not appear in the file, yet the flow still reads them back.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from crm_api.store import CustomerStore
from crm_mcp.connect_requests import CHECKING, SIGNING_IN, ConnectRequests, pkce_pair
from oauth_tokens.vault import StoredGrant, TokenVault, parse_vault_keys
from tickets_mcp.store import TicketStore

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


def test_crm_api_and_tickets_mcp_databases_are_0600(tmp_path: Path, loose_umask: None) -> None:
    customers, tickets = CustomerStore(tmp_path / "crm-api"), TicketStore(tmp_path / "tickets-mcp")
    customers.initialise()
    tickets.initialise()

    assert mode(customers.path) == 0o600
    assert mode(tickets.path) == 0o600


async def test_crm_mcp_database_and_its_wal_are_0600(tmp_path: Path, loose_umask: None) -> None:
    database = tmp_path / "crm-mcp" / "crm-mcp.sqlite3"
    keys = parse_vault_keys(vault_keys())
    vault, requests = TokenVault(database, keys), ConnectRequests(database, keys)
    await vault.initialise()
    await requests.initialise()
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

    await ConnectRequests(database, parse_vault_keys(vault_keys())).initialise()

    assert mode(database) == 0o600


async def test_a_connect_flows_verifier_and_state_are_not_in_the_file(tmp_path: Path) -> None:
    database = tmp_path / "crm-mcp.sqlite3"
    requests = ConnectRequests(database, parse_vault_keys(vault_keys()))
    await requests.initialise()
    reference, _ = await requests.issue("alice")
    state, (verifier, _) = secrets.token_urlsafe(32), pkce_pair()

    claimed = await requests.claim(reference, state, verifier)

    assert claimed is not None
    raw = everything_in(tmp_path)
    assert state.encode() not in raw
    assert verifier.encode() not in raw
    browser, _ = claimed
    step = await requests.take(browser, SIGNING_IN, CHECKING)
    assert step is not None
    assert (step.subject, step.state, step.code_verifier) == ("alice", state, verifier)


async def test_sealed_flow_secrets_do_not_open_under_other_keys(tmp_path: Path) -> None:
    """A database copied to a crm-mcp with other keys (or whose keys were removed) yields no flow."""
    database = tmp_path / "crm-mcp.sqlite3"
    requests = ConnectRequests(database, parse_vault_keys(vault_keys()))
    await requests.initialise()
    reference, _ = await requests.issue("alice")
    claimed = await requests.claim(reference, secrets.token_urlsafe(32), pkce_pair()[0])
    assert claimed is not None

    other = ConnectRequests(database, parse_vault_keys(vault_keys()))

    assert await other.take(claimed[0], SIGNING_IN, CHECKING) is None
