"""Authorization requests between the login and consent pages, and the CSRF values that protect those forms."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from auth_server.quotas import OwnedTable, owner_of_address

# The browser-binding cookie: the forms' CSRF values are derived from it, so a form only works in the
# browser that loaded it (an attacker's page can neither read the cookie nor forge the value).
BROWSER_COOKIE = "auth_server_browser"


@dataclass
class PendingAuthorization:
    """A validated /authorize request; `subject` is set once the user has signed in."""

    request_id: str
    client_id: str
    redirect_uri: str
    redirect_uri_in_request: bool
    state: str | None
    code_challenge: str
    resource: str  # resource name
    scopes: tuple[str, ...]
    expires_at: float
    subject: str | None = None
    dpop_jkt: str | None = None  # RFC 9449 §10: the DPoP key the code will be bound to (i22)


class PendingAuthorizations:
    """In-memory, short-lived (10 minutes by default) and bounded, in all and per client address.

    A sign-in in progress is an `OwnedTable` entry (quotas.py) owned by the address that sent /authorize.
    An address past `max_per_address` loses its own oldest unfinished sign-in; a full table loses one of
    the address holding the most, one not yet signed in first. So a flood of /authorize requests from a
    few addresses evicts their own entries, and a user from another address can always start (and, unless
    the table is flooded by at least as many addresses as it holds entries, finish) a sign-in.
    """

    def __init__(self, lifetime_seconds: float = 600.0, max_entries: int = 10_000, max_per_address: int = 100) -> None:
        self._lifetime_seconds = lifetime_seconds
        self._entries: OwnedTable[str, PendingAuthorization] = OwnedTable(
            max_entries=max_entries,
            max_per_owner=max_per_address,
            rank=lambda entry: 0 if entry.subject is None else 1,
            expired=lambda entry, now: entry.expires_at <= now,
        )

    def create(
        self,
        *,
        address: str,
        client_id: str,
        redirect_uri: str,
        redirect_uri_in_request: bool,
        state: str | None,
        code_challenge: str,
        resource: str,
        scopes: tuple[str, ...],
    ) -> PendingAuthorization:
        """A new pending request from client `address`, evicting under the class's policy if need be."""
        now = time.time()
        entry = PendingAuthorization(
            request_id=secrets.token_urlsafe(24),
            client_id=client_id,
            redirect_uri=redirect_uri,
            redirect_uri_in_request=redirect_uri_in_request,
            state=state,
            code_challenge=code_challenge,
            resource=resource,
            scopes=scopes,
            expires_at=now + self._lifetime_seconds,
        )
        self._entries.put(entry.request_id, entry, owner_of_address(address), now)
        return entry

    def get(self, request_id: str) -> PendingAuthorization | None:
        return self._entries.get(request_id, time.time())

    def discard(self, request_id: str) -> None:
        self._entries.pop(request_id)


class CsrfSigner:
    """CSRF value = HMAC(server key, step | request id | browser nonce): per request, per step, per browser."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    @staticmethod
    def new_browser_nonce() -> str:
        return secrets.token_urlsafe(24)

    def value(self, step: str, request_id: str, browser_nonce: str) -> str:
        message = f"{step}|{request_id}|{browser_nonce}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def is_valid(self, presented: str, step: str, request_id: str, browser_nonce: str | None) -> bool:
        if not browser_nonce or not presented:
            return False
        return hmac.compare_digest(presented, self.value(step, request_id, browser_nonce))
