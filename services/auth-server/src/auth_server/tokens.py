"""Mint RFC 9068 JWT access tokens, verify our own (for token exchange), and keep rotating refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import jwt

from auth_server.errors import OAuthError
from auth_server.keys import SIGNING_ALGORITHM, KeyStore

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - the RFC 9068 JOSE `typ`, not a secret


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str
    expires_in: int
    scopes: tuple[str, ...]
    jkt: str | None = None  # the DPoP key it is bound to (token_type DPoP), if any


class AccessTokenIssuer:
    """Signs access tokens with the keystore's current key: header typ at+jwt + kid; RFC 9068 claims."""

    def __init__(self, issuer: str, keystore: KeyStore, lifetime_seconds: int) -> None:
        self.issuer = issuer
        self.keystore = keystore
        self.lifetime_seconds = lifetime_seconds

    def issue(
        self,
        *,
        subject: str,
        client_id: str,
        audiences: tuple[str, ...],
        scopes: tuple[str, ...],
        actor: Mapping[str, Any] | None = None,
        not_after: int | None = None,
        jkt: str | None = None,
    ) -> IssuedAccessToken:
        """A signed token; `not_after` caps its expiry (an exchanged token never outlives its subject token);
        `jkt` binds it to a DPoP key (RFC 9449 §6.1, `cnf.jkt`)."""
        now = int(time.time())
        expires_at = now + self.lifetime_seconds
        if not_after is not None:
            expires_at = min(expires_at, not_after)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audiences[0] if len(audiences) == 1 else list(audiences),
            "exp": expires_at,
            "iat": now,
            "nbf": now,
            "jti": str(uuid.uuid4()),
            "client_id": client_id,
            "scope": " ".join(scopes),
        }
        if actor is not None:
            claims["act"] = dict(actor)
        if jkt is not None:
            claims["cnf"] = {"jkt": jkt}
        key = self.keystore.signing_key()
        token = jwt.encode(
            claims,
            key.private_key,
            algorithm=SIGNING_ALGORITHM,
            headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE},
        )
        return IssuedAccessToken(token=token, expires_in=max(expires_at - now, 0), scopes=scopes, jkt=jkt)

    def verify_own(self, token: str) -> dict[str, Any]:
        """Claims of an unexpired access token this server signed; raises ValueError otherwise.

        Checks the key (a published kid), signature, `typ`, `iss` and `exp`. The audience is the
        caller's policy decision, so it is returned, not checked.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise ValueError("not a JWT") from None
        if str(header.get("typ", "")).lower() not in (ACCESS_TOKEN_TYPE, "application/at+jwt"):
            raise ValueError("not an access token (typ)")
        public_key = self.keystore.public_key(str(header.get("kid", "")))
        if public_key is None:
            raise ValueError("unknown signing key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                public_key,
                algorithms=[SIGNING_ALGORITHM],
                issuer=self.issuer,
                options={"require": ["iss", "sub", "exp", "iat", "aud", "client_id"], "verify_aud": False},
            )
        except jwt.InvalidTokenError as error:
            raise ValueError(f"invalid token: {type(error).__name__}") from None
        return claims


@dataclass(frozen=True)
class RefreshRecord:
    """What a refresh token stands for. A family is one user grant; every rotation stays in it."""

    client_id: str
    subject: str
    resource: str  # resource name
    scopes: tuple[str, ...]
    family_id: str
    expires_at: float
    used: bool = False
    # A public client's refresh token is bound to the DPoP key it was issued with (RFC 9449 §5); i22 adds this.
    jkt: str | None = None


def token_digest(value: str) -> str:
    """Opaque tokens and codes are stored by digest only, so memory holds nothing presentable."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class RefreshTokenStore:
    """Opaque, single-use refresh tokens (rotation). Presenting a used one revokes its whole family."""

    _SWEEP_INTERVAL_SECONDS = 60.0

    def __init__(self) -> None:
        self._records: dict[str, RefreshRecord] = {}
        self._revoked_families: dict[str, float] = {}
        self._last_sweep = time.monotonic()

    def issue(
        self,
        *,
        client_id: str,
        subject: str,
        resource: str,
        scopes: tuple[str, ...],
        expires_at: float,
        jkt: str | None = None,
    ) -> tuple[str, str]:
        """A new grant: the first refresh token of a fresh family (bound to DPoP key `jkt` if given)."""
        family_id = secrets.token_hex(16)
        record = RefreshRecord(client_id, subject, resource, scopes, family_id, expires_at, jkt=jkt)
        return self._store(record), family_id

    def lookup(self, token: str, client_id: str) -> RefreshRecord:
        """What `token` stands for, if `client_id` may redeem it now; raises invalid_grant otherwise.

        A token that was already rotated is a replay (RFC 9700 §4.14.2): the client or an attacker holds a
        stolen copy, so the whole grant is revoked.
        """
        record = self._records.get(token_digest(token))
        invalid = OAuthError("invalid_grant", "The refresh token is invalid, expired or revoked")
        if record is None or record.client_id != client_id or record.family_id in self._revoked_families:
            raise invalid
        if record.used:
            self.revoke_family(record.family_id, record.expires_at)
            raise OAuthError("invalid_grant", "The refresh token was already used; the grant is revoked")
        if time.time() >= record.expires_at:
            raise invalid
        return record

    def rotate(self, token: str, record: RefreshRecord, scopes: tuple[str, ...]) -> str:
        """Mark `token` used and return its successor: same family and expiry; scopes may only narrow."""
        self._records[token_digest(token)] = replace(record, used=True)
        return self._store(replace(record, scopes=scopes, used=False))

    def revoke_family(self, family_id: str, until: float) -> None:
        self._revoked_families[family_id] = until

    def revoke(self, token: str, client_id: str) -> bool:
        """RFC 7009: end the grant `token` belongs to, if it was issued to `client_id`; False if it was not."""
        record = self._records.get(token_digest(token))
        if record is None or record.client_id != client_id:
            return False
        self.revoke_family(record.family_id, record.expires_at)
        return True

    def _store(self, record: RefreshRecord) -> str:
        self._sweep()
        token = secrets.token_urlsafe(32)
        self._records[token_digest(token)] = record
        return token

    def _sweep(self) -> None:
        if time.monotonic() - self._last_sweep < self._SWEEP_INTERVAL_SECONDS:
            return
        self._last_sweep = time.monotonic()
        now = time.time()
        self._records = {digest: rec for digest, rec in self._records.items() if rec.expires_at > now}
        self._revoked_families = {family: until for family, until in self._revoked_families.items() if until > now}
