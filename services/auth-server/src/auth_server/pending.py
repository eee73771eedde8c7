"""Authorization requests between the login and consent pages, and the CSRF values that protect those forms."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from dataclasses import dataclass

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


class TooManyPending(Exception):
    """The store is full; `retry_after` seconds from now the oldest entry expires."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many sign-ins in progress")
        self.retry_after = retry_after


class PendingAuthorizations:
    """In-memory, short-lived (10 minutes by default) and bounded: when full, new requests are refused."""

    def __init__(self, lifetime_seconds: float = 600.0, max_entries: int = 10_000) -> None:
        self._lifetime_seconds = lifetime_seconds
        self._max_entries = max_entries
        self._entries: dict[str, PendingAuthorization] = {}  # oldest first: all live equally long

    def create(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        redirect_uri_in_request: bool,
        state: str | None,
        code_challenge: str,
        resource: str,
        scopes: tuple[str, ...],
    ) -> PendingAuthorization:
        """A new pending request; raises TooManyPending (never evicts: they may be real users' sign-ins)."""
        now = time.time()
        while self._entries and next(iter(self._entries.values())).expires_at <= now:
            del self._entries[next(iter(self._entries))]
        if len(self._entries) >= self._max_entries:
            oldest = next(iter(self._entries.values()))
            raise TooManyPending(max(1, math.ceil(oldest.expires_at - now)))
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
        self._entries[entry.request_id] = entry
        return entry

    def get(self, request_id: str) -> PendingAuthorization | None:
        entry = self._entries.get(request_id)
        if entry is None or entry.expires_at <= time.time():
            return None
        return entry

    def discard(self, request_id: str) -> None:
        self._entries.pop(request_id, None)


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
