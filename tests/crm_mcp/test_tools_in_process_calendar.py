"""crm-mcp's calendar tools (pattern 4), in process: the user's own grant, the URL elicitation, the refusals.

As in test_tools_in_process.py, plus: the real calendar-api app (behind the same ASGI transport), trusting
only its own authorization server, a second loopback stand-in with a key of its own; crm-mcp's real
`CalendarPattern` on its real database (SQLite, migrated) and vault. A connected user is one whose grant
is in the vault, stored with `CalendarAccounts.connect` as the connect page's callback stores it; the
browser consent itself (sign-in, code redemption) needs the real authorization servers and is covered by
tests/integration/test_third_party_calendar.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from calendar_api.app import create_app as create_calendar_api
from calendar_api.settings import CalendarApiSettings
from crm_mcp.client_identity import ClientIdentity
from crm_mcp.third_party_calendar.api_client import CalendarApiClient
from crm_mcp.third_party_calendar.connect_pages import CONNECT_PATH
from crm_mcp.third_party_calendar.tools import NO_URL_ELICITATION, CalendarPattern
from crm_mcp.tools import Downstreams
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, ElicitRequestURLParams, ElicitResult, TextContent
from oauth_tokens.vault import StoredGrant

from tests.crm_mcp.in_process import InProcessTopology, in_process_topology
from tests.shared.loopback import LoopbackAuthServer
from tests.shared.tokens import SigningKeyPair, claims, ec_key, mint

pytestmark = pytest.mark.anyio

CALENDAR_API = "http://calendar-api.test"
MEETING = {"customer_id": "cus_002", "start": "2026-12-01T10:00:00+00:00", "minutes": 30, "title": "Renewal"}


@dataclass
class Calendar:
    """The in-process topology plus pattern 4: calendar-api, its authorization server, crm-mcp's vault."""

    base: InProcessTopology
    issuer: LoopbackAuthServer
    key: SigningKeyPair
    pattern: CalendarPattern
    server: MCPServer[Downstreams]

    async def connect(self, user: str, *, audience: str = CALENDAR_API) -> None:
        """Store `user`'s grant at the calendar, as the connect callback does after the consent."""
        token = mint(
            self.key,
            claims(self.issuer.url, sub=user, aud=audience, scope="calendar:read calendar:write", jti=uuid.uuid4().hex),
        )
        await self.pattern.accounts.connect(user, StoredGrant(token, None, expires_at=time.time() + 600))

    def as_caller(self, user: str, **client: Any) -> AbstractAsyncContextManager[Client]:
        """An MCP client of crm-mcp with pattern 4's tools, calling as `user` (a token with crm:read)."""
        return self.base.as_caller(self.base.user_token("crm:read", sub=user), server=self.server, **client)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def calendar(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Calendar]:
    data_dir = tmp_path_factory.mktemp("calendar")
    issuer = LoopbackAuthServer().start()
    key = ec_key("calendar-1")
    issuer.state.jwks = {"keys": [key.public_jwk()]}
    api = create_calendar_api(
        CalendarApiSettings(
            calendar_api_audience=CALENDAR_API,
            calendar_auth_issuer=issuer.url,
            calendar_auth_jwks_url=f"{issuer.url}/jwks",
            _env_file=None,
        )
    )
    try:
        async with in_process_topology(data_dir) as base, AsyncExitStack() as running:
            base.routes.mount(CALENDAR_API, api)
            await running.enter_async_context(api.router.lifespan_context(api))
            settings = base.settings.model_copy(
                update={"calendar_api_url": CALENDAR_API, "calendar_api_audience": CALENDAR_API}
            )
            settings = settings.model_copy(update={"calendar_auth_issuer": issuer.url})
            database = settings.database()
            await database.start(migrate_on_start=True)
            running.push_async_callback(database.dispose)
            pattern = CalendarPattern.build(settings, base.verifier.validator, ClientIdentity(settings), database)
            await pattern.api.aclose()  # the one calendar-api client, reaching the app in process instead
            pattern.api = CalendarApiClient(CALENDAR_API, timeout_seconds=5, transport=base.routes)
            await running.enter_async_context(pattern.running())

            server = base.server(settings, calendar=pattern)
            yield Calendar(base, issuer, key, pattern, server)
    finally:
        issuer.stop()


def error_text(result: CallToolResult) -> str:
    assert result.is_error, f"expected a tool error, got {result.structured_content}"
    return " ".join(block.text for block in result.content if isinstance(block, TextContent))


class UserAtTheKeyboard:
    """An MCP client's elicitation handler: records the URL it was asked to open, and answers `action`."""

    def __init__(self, action: str) -> None:
        self.action = action
        self.urls: list[str] = []

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        assert isinstance(params, ElicitRequestURLParams), params
        self.urls.append(params.url)
        return ElicitResult(action=self.action)


async def test_a_connected_user_schedules_and_lists_meetings_in_their_own_calendar(calendar: Calendar) -> None:
    await calendar.connect("alice")
    async with calendar.as_caller("alice") as client:
        scheduled = await client.call_tool("schedule_meeting", MEETING)
        listed = await client.call_tool("list_my_meetings", {})

    meeting = scheduled.structured_content or {}
    # Pattern 3 first (the customer's contact, from crm-api), then 4 (the user's own calendar token).
    assert (meeting["title"], meeting["minutes"], meeting["attendees"]) == ("Renewal", 30, ["camille@laurent.example"])
    assert [found["id"] for found in (listed.structured_content or {})["result"]] == [meeting["id"]]


async def test_an_unconnected_user_is_sent_to_crm_mcps_connect_page_and_a_decline_is_a_clear_error(
    calendar: Calendar,
) -> None:
    bob = UserAtTheKeyboard("decline")
    async with calendar.as_caller("bob", elicitation_callback=bob) as client:
        result = await client.call_tool("list_my_meetings", {})

    assert error_text(result).endswith("Your calendar was not connected: the connect page was declined or dismissed.")
    assert len(bob.urls) == 1
    page = urlsplit(bob.urls[0])
    assert f"{page.scheme}://{page.netloc}{page.path}" == f"{calendar.base.settings.crm_mcp_public_url}{CONNECT_PATH}"
    assert list(parse_qs(page.query)) == ["ref"]  # an opaque reference only, never a credential


async def test_a_client_without_url_elicitation_is_told_what_to_do(calendar: Calendar) -> None:
    async with calendar.as_caller("carol") as client:
        result = await client.call_tool("list_my_meetings", {})

    assert error_text(result).endswith(NO_URL_ELICITATION)


async def test_calendar_api_refusing_a_grant_for_another_audience(calendar: Calendar) -> None:
    await calendar.connect("dave", audience="http://another-api.test")
    async with calendar.as_caller("dave") as client:
        result = await client.call_tool("list_my_meetings", {})

    assert error_text(result).endswith("calendar-api rejected the credentials crm-mcp presented (401 Unauthorized).")
