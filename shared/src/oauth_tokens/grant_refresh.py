"""One refresh per stored grant across every replica: the refresh-token rotation race, solved on the vault.

A provider that rotates refresh tokens treats a second use of a redeemed one as theft and revokes the
whole grant. Two replicas that find the same grant due at once must therefore send ONE refresh between
them, and the other must use its result. `refresh_once` does that with the vault row's lease and version
(`TokenVault.try_lease`):

1. Read the row (grant + version). Another replica stored a newer grant since the caller first looked
   (the version moved) and it is still valid: use it. Not due yet: use it.
2. Take the lease *at that version*. A replica that read the row before another stored the rotated grant
   cannot take it (the version moved), so it never redeems the old refresh token; it goes back to 1.
3. Lease held by another replica: poll the row until that replica stores the new grant (then step 1
   returns it) or `wait_seconds` have passed (`RefreshInProgressElsewhereError`: a clear "retry shortly",
   within the caller's deadline, never a hang). The lease outlives the holder's refresh deadline, so it
   never expires while a refresh is still in flight.
4. Holding the lease: redeem the refresh token, store the rotated grant (which bumps the version and
   frees the lease in one statement); on failure release the lease and re-raise.

Inside one process, put `oauth_tokens.single_flight.KeyedSingleFlight` in front, so concurrent calls of
one user share one database round of this.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio

from oauth_tokens.errors import DatabaseUnavailableError, OAuthTokensError
from oauth_tokens.vault import StoredGrant, TokenVault

__all__ = ["RefreshInProgressElsewhereError", "refresh_once"]

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.1


class RefreshInProgressElsewhereError(OAuthTokensError):
    """Another replica holds the refresh lease and did not store a new grant within the wait."""


async def refresh_once(
    vault: TokenVault,
    subject: str,
    issuer: str,
    refresh: Callable[[str], Awaitable[StoredGrant]],
    *,
    margin_seconds: float,
    wait_seconds: float,
    lease_seconds: float,
    seen_version: int | None = None,
) -> StoredGrant | None:
    """The grant to use for (subject, issuer), refreshed by `refresh(refresh_token)` only if this replica
    won the lease; None if there is no grant (or one without a refresh token, which is deleted).

    `seen_version` is the row version the caller read before deciding to refresh, if any: a grant stored
    after it by someone else is used even inside the margin.
    """
    give_up_at = anyio.current_time() + wait_seconds
    while True:
        entry = await vault.read(subject, issuer)
        if entry is None:
            return None
        grant = entry.grant
        if seen_version is None:
            seen_version = entry.version
        if entry.version != seen_version and not grant.expires_within(0):
            return grant  # refreshed elsewhere since the caller looked: the new one, not another refresh
        if not grant.expires_within(margin_seconds):
            return grant
        if grant.refresh_token is None:
            await vault.delete(subject, issuer)
            return None
        if await vault.try_lease(subject, issuer, lease_seconds, version=entry.version):
            break
        if anyio.current_time() >= give_up_at:
            raise RefreshInProgressElsewhereError("another replica is refreshing this grant")
        await anyio.sleep(POLL_SECONDS)
    try:
        refreshed = await refresh(grant.refresh_token)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _release(vault, subject, issuer, entry.version)
        raise
    await vault.put(subject, issuer, refreshed)  # the rotated grant; bumps the version, frees the lease
    return refreshed


async def _release(vault: TokenVault, subject: str, issuer: str, version: int) -> None:
    try:
        await vault.release_lease(subject, issuer, version=version)
    except DatabaseUnavailableError:
        # The lease then runs out by itself; the refresh's own error is the one the caller needs.
        logger.warning("Could not release a refresh lease (database unavailable); it expires by itself")
