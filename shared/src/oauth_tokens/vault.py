"""An encrypted token vault: one user's tokens at one third party, AES-GCM encrypted at rest in SQL.

A service that acts in its users' own accounts elsewhere (pattern 4) keeps each user's grant there, the
refresh token and the current access token, under (user `sub`, third-party issuer). Nothing readable is
stored: each row is AES-256-GCM under a key from settings, with the row's identity as associated data,
so a ciphertext moved to another user's row does not decrypt. Keys are `key-id:key` pairs; the first
encrypts and every one decrypts, so a key is rotated by putting a new one first. `KeyRing` is that
encryption on its own, for other secrets a service must keep a while (pattern 4's PKCE verifier and state).

The grants live in the service's database (`oauth_tokens.service_database`: SQLite by default,
PostgreSQL with DATABASE_URL), table `token_grants` (`TOKEN_GRANTS`; the service's Alembic revision
creates it). Every write bumps the row's `version`. Several replicas share the table: a refresh takes a
lease on the row *at the version it read* (`try_lease`), so only one replica redeems a refresh token and
a replica that read the row before another stored the rotated grant can never take the lease and replay
the old one (`oauth_tokens.grant_refresh` is that protocol).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BeforeValidator
from pydantic_settings import NoDecode
from sqlalchemy import Column, Float, Integer, LargeBinary, MetaData, Table, Text, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from oauth_tokens.service_database import ServiceDatabase

__all__ = [
    "TOKEN_GRANTS",
    "KeyRing",
    "StoredGrant",
    "TokenVault",
    "VaultEntry",
    "VaultKey",
    "VaultKeys",
    "parse_vault_keys",
]

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_NONCE_BYTES = 12
TOKEN_GRANTS = Table(
    "token_grants",
    MetaData(),
    Column("subject", Text, primary_key=True),
    Column("issuer", Text, primary_key=True),
    Column("key_id", Text, nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("lease_until", Float, nullable=False, default=0.0),
    Column("version", Integer, nullable=False, default=0),
)


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
    # RFC 9449: "DPoP" when the access token is bound to the key whose thumbprint is `dpop_jkt` (every use
    # needs a proof by it), "Bearer" otherwise.
    token_type: str = "Bearer"  # noqa: S105 - a type name
    dpop_jkt: str | None = None

    def expires_within(self, seconds: float) -> bool:
        return self.expires_at - time.time() <= seconds

    def bound_to(self, jkt: str | None) -> bool:
        """Whether this grant's access token is usable by a caller holding DPoP key `jkt` (None: no key, bearer)."""
        if jkt is None:
            return self.token_type.lower() != "dpop"
        return self.token_type.lower() == "dpop" and self.dpop_jkt == jkt


@dataclass(frozen=True)
class VaultEntry:
    """A stored grant and the row's version (bumped by every `put`), for a lease at that version."""

    grant: StoredGrant
    version: int


class TokenVault:
    """Grants by (subject, issuer) in the service's database, encrypted; replicas share it."""

    def __init__(self, database: ServiceDatabase, keys: Sequence[VaultKey]) -> None:
        if not keys:
            raise ValueError("TokenVault needs at least one key")
        self.database = database
        self._ring = KeyRing(keys)

    async def read(self, subject: str, issuer: str) -> VaultEntry | None:
        """The grant with its row version; None if there is none or no configured key opens it."""
        query = select(TOKEN_GRANTS.c.key_id, TOKEN_GRANTS.c.nonce, TOKEN_GRANTS.c.ciphertext, TOKEN_GRANTS.c.version)
        async with self.database.transaction() as db:
            row = (await db.execute(query.where(*_row(subject, issuer)))).first()
        if row is None:
            return None
        grant = self._decrypt(subject, issuer, row.key_id, row.nonce, row.ciphertext)
        return None if grant is None else VaultEntry(grant, int(row.version))

    async def get(self, subject: str, issuer: str) -> StoredGrant | None:
        entry = await self.read(subject, issuer)
        return None if entry is None else entry.grant

    async def put(self, subject: str, issuer: str, grant: StoredGrant) -> None:
        """Store `grant` (replacing any earlier one), bump the version and release a refresh lease, atomically."""
        plaintext = json.dumps(
            {
                "access_token": grant.access_token,
                "refresh_token": grant.refresh_token,
                "expires_at": grant.expires_at,
                "scope": grant.scope,
                "token_type": grant.token_type,
                "dpop_jkt": grant.dpop_jkt,
            }
        ).encode()
        key_id, nonce, ciphertext = self._ring.seal(plaintext, (subject, issuer))
        values = {
            "key_id": key_id,
            "nonce": nonce,
            "ciphertext": ciphertext,
            "updated_at": time.time(),
            "lease_until": 0.0,
        }
        try:
            async with self.database.transaction() as db:
                if not await _update(db, subject, issuer, values):
                    await db.execute(insert(TOKEN_GRANTS).values(subject=subject, issuer=issuer, version=0, **values))
        except IntegrityError:  # another replica inserted the row between our update and insert
            async with self.database.transaction() as db:
                await _update(db, subject, issuer, values)

    async def delete(self, subject: str, issuer: str) -> StoredGrant | None:
        """Remove the grant; returns what was stored (to revoke it at the issuer), or None."""
        statement = delete(TOKEN_GRANTS).where(*_row(subject, issuer))
        columns = (TOKEN_GRANTS.c.key_id, TOKEN_GRANTS.c.nonce, TOKEN_GRANTS.c.ciphertext)
        async with self.database.transaction() as db:
            row = (await db.execute(statement.returning(*columns))).first()
        return None if row is None else self._decrypt(subject, issuer, row.key_id, row.nonce, row.ciphertext)

    async def try_lease(self, subject: str, issuer: str, seconds: float, *, version: int) -> bool:
        """Take the row's refresh lease for `seconds`: only if the row is still at `version` (nobody stored a
        newer grant since it was read) and no other holder's lease is running."""
        now = time.time()
        statement = (
            update(TOKEN_GRANTS)
            .where(*_row(subject, issuer), TOKEN_GRANTS.c.version == version, TOKEN_GRANTS.c.lease_until < now)
            .values(lease_until=now + seconds)
        )
        async with self.database.transaction() as db:
            return (await db.execute(statement)).rowcount == 1

    async def release_lease(self, subject: str, issuer: str, *, version: int) -> None:
        """Give up a lease taken at `version` without storing a new grant (the refresh failed)."""
        statement = (
            update(TOKEN_GRANTS)
            .where(*_row(subject, issuer), TOKEN_GRANTS.c.version == version)
            .values(lease_until=0.0)
        )
        async with self.database.transaction() as db:
            await db.execute(statement)

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
            # Rows stored before DPoP was recorded hold bearer tokens.
            token_type=str(values.get("token_type", "Bearer")),
            dpop_jkt=values.get("dpop_jkt"),
        )


def _row(subject: str, issuer: str) -> tuple[Any, Any]:
    return TOKEN_GRANTS.c.subject == subject, TOKEN_GRANTS.c.issuer == issuer


async def _update(db: AsyncConnection, subject: str, issuer: str, values: dict[str, Any]) -> bool:
    """Overwrite an existing row, bumping its version; False if there is none (then the caller inserts)."""
    statement = update(TOKEN_GRANTS).where(*_row(subject, issuer)).values(version=TOKEN_GRANTS.c.version + 1, **values)
    return (await db.execute(statement)).rowcount == 1
