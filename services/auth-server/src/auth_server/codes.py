"""Authorization codes: short-lived, single-use (across replicas), bound to client, redirect URI and PKCE challenge."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from oauth_tokens.service_database import ServiceDatabase
from sqlalchemy import delete, insert, select, update

from auth_server.errors import OAuthError
from auth_server.refresh_tokens import Sweeper, revoke_family
from auth_server.tables import authorization_codes
from auth_server.tokens import token_digest

# RFC 7636 §4.1: 43-128 characters from the unreserved set.
_CODE_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


@dataclass(frozen=True)
class AuthorizationGrant:
    """What the user approved on the consent page, waiting to be redeemed at the token endpoint."""

    client_id: str
    subject: str
    resource: str  # resource name
    scopes: tuple[str, ...]
    redirect_uri: str
    redirect_uri_in_request: bool  # RFC 6749 §4.1.3: then the token request must repeat it
    code_challenge: str
    expires_at: float = 0.0  # set by AuthorizationCodeStore.issue
    dpop_jkt: str | None = None  # RFC 9449 §10: only a proof by this key redeems the code


def s256_challenge(code_verifier: str) -> str:
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def check_pkce(code_verifier: str | None, code_challenge: str) -> None:
    """Raise unless BASE64URL(SHA256(code_verifier)) equals the challenge sent to /authorize (S256 only)."""
    if not code_verifier:
        raise OAuthError("invalid_request", "code_verifier is required (PKCE)")
    if not _CODE_VERIFIER.fullmatch(code_verifier):
        raise OAuthError("invalid_grant", "PKCE verification failed")
    if not secrets.compare_digest(s256_challenge(code_verifier), code_challenge):
        raise OAuthError("invalid_grant", "PKCE verification failed")


class AuthorizationCodeStore:
    """Codes by digest in the database. Redemption is one conditional UPDATE (`redeemed_at IS NULL`), so a
    code redeems once across every replica; a redeemed code is remembered, so a replay also revokes the grant
    it started (RFC 6749 §4.1.2), whichever of the replay and the recording of that grant comes first.
    """

    def __init__(self, lifetime_seconds: int, database: ServiceDatabase) -> None:
        self.lifetime_seconds = lifetime_seconds
        self._database = database
        self._sweeper = Sweeper()

    async def issue(self, grant: AuthorizationGrant) -> str:
        """Store `grant` (its expiry is set here) under a new random code."""
        code = secrets.token_urlsafe(32)
        expires_at = time.time() + self.lifetime_seconds
        async with self._database.transaction() as connection:
            if self._sweeper.due():
                await connection.execute(
                    delete(authorization_codes).where(authorization_codes.c.forget_at <= time.time())
                )
            await connection.execute(
                insert(authorization_codes).values(
                    digest=token_digest(code),
                    client_id=grant.client_id,
                    subject=grant.subject,
                    resource=grant.resource,
                    scopes=" ".join(grant.scopes),
                    redirect_uri=grant.redirect_uri,
                    redirect_uri_in_request=grant.redirect_uri_in_request,
                    code_challenge=grant.code_challenge,
                    dpop_jkt=grant.dpop_jkt,
                    expires_at=expires_at,
                    replayed=False,
                    forget_at=expires_at + self.lifetime_seconds,
                )
            )
        return code

    async def redeem(self, code: str, client_id: str) -> tuple[str, AuthorizationGrant]:
        """Consume `code` (whatever happens next, it cannot be used again); return its digest and grant.

        Raises invalid_grant for an unknown, expired, replayed or another client's code. A replay
        revokes the refresh tokens the first redemption produced.
        """
        digest = token_digest(code)
        invalid = OAuthError("invalid_grant", "The authorization code is invalid, expired or already used")
        this_code = authorization_codes.c.digest == digest
        consume = update(authorization_codes).where(this_code, authorization_codes.c.redeemed_at.is_(None))
        async with self._database.transaction() as connection:
            won = (await connection.execute(consume.values(redeemed_at=time.time()))).rowcount == 1
            if not won:  # a replay (or an unknown code): flag it before reading which grant it started, the
                # order record_family mirrors, so one of the two always sees the other's write
                await connection.execute(update(authorization_codes).where(this_code).values(replayed=True))
            row = (await connection.execute(select(authorization_codes).where(this_code))).one_or_none()
            if row is not None and not won and row.family_id is not None:
                await revoke_family(connection, row.family_id)
        if row is None or not won or row.client_id != client_id or time.time() >= row.expires_at:
            raise invalid
        return digest, AuthorizationGrant(
            client_id=row.client_id,
            subject=row.subject,
            resource=row.resource,
            scopes=tuple(row.scopes.split()),
            redirect_uri=row.redirect_uri,
            redirect_uri_in_request=row.redirect_uri_in_request,
            code_challenge=row.code_challenge,
            expires_at=row.expires_at,
            dpop_jkt=row.dpop_jkt,
        )

    async def record_family(self, digest: str, family_id: str, forget_at: float) -> None:
        """Remember which refresh family a redeemed code started, until that family expires; if the code
        was replayed meanwhile, the family is revoked at once."""
        this_code = authorization_codes.c.digest == digest
        async with self._database.transaction() as connection:
            await connection.execute(
                update(authorization_codes).where(this_code).values(family_id=family_id, forget_at=forget_at)
            )
            replayed = (await connection.execute(select(authorization_codes.c.replayed).where(this_code))).scalar()
            if replayed:
                await revoke_family(connection, family_id)
