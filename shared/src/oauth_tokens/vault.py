"""An encrypted token vault: one user's tokens at one third party, AES-GCM encrypted at rest in SQLite.

A service that acts in its users' own accounts elsewhere (pattern 4) keeps each user's grant there, the
refresh token and the current access token, under (user `sub`, third-party issuer). Nothing readable is
stored: each row is AES-256-GCM under a key from settings, with the row's identity as associated data,
so a ciphertext moved to another user's row does not decrypt. Keys are `key-id:key` pairs; the first
encrypts and every one decrypts, so a key is rotated by putting a new one first. `KeyRing` is that
encryption on its own, for other secrets a service must keep a while (pattern 4's PKCE verifier and state).

Several replicas may share the database file: a refresh takes a short lease on the row (`try_lease`),
so only one replica at a time redeems a refresh token; the others wait for the rotated one.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BeforeValidator
from pydantic_settings import NoDecode

from oauth_tokens.private_files import create_private_file

__all__ = ["KeyRing", "StoredGrant", "TokenVault", "VaultKey", "VaultKeys", "parse_vault_keys"]

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_NONCE_BYTES = 12
_SCHEMA = """
CREATE TABLE IF NOT EXISTS token_grants (
    subject TEXT NOT NULL,
    issuer TEXT NOT NULL,
    key_id TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    updated_at REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, issuer)
)
"""


@dataclass(frozen=True)
class VaultKey:
    """One AES-256 key and the id stored next to what it encrypted."""

    key_id: str
    key: bytes = field(repr=False)


def parse_vault_keys(value: Any) -> tuple[VaultKey, ...]:
    """'k2:<base64url 32 bytes>,k1:<...>' -> keys, first one encrypting; ValueError never quotes a key."""
    if isinstance(value, tuple) and all(isinstance(item, VaultKey) for item in value):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a comma-separated list of key-id:key")
    keys: list[VaultKey] = []
    for position, entry in enumerate((item.strip() for item in value.split(",") if item.strip()), start=1):
        key_id, separator, encoded = entry.partition(":")
        if not separator or not _KEY_ID.fullmatch(key_id):
            raise ValueError(f"entry {position} must be key-id:key (key id: letters, digits, - and _)")
        try:
            key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            raise ValueError(f"key {key_id} is not base64url") from None
        if len(key) != 32:
            raise ValueError(f"key {key_id} must be 32 random bytes (base64url: 43 characters)")
        if any(existing.key_id == key_id for existing in keys):
            raise ValueError(f"key id {key_id} appears twice")
        keys.append(VaultKey(key_id, key))
    if not keys:
        raise ValueError("at least one key-id:key is required")
    return tuple(keys)


# A settings field type: CRM_MCP_VAULT_KEYS=k1:<key>[,k0:<old key>].
VaultKeys = Annotated[tuple[VaultKey, ...], NoDecode, BeforeValidator(parse_vault_keys)]


class KeyRing:
    """AES-256-GCM under VaultKeys: the first key seals, every one opens.

    Each ciphertext is bound to a `context` (where it is stored: a row's identity) and to its key id
    as associated data, so it opens nowhere else.
    """

    def __init__(self, keys: Sequence[VaultKey]) -> None:
        if not keys:
            raise ValueError("a KeyRing needs at least one key")
        self._keys = {key.key_id: AESGCM(key.key) for key in keys}
        self.current = keys[0].key_id

    def seal(self, plaintext: bytes, context: Sequence[str]) -> tuple[str, bytes, bytes]:
        """(key id, nonce, ciphertext) of `plaintext` under the current key."""
        nonce = os.urandom(_NONCE_BYTES)
        return self.current, nonce, self._keys[self.current].encrypt(nonce, plaintext, _bound(context, self.current))

    def open(self, key_id: str, nonce: bytes, ciphertext: bytes, context: Sequence[str]) -> bytes | None:
        """The plaintext; None if no configured key opens it (a removed key, another context, tampering)."""
        aead = self._keys.get(key_id)
        if aead is None:
            return None
        try:
            return aead.decrypt(nonce, ciphertext, _bound(context, key_id))
        except InvalidTag:
            return None

    def seal_text(self, plaintext: str, context: Sequence[str]) -> str:
        """`seal` as one ASCII string, for a TEXT column: key-id.nonce.ciphertext (base64url)."""
        key_id, nonce, ciphertext = self.seal(plaintext.encode(), context)
        return ".".join((key_id, _b64(nonce), _b64(ciphertext)))

    def open_text(self, sealed: str, context: Sequence[str]) -> str | None:
        """What `seal_text` sealed in `context`; None if it does not open (or is not a sealed string)."""
        parts = sealed.split(".")
        if len(parts) != 3:
            return None
        try:
            nonce, ciphertext = (base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in parts[1:])
        except (binascii.Error, ValueError):
            return None
        plaintext = self.open(parts[0], nonce, ciphertext, context)
        return None if plaintext is None else plaintext.decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _bound(context: Sequence[str], key_id: str) -> bytes:
    """GCM associated data: a ciphertext only opens in the context (and under the key id) it was sealed for."""
    return json.dumps([*context, key_id]).encode()


@dataclass(frozen=True)
class StoredGrant:
    """A user's grant at a third party; `repr` shows neither token."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: float
    scope: str = ""

    def expires_within(self, seconds: float) -> bool:
        return self.expires_at - time.time() <= seconds


class TokenVault:
    """Grants by (subject, issuer) in a SQLite file, encrypted; every method runs its I/O in a thread."""

    def __init__(self, path: Path, keys: Sequence[VaultKey]) -> None:
        if not keys:
            raise ValueError("TokenVault needs at least one key")
        self.path = path
        self._ring = KeyRing(keys)

    async def initialise(self) -> None:
        def create() -> None:
            create_private_file(self.path)
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(_SCHEMA)

        await anyio.to_thread.run_sync(create)

    async def get(self, subject: str, issuer: str) -> StoredGrant | None:
        def read() -> StoredGrant | None:
            with self._connect() as db:
                row = db.execute(
                    "SELECT key_id, nonce, ciphertext FROM token_grants WHERE subject = ? AND issuer = ?",
                    (subject, issuer),
                ).fetchone()
            return None if row is None else self._decrypt(subject, issuer, row[0], row[1], row[2])

        return await anyio.to_thread.run_sync(read)

    async def put(self, subject: str, issuer: str, grant: StoredGrant) -> None:
        """Store `grant` (replacing any earlier one) and release a refresh lease on the row, in one statement."""
        plaintext = json.dumps(
            {
                "access_token": grant.access_token,
                "refresh_token": grant.refresh_token,
                "expires_at": grant.expires_at,
                "scope": grant.scope,
            }
        ).encode()
        key_id, nonce, ciphertext = self._ring.seal(plaintext, (subject, issuer))

        def write() -> None:
            with self._connect() as db:
                db.execute(
                    "INSERT INTO token_grants (subject, issuer, key_id, nonce, ciphertext, updated_at, lease_until)"
                    " VALUES (?, ?, ?, ?, ?, ?, 0) ON CONFLICT (subject, issuer) DO UPDATE SET key_id ="
                    " excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext,"
                    " updated_at = excluded.updated_at, lease_until = 0",
                    (subject, issuer, key_id, nonce, ciphertext, time.time()),
                )

        await anyio.to_thread.run_sync(write)

    async def delete(self, subject: str, issuer: str) -> StoredGrant | None:
        """Remove the grant; returns what was stored (to revoke it at the issuer), or None."""

        def remove() -> StoredGrant | None:
            with self._connect() as db:
                row = db.execute(
                    "DELETE FROM token_grants WHERE subject = ? AND issuer = ? RETURNING key_id, nonce, ciphertext",
                    (subject, issuer),
                ).fetchone()
            return None if row is None else self._decrypt(subject, issuer, row[0], row[1], row[2])

        return await anyio.to_thread.run_sync(remove)

    async def try_lease(self, subject: str, issuer: str, seconds: float) -> bool:
        """Take the row's refresh lease for `seconds` unless another holder's lease is still running."""

        def lease() -> bool:
            now = time.time()
            with self._connect() as db:
                cursor = db.execute(
                    "UPDATE token_grants SET lease_until = ? WHERE subject = ? AND issuer = ? AND lease_until < ?",
                    (now + seconds, subject, issuer, now),
                )
            return cursor.rowcount == 1

        return await anyio.to_thread.run_sync(lease)

    async def release_lease(self, subject: str, issuer: str) -> None:
        def release() -> None:
            with self._connect() as db:
                db.execute(
                    "UPDATE token_grants SET lease_until = 0 WHERE subject = ? AND issuer = ?", (subject, issuer)
                )

        await anyio.to_thread.run_sync(release)

    def _decrypt(self, subject: str, issuer: str, key_id: str, nonce: bytes, ciphertext: bytes) -> StoredGrant | None:
        """The grant in a row; None if no configured key opens it (a removed key, or a tampered row)."""
        plaintext = self._ring.open(key_id, nonce, ciphertext, (subject, issuer))
        if plaintext is None:
            return None
        values = json.loads(plaintext)
        return StoredGrant(
            access_token=str(values["access_token"]),
            refresh_token=values["refresh_token"],
            expires_at=float(values["expires_at"]),
            scope=str(values["scope"]),
        )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # Autocommit: each statement is its own transaction; SQLite's locking orders writers across processes.
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            yield db
        finally:
            db.close()
