"""The encrypted token vault on a real SQLite file and a real PostgreSQL: key parsing, AES-GCM at rest,
rotation, row binding, the versioned refresh lease and one refresh across replicas (grant_refresh), and
that a missing or malformed CRM_MCP_VAULT_KEYS stops crm-mcp's start-up naming the variable."""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from crm_mcp.settings import Settings
from oauth_tokens.errors import SettingsError
from oauth_tokens.grant_refresh import RefreshInProgressElsewhereError, refresh_once
from oauth_tokens.service_database import ServiceDatabase
from oauth_tokens.settings import load_settings
from oauth_tokens.vault import TOKEN_GRANTS, KeyRing, StoredGrant, TokenVault, parse_vault_keys
from sqlalchemy import select, update

from tests.support.databases import database_url, postgres

__all__ = ["database_url", "postgres"]  # fixtures

pytestmark = pytest.mark.anyio
ISSUER = "https://calendar.example"
MIGRATIONS = "crm_mcp:migrations"  # the vault's table is crm-mcp's


def key(key_id: str) -> str:
    return f"{key_id}:{secrets.token_urlsafe(32)}"


def grant(tag: str) -> StoredGrant:
    return StoredGrant(
        f"access-{tag}-{secrets.token_hex(8)}", f"refresh-{tag}-{secrets.token_hex(8)}", time.time() + 600
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "at least one"),
        ("no-separator", "key-id:key"),
        ("bad id!:AAAA", "key-id:key"),
        ("k1:not*base64", "base64url"),
        ("k1:" + "A" * 22, "32 random bytes"),
    ],
)
def test_malformed_keys_are_refused_without_quoting_them(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as refused:
        parse_vault_keys(value)
    secret_part = value.partition(":")[2]
    assert not secret_part or secret_part not in str(refused.value)


def test_a_repeated_key_id_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse_vault_keys(f"{key('k1')},{key('k1')}")


@asynccontextmanager
async def vaults(url: str, *keys: str, replicas: int = 1) -> AsyncIterator[list[TokenVault]]:
    """`replicas` vaults on one database (each its own engine, as separate crm-mcp processes), migrated."""
    databases = [
        ServiceDatabase(url, default_sqlite_file=Path("unused"), migrations=MIGRATIONS) for _ in range(replicas)
    ]
    try:
        for database in databases:
            await database.migrate()
        yield [TokenVault(database, parse_vault_keys(",".join(keys))) for database in databases]
    finally:
        for database in databases:
            await database.dispose()


async def raw_rows(vault: TokenVault) -> dict[str, Any]:
    async with vault.database.transaction() as db:
        return {row.subject: row for row in (await db.execute(select(TOKEN_GRANTS))).all()}


async def test_grants_are_encrypted_at_rest_and_bound_to_their_row(database_url: str) -> None:
    async with vaults(database_url, key("k1")) as (vault,):
        alice, bob = grant("alice"), grant("bob")
        await vault.put("alice", ISSUER, alice)
        await vault.put("bob", ISSUER, bob)

        assert await vault.get("alice", ISSUER) == alice
        stored = b"".join(row.ciphertext + row.nonce for row in (await raw_rows(vault)).values())
        for token in (alice.access_token, alice.refresh_token or "", bob.access_token):
            assert token.encode() not in stored
        # A ciphertext copied into another user's row does not open there.
        alices_row = (await raw_rows(vault))["alice"]
        async with vault.database.transaction() as db:
            await db.execute(
                update(TOKEN_GRANTS)
                .where(TOKEN_GRANTS.c.subject == "bob")
                .values(nonce=alices_row.nonce, ciphertext=alices_row.ciphertext)
            )
        assert await vault.get("bob", ISSUER) is None
        assert await vault.delete("alice", ISSUER) == alice
        assert await vault.get("alice", ISSUER) is None


async def test_rotation_adds_a_key_first_and_old_grants_still_open(database_url: str) -> None:
    old_key, new_key = key("k1"), key("k2")
    written_before = grant("before")
    async with vaults(database_url, old_key) as (before,):
        await before.put("alice", ISSUER, written_before)
    async with vaults(database_url, new_key, old_key) as (after,):
        assert await after.get("alice", ISSUER) == written_before
        await after.put("bob", ISSUER, grant("after"))
        assert {subject: row.key_id for subject, row in (await raw_rows(after)).items()} == {"alice": "k1", "bob": "k2"}
    # Without the old key, what it encrypted is unreadable (and treated as not connected).
    async with vaults(database_url, new_key) as (without_old,):
        assert await without_old.get("alice", ISSUER) is None


async def test_a_lease_is_taken_only_at_the_version_read_and_storing_frees_it(database_url: str) -> None:
    async with vaults(database_url, key("k1"), replicas=2) as (replica_a, replica_b):
        await replica_a.put("alice", ISSUER, grant("first"))
        read_by_a, read_by_b = await replica_a.read("alice", ISSUER), await replica_b.read("alice", ISSUER)
        assert read_by_a is not None
        assert read_by_b is not None

        assert await replica_a.try_lease("alice", ISSUER, 30, version=read_by_a.version)
        assert not await replica_b.try_lease("alice", ISSUER, 30, version=read_by_b.version)
        await replica_a.put("alice", ISSUER, grant("rotated"))  # frees the lease, bumps the version
        # b read the row before the rotation: it can never lease that version again (no replay) ...
        assert not await replica_b.try_lease("alice", ISSUER, 30, version=read_by_b.version)
        current = await replica_b.read("alice", ISSUER)
        assert current is not None
        assert current.version == read_by_b.version + 1
        # ... but it can lease the current one, and a released lease is free again.
        assert await replica_b.try_lease("alice", ISSUER, 30, version=current.version)
        await replica_b.release_lease("alice", ISSUER, version=current.version)
        assert await replica_a.try_lease("alice", ISSUER, 30, version=current.version)


async def test_two_replicas_due_at_once_send_one_refresh_and_both_use_its_result(database_url: str) -> None:
    """The refresh-token rotation race: each replica finds the grant due; one redeems, the other waits."""
    sent: list[str] = []

    async def refresh(refresh_token: str) -> StoredGrant:  # the provider's token endpoint, as slow as a real one
        sent.append(refresh_token)
        await anyio.sleep(0.5)
        return grant("rotated")

    async with vaults(database_url, key("k1"), replicas=2) as replicas:
        first = StoredGrant("access-old", "refresh-old", time.time() + 5)  # inside the 60 s margin: due
        await replicas[0].put("alice", ISSUER, first)
        results: list[StoredGrant | None] = []

        async def replica_refreshes(vault: TokenVault) -> None:
            results.append(
                await refresh_once(vault, "alice", ISSUER, refresh, margin_seconds=60, wait_seconds=5, lease_seconds=15)
            )

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                for vault in replicas:
                    group.start_soon(replica_refreshes, vault)
        stored = await replicas[1].get("alice", ISSUER)

    assert sent == ["refresh-old"]  # exactly one refresh, the old token never sent twice
    assert results == [stored, stored]
    assert stored is not None
    assert stored.refresh_token != "refresh-old"


async def test_a_replica_waits_for_a_lease_held_elsewhere_at_most_its_deadline(database_url: str) -> None:
    async def refresh(refresh_token: str) -> StoredGrant:
        raise AssertionError("the lease is held elsewhere: this replica must not refresh")

    async with vaults(database_url, key("k1"), replicas=2) as (holder, waiter):
        await holder.put("alice", ISSUER, StoredGrant("access", "refresh", time.time() + 5))
        entry = await holder.read("alice", ISSUER)
        assert entry is not None
        assert await holder.try_lease("alice", ISSUER, 30, version=entry.version)  # a refresh in flight there
        with anyio.fail_after(5), pytest.raises(RefreshInProgressElsewhereError):
            await refresh_once(waiter, "alice", ISSUER, refresh, margin_seconds=60, wait_seconds=0.5, lease_seconds=15)


@pytest.mark.parametrize("value", [None, "k1:tooshort"])
def test_crm_mcp_refuses_to_start_without_a_usable_vault_key(
    value: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    required = {
        "AUTH_ISSUER": "http://127.0.0.1:9000",
        "CRM_MCP_RESOURCE": "http://127.0.0.1:8001/mcp",
        "WEATHER_API_URL": "http://127.0.0.1:8004",
        "WEATHER_API_KEY": "k",
        "CRM_MCP_CLIENT_ID": "crm-mcp-agent",
        "CRM_MCP_CLIENT_SECRET": "s",
        "TICKETS_MCP_URL": "http://127.0.0.1:8002/mcp",
        "TICKETS_MCP_RESOURCE": "http://127.0.0.1:8002/mcp",
        "CRM_API_URL": "http://127.0.0.1:8003",
        "CRM_MCP_PUBLIC_URL": "http://127.0.0.1:8001",
        "CRM_MCP_REQUEST_STATE_KEYS": secrets.token_urlsafe(32),
        "CALENDAR_API_URL": "http://127.0.0.1:8005",
        "CALENDAR_API_AUDIENCE": "http://127.0.0.1:8005",
        "CALENDAR_AUTH_ISSUER": "http://127.0.0.1:9001",
        "CALENDAR_CLIENT_ID": "crm-mcp",
        "CALENDAR_CLIENT_SECRET": "s",
    }
    for name, setting in required.items():
        monkeypatch.setenv(name, setting)
    if value is not None:
        monkeypatch.setenv("CRM_MCP_VAULT_KEYS", value)
    else:
        monkeypatch.delenv("CRM_MCP_VAULT_KEYS", raising=False)

    with pytest.raises(SettingsError, match="CRM_MCP_VAULT_KEYS") as refused:
        load_settings(Settings)
    assert "tooshort" not in str(refused.value)
    monkeypatch.setenv("CRM_MCP_VAULT_KEYS", key("k1"))
    assert load_settings(Settings).crm_mcp_vault_keys[0].key_id == "k1"


async def test_a_vault_file_from_before_migrations_keeps_its_grants(tmp_path: Path) -> None:
    """crm-mcp.sqlite3 as the SQLite-only vault left it (no version column, no alembic_version table)."""
    path, keys = tmp_path / "crm-mcp.sqlite3", key("k1")
    kept = grant("kept")
    plaintext = json.dumps(
        {
            "access_token": kept.access_token,
            "refresh_token": kept.refresh_token,
            "expires_at": kept.expires_at,
            "scope": "",
        }
    ).encode()
    key_id, nonce, ciphertext = KeyRing(parse_vault_keys(keys)).seal(plaintext, ("alice", ISSUER))
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE token_grants (subject TEXT NOT NULL, issuer TEXT NOT NULL, key_id TEXT NOT NULL,"
            " nonce BLOB NOT NULL, ciphertext BLOB NOT NULL, updated_at REAL NOT NULL,"
            " lease_until REAL NOT NULL DEFAULT 0, PRIMARY KEY (subject, issuer))"
        )
        db.execute("INSERT INTO token_grants VALUES ('alice', ?, ?, ?, ?, 0, 0)", (ISSUER, key_id, nonce, ciphertext))
        db.execute("CREATE TABLE connect_requests (id TEXT PRIMARY KEY)")

    async with vaults(f"sqlite:///{path}", keys) as (vault,):
        entry = await vault.read("alice", ISSUER)
        assert entry is not None
        assert entry.grant == kept
        assert await vault.try_lease("alice", ISSUER, 30, version=entry.version)
