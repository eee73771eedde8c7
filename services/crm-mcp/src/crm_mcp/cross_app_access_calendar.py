"""Pattern 5 — enterprise-managed cross-app access (SEP-990): the user's calendar token with no browser step.

With CALENDAR_AUTH_MODE=cross-app-access the calendar tools get the user's calendar token this way instead of
pattern 4's consent (the third_party_calendar package): crm-mcp, as its client at the enterprise IdP (the auth-server,
client CRM_MCP_CLIENT_ID), exchanges the user's access token it received for an ID-JAG naming the calendar's
authorization server (`audience` = CALENDAR_AUTH_ISSUER) and calendar-api (`resource`), then presents it there
with the jwt-bearer grant as its client at the calendar (CALENDAR_CLIENT_ID). Both requests go through the
shared `oauth_tokens.id_jag` (each authenticates through its `TokenEndpoint`). The IdP's admin policy decides
whether crm-mcp may do this; the calendar maps the IdP's user to its own. Nothing is stored in the vault.
With CRM_MCP_DPOP the jwt-bearer request carries a proof by crm-mcp's DPoP key and its answer must be
`token_type: DPoP` (the calendar token is bound to that key); the ID-JAG itself is no access token and is
asked for without one.

Cache policy: the calendar token per user `sub` (and resource, scope), kept until
CRM_MCP_CALENDAR_REFRESH_MARGIN_SECONDS before its `expires_in`, at most `MAX_CACHED_USERS` users (the least
recently used goes first); concurrent calls for one user share one pair of requests (single flight), and a
failure is not kept. A cached token outlives a change of policy by at most its lifetime (the calendar's
access_token_seconds); `forget` drops it at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from oauth_tokens import TokenEndpointError
from oauth_tokens.dpop_client import DPoPKey
from oauth_tokens.id_jag import CrossAppAccess, IdJag, redeem_id_jag
from oauth_tokens.single_flight import KeyedSingleFlight
from oauth_tokens.token_endpoint import TokenEndpoint
from oauth_tokens.token_exchange import ExchangedTokenCache, ExchangeKey

from crm_mcp.downstream import DownstreamError
from crm_mcp.settings import Settings

logger = logging.getLogger(__name__)

MAX_CACHED_USERS = 10_000
IDP = "your organisation's identity provider"
CALENDAR_AS = "the calendar provider's authorization server"


class CrossAppCalendarAccess:
    """The calendar token for a user, from an ID-JAG (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        discover_idp_token_url: Callable[[], Awaitable[str]],
        *,
        idp_credential: Mapping[str, Any],
        calendar_credential: Mapping[str, Any],
        dpop_key: DPoPKey | None = None,
    ) -> None:
        """`discover_idp_token_url` finds the IdP's token endpoint when AUTH_TOKEN_URL is empty (RFC 8414).

        The credentials are TokenEndpoint's keyword arguments for crm-mcp's client at each server (its
        secret, or whatever else the shared TokenEndpoint takes), so both hops authenticate as configured."""
        timeout = settings.crm_mcp_downstream_timeout_seconds
        self._settings = settings
        self.access = CrossAppAccess(
            TokenEndpoint(
                settings.auth_token_url,
                settings.crm_mcp_client_id,
                **idp_credential,
                timeout_seconds=timeout,
                discover_token_url=discover_idp_token_url,
                pattern="cross_app_access",
            ),
            TokenEndpoint(
                settings.calendar_token_endpoint,
                settings.calendar_client_id,
                **calendar_credential,
                timeout_seconds=timeout,
                pattern="cross_app_access",
                dpop_key=dpop_key,
            ),
            audience=settings.calendar_auth_issuer,
            resource=settings.calendar_api_audience,
            scope=settings.calendar_scopes,
        )
        self._margin = settings.crm_mcp_calendar_refresh_margin_seconds
        self._cache = ExchangedTokenCache(max_entries=MAX_CACHED_USERS)
        self._flights: KeyedSingleFlight[ExchangeKey, str] = KeyedSingleFlight()

    def _key(self, subject: str) -> ExchangeKey:
        return (subject, self.access.resource, self.access.scope or "")

    async def access_token(self, subject: str) -> str:
        """A calendar token for `subject`, the user of the MCP request being served; a ToolError if refused."""
        key = self._key(subject)
        if (cached := self._cache.fresh(key)) is not None:
            return cached

        async def fetch_once() -> str:
            if (fetched := self._cache.fresh(key)) is not None:  # a flight that just ended stored it
                return fetched
            return await self._fetch(key, subject)

        return await self._flights.run(key, fetch_once)

    def forget(self, subject: str) -> bool:
        """Drop the cached token of `subject` (True if there was one): the next call asks the IdP again."""
        return self._cache.pop(self._key(subject))

    async def aclose(self) -> None:
        await self.access.aclose()

    async def _fetch(self, key: ExchangeKey, subject: str) -> str:
        caller = get_access_token()
        if caller is None:  # the SDK's bearer middleware admits no unauthenticated request
            raise DownstreamError("No user token to exchange for the calendar.")
        id_jag = await self._id_jag(caller.token)
        try:
            answer = await redeem_id_jag(self.access.authorization_server, id_jag)
        except TokenEndpointError as error:
            raise self._calendar_refusal(error, subject) from error
        usable = answer.lifetime - self._margin
        if usable > 0:  # else too close to expiry to keep: used for this call only
            self._cache.store(key, answer.access_token, usable)
        logger.info("Calendar token for %s obtained by cross-app access (ID-JAG)", subject)
        return answer.access_token

    async def _id_jag(self, user_token: str) -> IdJag:
        try:
            return await self.access.id_jag(user_token)
        except TokenEndpointError as error:
            if error.error == "temporarily_unavailable":
                raise DownstreamError(f"{IDP} did not answer; try again later.") from error
            if error.error in ("invalid_target", "invalid_scope", "unauthorized_client"):
                raise DownstreamError(
                    f"{IDP} does not allow crm-mcp to reach your calendar for you ({error.error}: "
                    f"{error.description or 'refused by policy'}). Ask your administrator to allow the client "
                    f"{self._settings.crm_mcp_client_id} ID-JAGs for {self._settings.calendar_auth_issuer} "
                    f"with scope {self._settings.calendar_scopes}."
                ) from error
            raise DownstreamError(f"{IDP} refused to vouch for you to the calendar ({error.error}).") from error

    def _calendar_refusal(self, error: TokenEndpointError, subject: str) -> DownstreamError:
        if error.error == "temporarily_unavailable":
            return DownstreamError(f"{CALENDAR_AS} did not answer; try again later.")
        if error.error == "invalid_grant":
            return DownstreamError(
                f"{CALENDAR_AS} did not accept your identity provider's assertion "
                f"({error.description or error.error}). Ask your administrator to map your account ({subject}) "
                f"to a calendar account there, and to have it trust your identity provider."
            )
        return DownstreamError(f"{CALENDAR_AS} refused the assertion ({error.error}).")
