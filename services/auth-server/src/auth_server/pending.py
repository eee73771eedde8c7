"""Authorization requests between the login and consent pages (in the database), and the CSRF values that
protect those forms (keyed by AUTH_SERVER_STATE_KEYS)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from oauth_tokens.service_database import ServiceDatabase
from sqlalchemy import delete, insert, select, update

from auth_server.owned_rows import make_room
from auth_server.quotas import owner_of_address
from auth_server.tables import pending_sign_ins

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
    dpop_jkt: str | None = None  # RFC 9449 §10: the DPoP key the code will be bound to


class PendingAuthorizations:
    """Sign-ins in progress, in the database (any replica continues one), short-lived (10 minutes by
    default) and bounded, in all and per client address.

    Eviction follows quotas.OwnedTable's policy (owned_rows.py), owned by the address that sent /authorize:
    an address past `max_per_address` loses its own oldest unfinished sign-in; a full table loses one of
    the address holding the most, one not yet signed in first. So a flood of /authorize requests from a
    few addresses evicts their own entries, and a user from another address can always start (and, unless
    the table is flooded by at least as many addresses as it holds entries, finish) a sign-in.
    """

    def __init__(
        self,
        database: ServiceDatabase,
        lifetime_seconds: float = 600.0,
        max_entries: int = 10_000,
        max_per_address: int = 100,
    ) -> None:
        self._database = database
        self._lifetime_seconds = lifetime_seconds
        self._max_entries = max_entries
        self._max_per_address = max_per_address

    async def create(
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
        dpop_jkt: str | None = None,
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
            dpop_jkt=dpop_jkt,
        )
        owner = owner_of_address(address)
        async with self._database.transaction() as connection:
            await make_room(
                connection,
                pending_sign_ins,
                owner=owner,
                rank=0,
                expired=pending_sign_ins.c.expires_at <= now,
                max_entries=self._max_entries,
                max_per_owner=self._max_per_address,
            )
            values = {**asdict(entry), "scopes": " ".join(scopes)}
            await connection.execute(insert(pending_sign_ins).values(owner=owner, rank=0, **values))
        return entry

    async def get(self, request_id: str) -> PendingAuthorization | None:
        """The unexpired sign-in `request_id`, or None."""
        query = select(pending_sign_ins).where(
            pending_sign_ins.c.request_id == request_id, pending_sign_ins.c.expires_at > time.time()
        )
        async with self._database.transaction() as connection:
            row = (await connection.execute(query)).one_or_none()
        if row is None:
            return None
        return PendingAuthorization(
            request_id=row.request_id,
            client_id=row.client_id,
            redirect_uri=row.redirect_uri,
            redirect_uri_in_request=row.redirect_uri_in_request,
            state=row.state,
            code_challenge=row.code_challenge,
            resource=row.resource,
            scopes=tuple(row.scopes.split()),
            expires_at=row.expires_at,
            subject=row.subject,
            dpop_jkt=row.dpop_jkt,
        )

    async def sign_in(self, pending: PendingAuthorization, subject: str) -> None:
        """The user `subject` signed in: the request now waits for the consent decision."""
        async with self._database.transaction() as connection:
            await connection.execute(
                update(pending_sign_ins)
                .where(pending_sign_ins.c.request_id == pending.request_id)
                .values(subject=subject, rank=1)
            )
        pending.subject = subject

    async def take(self, request_id: str) -> bool:
        """Remove a signed-in request for its one decision: True for exactly one caller across replicas."""
        finished = delete(pending_sign_ins).where(
            pending_sign_ins.c.request_id == request_id, pending_sign_ins.c.subject.is_not(None)
        )
        async with self._database.transaction() as connection:
            return bool((await connection.execute(finished)).rowcount == 1)


class CsrfSigner:
    """CSRF value = HMAC(key, step | request id | browser nonce): per request, per step, per browser.

    The keys are AUTH_SERVER_STATE_KEYS, shared by every replica: the first signs, every one verifies, so
    a key can be rotated in (put first) while forms signed with the previous one still post.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("CsrfSigner needs at least one key")
        self._keys = [key.encode("utf-8") for key in keys]

    @staticmethod
    def new_browser_nonce() -> str:
        return secrets.token_urlsafe(24)

    def value(self, step: str, request_id: str, browser_nonce: str) -> str:
        return self._value(self._keys[0], step, request_id, browser_nonce)

    def is_valid(self, presented: str, step: str, request_id: str, browser_nonce: str | None) -> bool:
        if not browser_nonce or not presented:
            return False
        matches = [
            hmac.compare_digest(presented, self._value(key, step, request_id, browser_nonce)) for key in self._keys
        ]
        return any(matches)

    @staticmethod
    def _value(key: bytes, step: str, request_id: str, browser_nonce: str) -> str:
        message = f"{step}|{request_id}|{browser_nonce}".encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()
