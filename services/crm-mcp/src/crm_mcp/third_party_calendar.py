"""Pattern 4 — the user's own account at a third party: crm-mcp acts in each user's calendar with a grant
that user gave crm-mcp at the calendar provider, never with the token the MCP client sent.

`CalendarProvider` is crm-mcp as a confidential OAuth client of the provider's own authorization server:
the authorization URL (PKCE S256, `state`, `resource`), the code exchange, refresh and RFC 7009
revocation. `CalendarAccounts` keeps each user's grant in the encrypted `TokenVault`, under (user `sub`,
provider issuer), and hands out a fresh access token, refreshed ahead of expiry in one flight per user
grant: concurrent callers of one user share the one refresh in progress and its result or error
(`oauth_tokens.single_flight.KeyedSingleFlight`, which forgets a user once no call of theirs is waiting,
so the map never outgrows the calls in progress), and across replicas one refresh per grant on the vault
row's versioned lease (`oauth_tokens.grant_refresh.refresh_once`): the replica that wins it redeems the
refresh token, the others wait (at most one downstream deadline) and use the grant it stores, so a
rotated-away refresh token is never sent again. A refresh against a provider that hangs therefore costs
every waiter one deadline together, not one deadline each in turn. A refused refresh (`invalid_grant`) deletes the
grant, so the tool asks the user to connect again.
`CalendarApiClient` calls calendar-api with that token. How the user connects is in connect_calendar.py,
how a tool asks them to (URL-mode elicitation) in calendar_tools.py.

DPoP (CRM_MCP_DPOP, docs/dpop.md): the code redemption and every refresh carry a proof by crm-mcp's DPoP key
(shared by every replica, like the vault), the provider must answer `token_type: DPoP`, the grant is stored
with its binding (`StoredGrant.token_type`, `dpop_jkt`), and every calendar-api call carries a fresh proof.
A stored grant bound otherwise than crm-mcp's key now says (DPoP turned on or off, the key replaced) is
refreshed before use, so it is never sent where it would be refused.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import httpx2
from oauth_tokens import TokenEndpointError
from oauth_tokens.dpop_client import DPoPKey, DPoPNonceStore, DPoPTokenAuth
from oauth_tokens.grant_refresh import RefreshInProgressElsewhereError, refresh_once
from oauth_tokens.single_flight import KeyedSingleFlight
from oauth_tokens.telemetry import trace_http
from oauth_tokens.token_endpoint import TokenEndpoint
from oauth_tokens.vault import StoredGrant, TokenVault
from pydantic import AwareDatetime, BaseModel, Field, TypeAdapter

from crm_mcp.client_identity import ClientCredential
from crm_mcp.downstream import DownstreamError, http_client, parse_response, send
from crm_mcp.settings import Settings

logger = logging.getLogger(__name__)

SERVICE = "calendar-api"
PROVIDER = "the calendar provider's authorization server"
CALLBACK_PATH = "/connect/calendar/callback"


@dataclass(frozen=True)
class CalendarToken:
    """A calendar access token and how it is presented: DPoP (with a proof by crm-mcp's key) or Bearer."""

    access_token: str = field(repr=False)
    token_type: str = "Bearer"  # noqa: S105 - a type name

    @property
    def bound(self) -> bool:
        return self.token_type.lower() == "dpop"


class GrantRevokedError(Exception):
    """The provider refused the refresh token (invalid_grant): the user must connect again."""


class Meeting(BaseModel):
    """A meeting in the user's own calendar."""

    id: str
    title: str
    start: datetime
    minutes: int
    attendees: list[str] = []


class NewMeeting(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    start: AwareDatetime
    minutes: int = Field(ge=5, le=480)
    attendees: list[str] = []


_meetings = TypeAdapter(list[Meeting])


class CalendarProvider:
    """crm-mcp's OAuth client at the calendar's authorization server (CALENDAR_CLIENT_ID, authenticated
    as CALENDAR_CLIENT_AUTH_METHOD says: client_identity.py)."""

    def __init__(self, settings: Settings, credential: ClientCredential, dpop_key: DPoPKey | None = None) -> None:
        """`dpop_key` (CRM_MCP_DPOP): token requests carry its proof, and only DPoP-bound answers are taken."""
        self.issuer = settings.calendar_auth_issuer
        self.dpop_jkt = dpop_key.thumbprint if dpop_key is not None else None
        self.redirect_uri = settings.crm_mcp_public_url + CALLBACK_PATH
        self._settings = settings
        self._timeout = settings.crm_mcp_downstream_timeout_seconds
        self._token_endpoint = TokenEndpoint(
            settings.calendar_token_endpoint,
            settings.calendar_client_id,
            **credential.token_endpoint_arguments(),
            timeout_seconds=self._timeout,
            pattern="third_party",
            dpop_key=dpop_key,
        )
        # For revocation, authenticated the same way as at the token endpoint.
        credential_kind = self._token_endpoint.credential_kind
        self._http = trace_http(http_client(self._timeout), pattern="third_party", credential=credential_kind)

    def authorization_url(self, state: str, code_challenge: str) -> str:
        """Where the browser goes to consent at the provider (its public issuer, not an internal name)."""
        query = {
            "response_type": "code",
            "client_id": self._settings.calendar_client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self._settings.calendar_scopes,
            "resource": self._settings.calendar_api_audience,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        return f"{self.issuer}/authorize?{urlencode(query)}"

    async def redeem_code(self, code: str, code_verifier: str) -> StoredGrant:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        return await self._token_request({**form, "code_verifier": code_verifier})

    async def refresh(self, refresh_token: str) -> StoredGrant:
        """A new access token and the rotated refresh token; GrantRevokedError if the grant is gone."""
        return await self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def revoke(self, token: str) -> None:
        """RFC 7009: end the grant at the provider (the refresh token revokes every rotation of it)."""
        endpoint = self._settings.calendar_revocation_endpoint
        # Authenticated exactly as at the token endpoint (same encoding of id and secret).
        data, headers = self._token_endpoint.authenticate({"token": token, "token_type_hint": "refresh_token"})
        await send(
            PROVIDER,
            lambda: self._http.post(endpoint, data=data, headers=headers),
            idempotent=True,
            deadline_seconds=self._timeout,
        )

    async def _token_request(self, form: dict[str, str]) -> StoredGrant:
        """One token request (authorization code or refresh) through the shared TokenEndpoint."""
        try:
            answer = await self._token_endpoint.request(
                form, secrets=tuple(form[name] for name in ("code", "code_verifier", "refresh_token") if name in form)
            )
        except TokenEndpointError as exc:
            if exc.error == "invalid_grant":
                raise GrantRevokedError from exc
            if exc.error == "temporarily_unavailable":
                raise DownstreamError(f"{PROVIDER} did not answer; try again later.") from exc
            raise DownstreamError(f"{PROVIDER} refused the token request ({exc.error}).") from exc
        return parse_response(PROVIDER, lambda: _grant_from(dict(answer.body), self.dpop_jkt))

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._token_endpoint.aclose()


def _grant_from(body: dict[str, Any], dpop_jkt: str | None) -> StoredGrant:
    """The grant in a token answer; with `dpop_jkt` the TokenEndpoint has checked it is `token_type: DPoP`."""
    return StoredGrant(
        access_token=str(body["access_token"]),
        refresh_token=str(body["refresh_token"]) if body.get("refresh_token") else None,
        expires_at=time.time() + float(body["expires_in"]),
        scope=str(body.get("scope", "")),
        token_type="DPoP" if dpop_jkt is not None else "Bearer",
        dpop_jkt=dpop_jkt,
    )


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


class CalendarApiClient:
    """calendar-api, called with the user's own calendar token (from CalendarAccounts, or pattern 5's).

    A DPoP-bound token goes as `Authorization: DPoP` with a fresh proof by `dpop_key` on every request (a
    retry included) and one retry when calendar-api asks for its nonce; a bearer token as `Bearer`."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float,
        dpop_key: DPoPKey | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport`: None for sockets; in-process tests pass an ASGI transport (downstream.http_client)."""
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout_seconds
        self._dpop_key = dpop_key
        self._nonces = DPoPNonceStore()
        self._http = trace_http(
            http_client(timeout_seconds, transport=transport), pattern="third_party", credential="third_party"
        )

    def _auth(self, token: CalendarToken) -> httpx2.Auth:
        if not token.bound:
            return _Bearer(token.access_token)
        if self._dpop_key is None:  # a bound token reaches this client only when crm-mcp holds a key
            raise DownstreamError("The calendar token is DPoP-bound, but crm-mcp has no DPoP key (CRM_MCP_DPOP).")
        return DPoPTokenAuth(self._dpop_key, token.access_token, token.token_type, self._nonces)

    async def list_meetings(self, token: CalendarToken) -> list[Meeting]:
        response = await send(
            SERVICE,
            lambda: self._http.get(f"{self._base_url}/events", auth=self._auth(token)),
            idempotent=True,
            deadline_seconds=self._timeout,
        )
        return parse_response(SERVICE, lambda: _meetings.validate_python(response.json()["events"]))

    async def add_meeting(self, token: CalendarToken, meeting: NewMeeting) -> Meeting:
        response = await send(
            SERVICE,
            lambda: self._http.post(
                f"{self._base_url}/events", json=meeting.model_dump(mode="json"), auth=self._auth(token)
            ),
            idempotent=False,
            deadline_seconds=self._timeout,
        )
        return parse_response(SERVICE, lambda: Meeting.model_validate(response.json()))

    async def aclose(self) -> None:
        await self._http.aclose()


class _Bearer(httpx2.Auth):
    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request
