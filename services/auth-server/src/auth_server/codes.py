"""Authorization codes: short-lived, single-use, bound to client, redirect URI and PKCE challenge."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from dataclasses import dataclass, replace

from auth_server.errors import OAuthError
from auth_server.tokens import RefreshTokenStore, token_digest

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
    dpop_jkt: str | None = None  # RFC 9449 §10: only a proof by this key redeems the code (i22)


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
    """Codes by digest. A redeemed code is remembered, so a replay also revokes the grant it started."""

    def __init__(self, lifetime_seconds: int, refresh_tokens: RefreshTokenStore) -> None:
        self.lifetime_seconds = lifetime_seconds
        self._refresh_tokens = refresh_tokens
        self._pending: dict[str, AuthorizationGrant] = {}
        # digest of a redeemed code -> (refresh family it started, if any; when to forget the code)
        self._redeemed: dict[str, tuple[str | None, float]] = {}

    def issue(self, grant: AuthorizationGrant) -> str:
        """Store `grant` (its expiry is set here) under a new random code."""
        self._sweep()
        code = secrets.token_urlsafe(32)
        self._pending[token_digest(code)] = replace(grant, expires_at=time.time() + self.lifetime_seconds)
        return code

    def redeem(self, code: str, client_id: str) -> tuple[str, AuthorizationGrant]:
        """Consume `code` (whatever happens next, it cannot be used again); return its digest and grant.

        Raises invalid_grant for an unknown, expired, replayed or another client's code. A replay
        revokes the refresh tokens the first redemption produced (RFC 6749 §4.1.2).
        """
        digest = token_digest(code)
        invalid = OAuthError("invalid_grant", "The authorization code is invalid, expired or already used")
        if digest in self._redeemed:
            family_id, forget_at = self._redeemed[digest]
            if family_id is not None:
                self._refresh_tokens.revoke_family(family_id, forget_at)
            raise invalid
        grant = self._pending.pop(digest, None)
        if grant is None:
            raise invalid
        self._redeemed[digest] = (None, grant.expires_at + self.lifetime_seconds)
        if grant.client_id != client_id or time.time() >= grant.expires_at:
            raise invalid
        return digest, grant

    def record_family(self, digest: str, family_id: str, forget_at: float) -> None:
        """Remember which refresh family a redeemed code started, until that family expires."""
        self._redeemed[digest] = (family_id, forget_at)

    def _sweep(self) -> None:
        now = time.time()
        self._pending = {digest: grant for digest, grant in self._pending.items() if grant.expires_at > now}
        self._redeemed = {digest: entry for digest, entry in self._redeemed.items() if entry[1] > now}
