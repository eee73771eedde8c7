"""Pattern 4, step 3 of 3: call calendar-api with the user's own calendar token.

The token comes from `CalendarAccounts` (accounts.py) or, in pattern 5, from
`CrossAppCalendarAccess` (cross_app_access_calendar.py); this module only presents it. A DPoP-bound
token (CRM_MCP_DPOP, docs/dpop.md) goes as `Authorization: DPoP` with a fresh proof by crm-mcp's key on
every request; a bearer token as `Bearer`.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import datetime

import httpx2
from oauth_tokens.dpop_client import DPoPKey, DPoPNonceStore, DPoPTokenAuth
from oauth_tokens.telemetry import trace_http
from pydantic import AwareDatetime, BaseModel, Field, TypeAdapter

from crm_mcp.downstream import DownstreamError, http_client, parse_response, send

SERVICE = "calendar-api"


@dataclass(frozen=True)
class CalendarToken:
    """A calendar access token and how it is presented: DPoP (with a proof by crm-mcp's key) or Bearer."""

    access_token: str = field(repr=False)
    token_type: str = "Bearer"  # noqa: S105 - a type name

    @property
    def bound(self) -> bool:
        return self.token_type.lower() == "dpop"


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
