"""The encrypted token vault: key parsing, AES-GCM at rest, rotation, row binding, the refresh lease,
and that a missing or malformed CRM_MCP_VAULT_KEYS stops crm-mcp's start-up naming the variable."""

from __future__ import annotations

import secrets
import sqlite3
import time
from pathlib import Path

import pytest
from crm_mcp.settings import Settings
from oauth_tokens.errors import SettingsError
from oauth_tokens.settings import load_settings
from oauth_tokens.vault import StoredGrant, TokenVault, parse_vault_keys

pytestmark = pytest.mark.anyio
ISSUER = "https://calendar.example"


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


async def test_grants_are_encrypted_at_rest_and_bound_to_their_row(tmp_path: Path) -> None:
    vault = TokenVault(tmp_path / "vault.sqlite3", parse_vault_keys(key("k1")))
    await vault.initialise()
    alice, bob = grant("alice"), grant("bob")
    await vault.put("alice", ISSUER, alice)
    await vault.put("bob", ISSUER, bob)

    assert await vault.get("alice", ISSUER) == alice
    stored = b"".join(path.read_bytes() for path in tmp_path.iterdir())  # noqa: ASYNC240
    for token in (alice.access_token, alice.refresh_token or "", bob.access_token):
        assert token.encode() not in stored
    # A ciphertext copied into another user's row does not open there.
    with sqlite3.connect(vault.path) as db:
        db.execute(
            "UPDATE token_grants SET nonce = (SELECT nonce FROM token_grants WHERE subject = 'alice'),"
            " ciphertext = (SELECT ciphertext FROM token_grants WHERE subject = 'alice') WHERE subject = 'bob'"
        )
    assert await vault.get("bob", ISSUER) is None
    assert await vault.delete("alice", ISSUER) == alice
    assert await vault.get("alice", ISSUER) is None


async def test_rotation_adds_a_key_first_and_old_grants_still_open(tmp_path: Path) -> None:
    old_key, new_key = key("k1"), key("k2")
    path = tmp_path / "vault.sqlite3"
    before = TokenVault(path, parse_vault_keys(old_key))
    await before.initialise()
    written_before = grant("before")
    await before.put("alice", ISSUER, written_before)

    after = TokenVault(path, parse_vault_keys(f"{new_key},{old_key}"))
    assert await after.get("alice", ISSUER) == written_before
    await after.put("bob", ISSUER, grant("after"))
    with sqlite3.connect(path) as db:
        key_ids = dict(db.execute("SELECT subject, key_id FROM token_grants").fetchall())
    assert key_ids == {"alice": "k1", "bob": "k2"}
    # Without the old key, what it encrypted is unreadable (and treated as not connected).
    assert await TokenVault(path, parse_vault_keys(new_key)).get("alice", ISSUER) is None


async def test_one_refresh_lease_at_a_time_and_storing_the_rotated_grant_frees_it(tmp_path: Path) -> None:
    keys = parse_vault_keys(key("k1"))
    replica_a, replica_b = TokenVault(tmp_path / "v.sqlite3", keys), TokenVault(tmp_path / "v.sqlite3", keys)
    await replica_a.initialise()
    await replica_a.put("alice", ISSUER, grant("first"))

    assert await replica_a.try_lease("alice", ISSUER, 30)
    assert not await replica_b.try_lease("alice", ISSUER, 30)
    await replica_a.put("alice", ISSUER, grant("rotated"))
    assert await replica_b.try_lease("alice", ISSUER, 30)
    await replica_b.release_lease("alice", ISSUER)
    assert await replica_a.try_lease("alice", ISSUER, 30)


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
