"""Rotating refresh tokens in the database, race-free across replicas (RFC 9700 §4.14.2).

A family is one user grant; each rotation adds its successor to the family. Rotation marks the presented
token used with ONE conditional UPDATE (`used = false` → `true`, only while the family is not revoked):
of two concurrent uses of one token, on any replicas, exactly one updates the row and gets the successor;
the other finds it used, which is reuse, and revokes the family (so the winner's new token dies too: the
client or an attacker held a copy). Tokens are stored by digest only.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace

from oauth_tokens.service_database import ServiceDatabase
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from auth_server.errors import OAuthError
from auth_server.tables import refresh_families, refresh_tokens
from auth_server.tokens import token_digest


@dataclass(frozen=True)
class RefreshRecord:
    """What a refresh token stands for."""

    client_id: str
    subject: str
    resource: str  # resource name
    scopes: tuple[str, ...]
    family_id: str
    expires_at: float
    # A public client's refresh token is bound to the DPoP key it was issued with (RFC 9449 §5).
    jkt: str | None = None


def _invalid() -> OAuthError:
    return OAuthError("invalid_grant", "The refresh token is invalid, expired or revoked")


def _reused() -> OAuthError:
    return OAuthError("invalid_grant", "The refresh token was already used; the grant is revoked")


async def revoke_family(connection: AsyncConnection, family_id: str) -> None:
    """End a grant: no token of `family_id` is accepted any more."""
    await connection.execute(
        update(refresh_families)
        .where(refresh_families.c.family_id == family_id, refresh_families.c.revoked_at.is_(None))
        .values(revoked_at=time.time())
    )


# Expired rows are deleted at most this often per store and process (a write path pays for it).
SWEEP_INTERVAL_SECONDS = 60.0


class Sweeper:
    """When a store (this one, codes.py) deletes its expired rows: at most once per SWEEP_INTERVAL_SECONDS."""

    def __init__(self) -> None:
        self._last = float("-inf")

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < SWEEP_INTERVAL_SECONDS:
            return False
        self._last = now
        return True


class RefreshTokenStore:
    """Opaque, single-use refresh tokens (rotation). Presenting a used one revokes its whole family."""

    def __init__(self, database: ServiceDatabase) -> None:
        self._database = database
        self._sweeper = Sweeper()

    async def issue(
        self,
        *,
        client_id: str,
        subject: str,
        resource: str,
        scopes: tuple[str, ...],
        expires_at: float,
        jkt: str | None = None,
    ) -> tuple[str, str]:
        """A new grant: the first refresh token of a fresh family (bound to DPoP key `jkt` if given);
        returns (token, family id)."""
        family_id = secrets.token_hex(16)
        async with self._database.transaction() as connection:
            await self._sweep(connection)
            await connection.execute(
                insert(refresh_families).values(
                    family_id=family_id, client_id=client_id, subject=subject, expires_at=expires_at
                )
            )
            record = RefreshRecord(client_id, subject, resource, scopes, family_id, expires_at, jkt)
            token = await self._store(connection, record)
        return token, family_id

    async def lookup(self, token: str, client_id: str) -> RefreshRecord:
        """What `token` stands for, if `client_id` may redeem it now; raises invalid_grant otherwise.

        A token that was already rotated is a replay: the whole grant is revoked.
        """
        query = (
            select(refresh_tokens, refresh_families.c.revoked_at)
            .join(refresh_families, refresh_families.c.family_id == refresh_tokens.c.family_id)
            .where(refresh_tokens.c.digest == token_digest(token))
        )
        async with self._database.transaction() as connection:
            row = (await connection.execute(query)).one_or_none()
            if row is None or row.client_id != client_id or row.revoked_at is not None:
                raise _invalid()
            if row.used:
                await revoke_family(connection, row.family_id)
        if row.used:
            raise _reused()
        if time.time() >= row.expires_at:
            raise _invalid()
        return RefreshRecord(
            row.client_id, row.subject, row.resource, tuple(row.scopes.split()), row.family_id, row.expires_at, row.jkt
        )

    async def rotate(self, token: str, record: RefreshRecord, scopes: tuple[str, ...]) -> str:
        """Consume `token` and return its successor (same family and expiry; scopes may only narrow).

        The conditional UPDATE is the race's referee; losing it is reuse and revokes the family.
        """
        live_family = select(refresh_families.c.family_id).where(
            refresh_families.c.family_id == record.family_id, refresh_families.c.revoked_at.is_(None)
        )
        consume = (
            update(refresh_tokens)
            .where(
                refresh_tokens.c.digest == token_digest(token),
                refresh_tokens.c.used.is_(False),
                refresh_tokens.c.family_id.in_(live_family),
            )
            .values(used=True)
        )
        async with self._database.transaction() as connection:
            if (await connection.execute(consume)).rowcount == 1:
                successor = replace(record, scopes=scopes)
                return await self._store(connection, successor)
            await revoke_family(connection, record.family_id)  # used meanwhile (reuse), or already revoked
        raise _reused()

    async def revoke(self, token: str, client_id: str) -> bool:
        """RFC 7009: end the grant `token` belongs to, if it was issued to `client_id`; False if it was not."""
        query = select(refresh_tokens.c.family_id, refresh_tokens.c.client_id).where(
            refresh_tokens.c.digest == token_digest(token)
        )
        async with self._database.transaction() as connection:
            row = (await connection.execute(query)).one_or_none()
            if row is None or row.client_id != client_id:
                return False
            await revoke_family(connection, row.family_id)
        return True

    async def _store(self, connection: AsyncConnection, record: RefreshRecord) -> str:
        token = secrets.token_urlsafe(32)
        await connection.execute(
            insert(refresh_tokens).values(
                digest=token_digest(token),
                family_id=record.family_id,
                client_id=record.client_id,
                subject=record.subject,
                resource=record.resource,
                scopes=" ".join(record.scopes),
                expires_at=record.expires_at,
                used=False,
                jkt=record.jkt,
            )
        )
        return token

    async def _sweep(self, connection: AsyncConnection) -> None:
        if self._sweeper.due():
            now = time.time()
            await connection.execute(delete(refresh_tokens).where(refresh_tokens.c.expires_at <= now))
            await connection.execute(delete(refresh_families).where(refresh_families.c.expires_at <= now))
