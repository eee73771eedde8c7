"""Pattern 4, step 2 of 3: each user's calendar grant, kept and refreshed.

`CalendarAccounts` keeps each user's grant in the encrypted `TokenVault`, under (user `sub`, provider
issuer), and hands out a fresh access token, refreshed ahead of expiry in one flight per user grant:
concurrent callers of one user share the one refresh in progress and its result or error
(`oauth_tokens.single_flight.KeyedSingleFlight`, which forgets a user once no call of theirs is waiting,
so the map never outgrows the calls in progress), and across replicas one refresh per grant on the vault
row's versioned lease (`oauth_tokens.grant_refresh.refresh_once`): the replica that wins it redeems the
refresh token, the others wait (at most one downstream deadline) and use the grant it stores, so a
rotated-away refresh token is never sent again. A refresh against a provider that hangs therefore costs
every waiter one deadline together, not one deadline each in turn. A refused refresh (`invalid_grant`)
deletes the grant, so the tool asks the user to connect again.

DPoP (CRM_MCP_DPOP, docs/dpop.md): the grant is stored with its binding (`StoredGrant.token_type`,
`dpop_jkt`). A stored grant bound otherwise than crm-mcp's key now says (DPoP turned on or off, the key
replaced) is refreshed before use, so it is never sent where it would be refused.
"""

from __future__ import annotations

import logging
import math

from oauth_tokens.grant_refresh import RefreshInProgressElsewhereError, refresh_once
from oauth_tokens.single_flight import KeyedSingleFlight
from oauth_tokens.vault import StoredGrant, TokenVault

from crm_mcp.downstream import DownstreamError
from crm_mcp.third_party_calendar.api_client import CalendarToken
from crm_mcp.third_party_calendar.provider import CalendarProvider, GrantRevokedError

logger = logging.getLogger(__name__)


class CalendarAccounts:
    """Each user's calendar grant, from the vault, refreshed ahead of expiry."""

    def __init__(
        self, provider: CalendarProvider, vault: TokenVault, refresh_margin_seconds: float, deadline_seconds: float
    ) -> None:
        self.provider = provider
        self.vault = vault
        self._margin = refresh_margin_seconds
        # Another replica's refresh is waited for at most one downstream deadline; the lease outlives the
        # holder's own refresh (one deadline) with room to store its result.
        self._wait_seconds = deadline_seconds
        self._lease_seconds = 2 * deadline_seconds + 5
        # No failure back-off: a refresh that failed is tried again by the next call, not remembered.
        self._refreshes: KeyedSingleFlight[str, CalendarToken | None] = KeyedSingleFlight()

    async def connect(self, subject: str, grant: StoredGrant) -> None:
        await self.vault.put(subject, self.provider.issuer, grant)
        logger.info("Calendar connected for %s", subject)

    async def access_token(self, subject: str) -> CalendarToken | None:
        """A usable calendar access token for `subject`, or None when they must connect (again)."""
        entry = await self.vault.read(subject, self.provider.issuer)
        if entry is None:
            return None
        bound_right = entry.grant.bound_to(self.provider.dpop_jkt)
        if bound_right and not entry.grant.expires_within(self._margin):
            return _token_of(entry.grant)
        return await self._refreshes.run(subject, lambda: self._refresh(subject, entry.version, bound_right))

    async def _refresh(self, subject: str, seen_version: int, bound_right: bool) -> CalendarToken | None:
        issuer = self.provider.issuer
        try:
            grant = await refresh_once(
                self.vault,
                subject,
                issuer,
                self.provider.refresh,
                # A grant bound otherwise than this key is due whatever its expiry (the module docstring).
                margin_seconds=self._margin if bound_right else math.inf,
                wait_seconds=self._wait_seconds,
                lease_seconds=self._lease_seconds,
                seen_version=seen_version,
            )
        except GrantRevokedError:
            logger.info("Calendar grant of %s was refused on refresh; it is deleted", subject)
            await self.vault.delete(subject, issuer)
            return None
        except RefreshInProgressElsewhereError as exc:
            raise DownstreamError(
                "Another crm-mcp replica is still refreshing your calendar access; try again in a few seconds.",
                retry_after_seconds=int(self._wait_seconds) + 1,
            ) from exc
        return None if grant is None else _token_of(grant)

    async def disconnect(self, subject: str) -> bool:
        """Revoke the grant at the provider, then delete it; False if there was none.

        Revocation comes first: if the provider cannot be reached, the grant is kept (and the ToolError
        says so), so asking again still revokes it rather than leaving it alive at the provider, forgotten.
        """
        grant = await self.vault.get(subject, self.provider.issuer)
        if grant is None:
            return False
        await self.provider.revoke(grant.refresh_token or grant.access_token)
        await self.vault.delete(subject, self.provider.issuer)
        logger.info("Calendar disconnected for %s", subject)
        return True


def _token_of(grant: StoredGrant) -> CalendarToken:
    return CalendarToken(grant.access_token, grant.token_type)
