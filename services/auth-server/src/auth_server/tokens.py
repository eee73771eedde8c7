"""Mint RFC 9068 JWT access tokens and verify our own (for token exchange); digests of opaque tokens.

Refresh tokens live in the database (refresh_tokens.py)."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

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


def token_digest(value: str) -> str:
    """Opaque tokens and codes are stored by digest only, so memory holds nothing presentable."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
