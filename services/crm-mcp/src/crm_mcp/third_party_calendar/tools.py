"""Pattern 4's tools and their URL-mode elicitation: act in the user's own calendar, or ask them to connect it.

With CALENDAR_AUTH_MODE=cross-app-access the same tools get the calendar token by pattern 5 instead
(cross_app_access_calendar.py): no elicitation, no vault; disconnect_calendar only forgets the cached token.

| tool                | scope    | downstream                                                          |
|---------------------|----------|---------------------------------------------------------------------|
| list_my_meetings    | crm:read | 4 the user's calendar grant → calendar-api                          |
| schedule_meeting    | crm:read | 3 crm-api (the customer), then 4 → calendar-api                     |
| disconnect_calendar | crm:read | 4 revoke the grant at the calendar provider (RFC 7009), delete it   |

With no usable grant, a tool answers with a URL-mode elicitation (SEP-1036) pointing at crm-mcp's own
connect page, carrying only an opaque single-use reference: on the 2026-07-28 wire an `InputRequiredResult`
whose `requestState` (sealed by the SDK's `RequestStateSecurity` with CRM_MCP_REQUEST_STATE_KEYS, so any
replica can serve the retry) names the pending connection; on 2025-11-25 a `UrlElicitationRequiredError`
(-32042), followed by `notifications/elicitation/complete` once the connection is stored
(elicitation_complete.py). A client that did not declare `elicitation.url` gets no elicitation (the
specification forbids it) but a ToolError that says what to do. The calendar token never reaches the MCP client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import UrlElicitationRequiredError
from mcp.types import ElicitRequest, ElicitRequestURLParams, ElicitResult, InputRequiredResult, ToolAnnotations
from mcp_types.version import is_version_at_least
from oauth_tokens import AccessTokenValidator
from oauth_tokens.mcp import caller_token
from oauth_tokens.mcp_step_up import scoped_tool
from oauth_tokens.service_database import ServiceDatabase
from oauth_tokens.vault import TokenVault
from pydantic import AwareDatetime, BaseModel, Field

from crm_mcp.client_identity import ClientIdentity
from crm_mcp.cross_app_access_calendar import CrossAppCalendarAccess
from crm_mcp.settings import Settings
from crm_mcp.third_party_calendar.accounts import CalendarAccounts
from crm_mcp.third_party_calendar.api_client import CalendarApiClient, CalendarToken, Meeting, NewMeeting
from crm_mcp.third_party_calendar.connect_pages import CONNECT_PATH, SIGNED_IN_PATH, CalendarConnect
from crm_mcp.third_party_calendar.connect_requests import ConnectRequests
from crm_mcp.third_party_calendar.elicitation_complete import ElicitationCompletions
from crm_mcp.third_party_calendar.provider import CALLBACK_PATH, CalendarProvider
from crm_mcp.tools import CustomerId, Downstreams

logger = logging.getLogger(__name__)

ELICITATION_KEY = "connect_calendar"
INPUT_REQUIRED_VERSION = "2026-07-28"
CONNECT_MESSAGE = (
    "Connect your calendar: open this page, sign in to the CRM, then allow crm-mcp to read your meetings "
    "and add new ones at your calendar provider. Then the request continues."
)
NO_URL_ELICITATION = (
    "Your calendar is not connected, and connecting it needs a browser page that this MCP client cannot open "
    "(it does not support URL elicitation). Use an MCP client that supports URL-mode elicitation once to "
    "connect your calendar; after that, this tool works from any client."
)


@dataclass
class CalendarPattern:
    """Everything pattern 4 needs, made once: the provider client, the vault, the API and the connect pages."""

    provider: CalendarProvider
    accounts: CalendarAccounts
    api: CalendarApiClient
    requests: ConnectRequests
    connect: CalendarConnect
    completions: ElicitationCompletions
    # Pattern 5 instead of the vault's grants, when CALENDAR_AUTH_MODE=cross-app-access.
    cross_app: CrossAppCalendarAccess | None = None

    @classmethod
    def build(
        cls, settings: Settings, validator: AccessTokenValidator, identity: ClientIdentity, database: ServiceDatabase
    ) -> CalendarPattern:
        provider = CalendarProvider(settings, identity.calendar(), identity.dpop_key)
        vault = TokenVault(database, settings.crm_mcp_vault_keys)
        accounts = CalendarAccounts(
            provider,
            vault,
            settings.crm_mcp_calendar_refresh_margin_seconds,
            deadline_seconds=settings.crm_mcp_downstream_timeout_seconds,
        )
        requests = ConnectRequests(database, settings.crm_mcp_vault_keys)
        completions = ElicitationCompletions(requests.lifetime_seconds)
        connect = CalendarConnect(settings, requests, accounts, provider, validator, identity.own(), completions)
        logger.info("Calendar tokens: CALENDAR_AUTH_MODE=%s", settings.calendar_auth_mode)
        cross_app = None
        if settings.calendar_auth_mode == "cross-app-access":
            cross_app = CrossAppCalendarAccess(
                settings,
                connect.own_token_endpoint,
                idp_credential=identity.own().token_endpoint_arguments(),
                calendar_credential=identity.calendar().token_endpoint_arguments(),
                dpop_key=identity.dpop_key,
            )
        return cls(
            provider=provider,
            accounts=accounts,
            api=CalendarApiClient(
                settings.calendar_api_url,
                timeout_seconds=settings.crm_mcp_downstream_timeout_seconds,
                dpop_key=identity.dpop_key,
            ),
            requests=requests,
            connect=connect,
            completions=completions,
            cross_app=cross_app,
        )

    async def access_token(self, subject: str) -> CalendarToken | None:
        """The user's calendar token: pattern 5's when configured, else pattern 4's grant (None: connect first).

        DPoP-bound (to crm-mcp's key) when CRM_MCP_DPOP is on, for both patterns."""
        if self.cross_app is not None:
            token_type = "DPoP" if self.provider.dpop_jkt is not None else "Bearer"
            return CalendarToken(await self.cross_app.access_token(subject), token_type)
        return await self.accounts.access_token(subject)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Close the HTTP clients at shutdown (the tables are the database's: app.py migrates it)."""
        try:
            yield
        finally:
            await self.connect.aclose()
            await self.api.aclose()
            await self.provider.aclose()
            if self.cross_app is not None:
                await self.cross_app.aclose()


class Disconnected(BaseModel):
    disconnected: bool = Field(description="False if no calendar was connected")
    message: str


def _subject() -> str:
    token = caller_token()
    return token.subject or token.client_id


def _supports_url_elicitation(ctx: Context[Downstreams, Any]) -> bool:
    capabilities = ctx.client_capabilities
    return (
        capabilities is not None and capabilities.elicitation is not None and capabilities.elicitation.url is not None
    )


async def ask_to_connect(
    calendar: CalendarPattern, ctx: Context[Downstreams, Any], subject: str
) -> InputRequiredResult:
    """Elicit the connect page (or, on a retry whose connection is still missing, say why in a ToolError)."""
    if ctx.request_state is not None:  # our own sealed state: this is the retry after the elicitation
        request_id = str(json.loads(ctx.request_state)["connect"])
        answer = (ctx.input_responses or {}).get(ELICITATION_KEY)
        if not isinstance(answer, ElicitResult) or answer.action != "accept":
            await calendar.requests.discard(request_id)
            raise ToolError("Your calendar was not connected: the connect page was declined or dismissed.")
        raise ToolError("Your calendar is not connected yet: finish on the page that opened, then ask again.")
    if not _supports_url_elicitation(ctx):
        raise ToolError(NO_URL_ELICITATION)
    reference, request_id = await calendar.requests.issue(subject)
    url = calendar.connect.connect_url(reference)
    if ctx.protocol_version is not None and is_version_at_least(ctx.protocol_version, INPUT_REQUIRED_VERSION):
        elicitation = ElicitRequest(params=ElicitRequestURLParams(message=CONNECT_MESSAGE, url=url))
        return InputRequiredResult(
            input_requests={ELICITATION_KEY: elicitation}, request_state=json.dumps({"connect": request_id})
        )
    calendar.completions.watch(request_id, ctx.session)  # told when the connection is stored
    raise UrlElicitationRequiredError(
        [ElicitRequestURLParams(message=CONNECT_MESSAGE, url=url, elicitation_id=request_id)],
        message="Connect your calendar first",
    )


def register_calendar_tools(mcp: MCPServer[Downstreams], calendar: CalendarPattern) -> None:
    """Add pattern 4's tools to `mcp`, and the connect pages they send users to."""
    mcp.custom_route(CONNECT_PATH, methods=["GET"])(calendar.connect.start)
    mcp.custom_route(SIGNED_IN_PATH, methods=["GET"])(calendar.connect.signed_in)
    mcp.custom_route(CALLBACK_PATH, methods=["GET"])(calendar.connect.callback)

    @scoped_tool(mcp, "crm:read", annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True))
    async def list_my_meetings(ctx: Context[Downstreams, Any]) -> list[Meeting] | InputRequiredResult:
        """Your meetings, from your own calendar. Asks you to connect your calendar first if needed."""
        subject = _subject()
        token = await calendar.access_token(subject)
        if token is None:
            return await ask_to_connect(calendar, ctx, subject)
        return await calendar.api.list_meetings(token)

    @scoped_tool(
        mcp,
        "crm:read",
        annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=False, open_world_hint=True),
    )
    async def schedule_meeting(
        customer_id: CustomerId,
        start: Annotated[AwareDatetime, Field(description="Start, ISO 8601 with a UTC offset")],
        minutes: Annotated[int, Field(ge=5, le=480, description="Length in minutes")],
        title: Annotated[str, Field(min_length=1, max_length=200)],
        ctx: Context[Downstreams, Any],
    ) -> Meeting | InputRequiredResult:
        """Put a meeting with one of your customers in your own calendar (the customer's contact is invited)."""
        subject = _subject()
        customer = await ctx.request_context.lifespan_context.crm_api.get_customer(customer_id)
        token = await calendar.access_token(subject)
        if token is None:
            return await ask_to_connect(calendar, ctx, subject)
        attendee = customer.email or f"{customer.name} ({customer.company})"
        meeting = NewMeeting(title=title, start=start, minutes=minutes, attendees=[attendee])
        return await calendar.api.add_meeting(token, meeting)

    @scoped_tool(
        mcp, "crm:read", annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True, open_world_hint=True)
    )
    async def disconnect_calendar() -> Disconnected:
        """Disconnect your calendar: crm-mcp revokes its access at your calendar provider and forgets it."""
        if calendar.cross_app is not None:  # pattern 5: nothing to revoke; the administrator's policy decides
            forgot = calendar.cross_app.forget(_subject())
            return Disconnected(
                disconnected=forgot,
                message="crm-mcp reaches your calendar through your organisation's policy (cross-app access); "
                "it forgot its cached calendar token. Ask your administrator to withdraw the access.",
            )
        if await calendar.accounts.disconnect(_subject()):
            return Disconnected(
                disconnected=True, message="Your calendar is disconnected; crm-mcp's access is revoked."
            )
        return Disconnected(disconnected=False, message="No calendar was connected.")
