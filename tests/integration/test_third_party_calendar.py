"""Pattern 4 end to end: the user's own calendar at a third party, connected through URL-mode elicitation.

Real parts only: the official SDK client (its elicitation callback plays the user, driving a headless
browser through crm-mcp's connect pages and both authorization servers' login and consent forms), real
crm-mcp processes, the calendar provider's own auth-server instance and calendar-api. Where a test sets
up or inspects state directly (the vault file, a reference's expiry), it says so.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest
from crm_mcp.third_party_calendar.connect_requests import CONNECT_REQUESTS
from devkit.headless_login import HeadlessBrowser, open_in_browser
from devkit.processes import ServiceProcess
from devkit.sessions import mcp_session
from mcp.shared.exceptions import MCPError
from mcp.types import (
    CallToolResult,
    ElicitCompleteNotification,
    ElicitRequestURLParams,
    ElicitResult,
    InputRequiredResult,
)
from oauth_tokens.token_endpoint import TokenEndpoint
from oauth_tokens.vault import TokenVault
from sqlalchemy import update

from tests.integration.conftest import Topology
from tests.support.crm_mcp_state import crm_mcp_vault

pytestmark = pytest.mark.anyio

URL_ELICITATION_REQUIRED = -32042


def accounts(topology: Topology, user: str, calendar_user: str | None = None) -> dict[str, HeadlessBrowser]:
    """Who the browser signs in as: `user` at crm-mcp's AS, `calendar_user` (default: the same) at the calendar's."""
    calendar_user = calendar_user or user
    env = topology.env
    return {
        env["AUTH_ISSUER"]: HeadlessBrowser(user, topology.password(user)),
        env["CALENDAR_AUTH_ISSUER"]: HeadlessBrowser(calendar_user, env[f"CALENDAR_{calendar_user.upper()}_PASSWORD"]),
    }


class UserAtTheKeyboard:
    """The SDK client's elicitation callback: records each URL and, given accounts, completes it in a browser."""

    def __init__(self, people: dict[str, HeadlessBrowser] | None, action: str = "accept") -> None:
        self.people = people
        self.action = action
        self.urls: list[str] = []
        self.pages: list[httpx2.Response] = []

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        assert isinstance(params, ElicitRequestURLParams), params
        self.urls.append(params.url)
        if self.people is not None:
            self.pages.append(await open_in_browser(params.url, self.people))
        return ElicitResult(action=self.action)  # type: ignore[arg-type]


@pytest.fixture
async def vault(topology: Topology) -> AsyncIterator[TokenVault]:
    """crm-mcp's vault (its database), opened with its keys (to set up and inspect, as an operator could)."""
    async with crm_mcp_vault(topology.env) as opened:
        yield opened


@pytest.fixture
async def disconnected(topology: Topology, vault: TokenVault) -> None:
    """Every test starts with no calendar connected (grants of earlier tests removed from the vault)."""
    for user in ("alice", "bob"):
        await vault.delete(user, topology.env["CALENDAR_AUTH_ISSUER"])


def text_of(result: CallToolResult) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


def meeting_args(title: str) -> dict[str, Any]:
    return {"customer_id": "cus_001", "start": "2026-12-01T10:00:00+00:00", "minutes": 30, "title": title}


async def connected(topology: Topology, user: str) -> None:
    """Connect `user`'s calendar through the whole flow (first call elicits, the browser consents)."""
    user_at_keyboard = UserAtTheKeyboard(accounts(topology, user))
    async with topology.user_session(user, elicitation_callback=user_at_keyboard) as client:
        result = await client.call_tool("list_my_meetings", {})
    assert not result.is_error, text_of(result)
    assert len(user_at_keyboard.urls) == 1


@pytest.mark.usefixtures("disconnected")
async def test_first_call_elicits_the_connect_page_and_the_retry_lands_in_the_users_own_calendar(
    topology: Topology, vault: TokenVault
) -> None:
    alice = UserAtTheKeyboard(accounts(topology, "alice"))
    title = f"Renewal {uuid.uuid4().hex[:8]}"
    async with topology.user_session("alice", elicitation_callback=alice) as client:
        scheduled = await client.call_tool("schedule_meeting", meeting_args(title))
        assert not scheduled.is_error, text_of(scheduled)
        listed = await client.call_tool("list_my_meetings", {})

    (url,) = alice.urls
    assert url.startswith(topology.env["CRM_MCP_PUBLIC_URL"] + "/connect/calendar?ref=")
    assert list(parse_qs(urlsplit(url).query)) == ["ref"]
    assert "alice" not in url
    assert alice.pages[0].status_code == 200
    assert "Calendar connected" in alice.pages[0].text
    assert scheduled.structured_content is not None
    assert scheduled.structured_content["attendees"] == ["greta@vogel.example"]
    assert title in text_of(listed)

    await connected(topology, "bob")
    async with topology.user_session("bob") as client:
        bobs = await client.call_tool("list_my_meetings", {})
    assert not bobs.is_error
    assert title not in text_of(bobs)

    grant = await vault.get("alice", topology.env["CALENDAR_AUTH_ISSUER"])
    assert grant is not None
    assert grant.refresh_token is not None
    data_files = [path for path in Path(topology.env["CRM_MCP_DATA_DIR"]).rglob("*") if path.is_file()]  # noqa: ASYNC240
    stored = b"".join(path.read_bytes() for path in data_files)  # the database and the client keys
    assert grant.access_token.encode() not in stored
    assert grant.refresh_token.encode() not in stored
    assert grant.access_token.split(".")[1].encode() not in stored  # not even the JWT's payload
    for seen in (*topology.received, topology.logs()):
        assert grant.access_token not in seen
        assert grant.refresh_token not in seen


@pytest.mark.usefixtures("disconnected")
async def test_bob_cannot_complete_alices_link_and_nothing_is_stored(topology: Topology, vault: TokenVault) -> None:
    alice = UserAtTheKeyboard(None)  # alice's client shows her the link; she does not open it (yet)
    async with topology.user_session("alice", elicitation_callback=alice) as client:
        pending = await client.call_tool("list_my_meetings", {})
    assert pending.is_error
    assert "not connected yet" in text_of(pending)

    bob_opens_it = await open_in_browser(alice.urls[0], accounts(topology, "bob"))
    assert bob_opens_it.status_code == 400
    assert "different user" in bob_opens_it.text
    assert await vault.get("alice", topology.env["CALENDAR_AUTH_ISSUER"]) is None
    assert await vault.get("bob", topology.env["CALENDAR_AUTH_ISSUER"]) is None
    # Bob's attempt burnt the link: alice must ask for a new one.
    alice_opens_it = await open_in_browser(alice.urls[0], accounts(topology, "alice"))
    assert alice_opens_it.status_code == 400


async def _link(topology: Topology, user: str = "alice") -> str:
    user_at_keyboard = UserAtTheKeyboard(None)
    async with topology.user_session(user, elicitation_callback=user_at_keyboard) as client:
        await client.call_tool("list_my_meetings", {})
    return user_at_keyboard.urls[0]


@pytest.mark.usefixtures("disconnected")
async def test_replayed_tampered_and_expired_references_are_refused(topology: Topology, vault: TokenVault) -> None:
    """The expiry is set in the database directly: waiting out the 10-minute lifetime is not a test."""
    issuer = topology.env["CALENDAR_AUTH_ISSUER"]
    link = await _link(topology)
    tampered = link[:-1] + ("A" if link[-1] != "A" else "B")
    assert (await open_in_browser(tampered, accounts(topology, "alice"))).status_code == 400
    assert (await open_in_browser(link, accounts(topology, "alice"))).status_code == 200
    replayed = await open_in_browser(link, accounts(topology, "alice"))
    assert replayed.status_code == 400
    assert "already used" in replayed.text
    await vault.delete("alice", issuer)

    expiring = await _link(topology)
    async with vault.database.transaction() as db:
        await db.execute(update(CONNECT_REQUESTS).values(expires_at=time.time() - 1))
    assert (await open_in_browser(expiring, accounts(topology, "alice"))).status_code == 400
    assert await vault.get("alice", issuer) is None


@pytest.mark.parametrize(
    ("step", "parameter"), [("signed-in", "state"), ("signed-in", "iss"), ("callback", "state"), ("callback", "iss")]
)
@pytest.mark.usefixtures("disconnected")
async def test_a_redirect_back_with_a_wrong_state_or_iss_is_refused(
    topology: Topology, vault: TokenVault, step: str, parameter: str
) -> None:
    """Walks the flow hop by hop (the browser's own redirects), forging one parameter on one redirect back."""
    people = accounts(topology, "alice")
    async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as browser:
        to_sign_in = await browser.get(await _link(topology))
        for current in ("signed-in", "callback"):
            authorization_url = to_sign_in.headers["location"]
            issuer = "{0.scheme}://{0.netloc}".format(urlsplit(authorization_url))
            answer = await people[issuer].authorize(authorization_url)
            redirect_uri = parse_qs(urlsplit(authorization_url).query)["redirect_uri"][0]
            params = {"code": answer.code, "state": answer.state, "iss": answer.iss}
            if current == step:
                params[parameter] = "forged"
                refused = await browser.get(redirect_uri, params=params)
                assert refused.status_code == 400
                assert "Nothing was stored" in refused.text
                break
            to_sign_in = await browser.get(redirect_uri, params=params)
            assert to_sign_in.status_code == 303
    assert await vault.get("alice", topology.env["CALENDAR_AUTH_ISSUER"]) is None


@pytest.mark.usefixtures("disconnected")
async def test_a_declined_elicitation_is_a_clear_error_and_burns_the_link(topology: Topology) -> None:
    alice = UserAtTheKeyboard(None, action="decline")
    async with topology.user_session("alice", elicitation_callback=alice) as client:
        declined = await client.call_tool("list_my_meetings", {})
    assert declined.is_error
    assert "declined or dismissed" in text_of(declined)
    assert (await open_in_browser(alice.urls[0], accounts(topology, "alice"))).status_code == 400


@pytest.mark.usefixtures("disconnected")
async def test_a_client_without_url_elicitation_gets_a_clear_error(topology: Topology) -> None:
    async with topology.user_session("alice") as client:
        result = await client.call_tool("list_my_meetings", {})
    assert result.is_error
    assert "does not support URL elicitation" in text_of(result)


@pytest.mark.usefixtures("disconnected")
async def test_a_2025_11_25_client_gets_url_elicitation_required_then_retries(topology: Topology) -> None:
    alice = UserAtTheKeyboard(accounts(topology, "alice"))
    async with topology.user_session("alice", elicitation_callback=alice, mode="legacy") as client:
        with pytest.raises(MCPError) as required:
            await client.call_tool("list_my_meetings", {})
        assert required.value.code == URL_ELICITATION_REQUIRED
        (elicitation,) = required.value.data["elicitations"]  # type: ignore[index]
        assert elicitation["mode"] == "url"
        assert elicitation["elicitationId"]
        page = await open_in_browser(elicitation["url"], accounts(topology, "alice"))
        assert page.status_code == 200
        retried = await client.call_tool("list_my_meetings", {})
    assert not retried.is_error, text_of(retried)


@pytest.mark.usefixtures("disconnected")
async def test_a_2025_11_25_client_is_told_when_the_connection_is_complete(topology: Topology) -> None:
    """MCP 2025-11-25 `notifications/elicitation/complete`: the client need not wait for the user to click."""
    completed: list[str] = []
    arrived = anyio.Event()

    async def notifications(message: Any) -> None:
        if isinstance(message, ElicitCompleteNotification):
            completed.append(message.params.elicitation_id)
            arrived.set()

    alice = UserAtTheKeyboard(None)  # accepts, but leaves the page to the test
    async with topology.user_session(
        "alice", elicitation_callback=alice, mode="legacy", message_handler=notifications
    ) as client:
        with pytest.raises(MCPError) as required:
            await client.call_tool("list_my_meetings", {})
        (elicitation,) = required.value.data["elicitations"]  # type: ignore[index]
        assert completed == []  # nothing before the user has connected
        page = await open_in_browser(elicitation["url"], accounts(topology, "alice"))
        assert "Calendar connected" in page.text
        with anyio.fail_after(10):
            await arrived.wait()
        assert completed == [elicitation["elicitationId"]]
        retried = await client.call_tool("list_my_meetings", {})
    assert not retried.is_error, text_of(retried)


@pytest.fixture
def replica(topology: Topology, tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start more crm-mcp processes with the same settings (data dir, keys), as replicas behind a balancer."""
    with ExitStack() as started:
        names = (f"crm-mcp-replica-{index}" for index in itertools.count())

        def start(**overrides: str) -> ServiceProcess:
            name = next(names)
            return started.enter_context(topology.extra(name, workdir=tmp_path / name, **overrides))

        yield start


@pytest.mark.usefixtures("disconnected")
async def test_two_replicas_start_and_finish_one_flow(
    topology: Topology, replica: Callable[..., ServiceProcess]
) -> None:
    """The tool call and the connect link are served by one replica; the sign-in, consent and retry by the other."""
    other = replica()
    token = await topology.user_token("alice")
    async with mcp_session(other.url + "/mcp", token=token, elicitation_callback=UserAtTheKeyboard(None)) as client:
        first = await client.session.call_tool("list_my_meetings", {}, allow_input_required=True)
    assert isinstance(first, InputRequiredResult)
    assert first.input_requests is not None
    assert first.request_state is not None
    (request,) = first.input_requests.values()
    link = request.params.url  # type: ignore[union-attr]
    assert link.startswith(topology.env["CRM_MCP_PUBLIC_URL"])
    on_other = other.url + urlsplit(link).path + "?" + urlsplit(link).query
    page = await open_in_browser(on_other, accounts(topology, "alice"))  # redirects back to the public URL
    assert page.status_code == 200, page.text

    async with mcp_session(topology.crm_mcp_url, token=token, elicitation_callback=UserAtTheKeyboard(None)) as client:
        retried = await client.session.call_tool(
            "list_my_meetings",
            {},
            input_responses={"connect_calendar": ElicitResult(action="accept")},
            request_state=first.request_state,
            allow_input_required=True,
        )
    assert isinstance(retried, CallToolResult)
    assert not retried.is_error, text_of(retried)


@pytest.mark.usefixtures("disconnected")
async def test_refresh_rotates_the_stored_grant_and_a_refused_refresh_asks_again(
    topology: Topology, vault: TokenVault, replica: Callable[..., ServiceProcess]
) -> None:
    issuer = topology.env["CALENDAR_AUTH_ISSUER"]
    eager = replica(CRM_MCP_CALENDAR_REFRESH_MARGIN_SECONDS="100000")  # refreshes on every call
    await connected(topology, "alice")
    before = await vault.get("alice", issuer)
    assert before is not None
    token = await topology.user_token("alice")
    async with mcp_session(eager.url + "/mcp", token=token, elicitation_callback=UserAtTheKeyboard(None)) as client:
        for _ in range(2):  # the second refresh redeems the rotated token: a replay would revoke the grant
            result = await client.call_tool("list_my_meetings", {})
            assert not result.is_error, text_of(result)
        after = await vault.get("alice", issuer)
        assert after is not None
        assert before.refresh_token is not None
        assert after.refresh_token != before.refresh_token
        assert after.access_token != before.access_token

        # The user revokes crm-mcp's access at the provider (as in the provider's account settings).
        revoked = await _as_crm_mcp(topology, f"{issuer}/revoke", {"token": after.refresh_token or ""})
        assert revoked.status_code == 200
        asked_again = await client.session.call_tool("list_my_meetings", {}, allow_input_required=True)
    assert isinstance(asked_again, InputRequiredResult)
    assert await vault.get("alice", issuer) is None


@pytest.mark.usefixtures("disconnected")
async def test_the_calendar_down_is_a_clear_tool_error_and_other_tools_still_work(topology: Topology) -> None:
    await connected(topology, "alice")
    topology.services["calendar-api"].stop()
    try:
        async with topology.user_session("alice") as client:
            down = await client.call_tool("list_my_meetings", {})
            other = await client.call_tool("search_customers", {"query": ""})
    finally:
        topology.start("calendar-api")
    assert down.is_error
    assert text_of(down).endswith("calendar-api is unreachable; try again later.")
    assert not other.is_error


@pytest.mark.usefixtures("disconnected")
async def test_disconnect_revokes_at_the_provider_and_forgets(topology: Topology, vault: TokenVault) -> None:
    issuer = topology.env["CALENDAR_AUTH_ISSUER"]
    await connected(topology, "alice")
    grant = await vault.get("alice", issuer)
    assert grant is not None
    async with topology.user_session("alice") as client:
        result = await client.call_tool("disconnect_calendar", {})
        again = await client.call_tool("disconnect_calendar", {})
    assert result.structured_content == {
        "disconnected": True,
        "message": "Your calendar is disconnected; crm-mcp's access is revoked.",
    }
    assert again.structured_content is not None
    assert again.structured_content["disconnected"] is False
    assert await vault.get("alice", issuer) is None
    refreshed = await _as_crm_mcp(
        topology, f"{issuer}/token", {"grant_type": "refresh_token", "refresh_token": grant.refresh_token or ""}
    )
    assert refreshed.json()["error"] == "invalid_grant"


@pytest.mark.usefixtures("disconnected")
async def test_disconnect_with_the_provider_down_keeps_the_grant_to_revoke_later(
    topology: Topology, vault: TokenVault
) -> None:
    await connected(topology, "alice")
    topology.services["calendar-auth-server"].stop()
    try:
        async with topology.user_session("alice") as client:
            result = await client.call_tool("disconnect_calendar", {})
    finally:
        topology.start("calendar-auth-server")  # its grants were in memory: every stored grant is now dead
    assert result.is_error
    assert text_of(result).endswith("the calendar provider's authorization server is unreachable; try again later.")
    assert await vault.get("alice", topology.env["CALENDAR_AUTH_ISSUER"]) is not None


async def _as_crm_mcp(topology: Topology, url: str, form: dict[str, str]) -> httpx2.Response:
    """POST `form` to the calendar's authorization server authenticated as crm-mcp's calendar client."""
    issuer = topology.env["CALENDAR_AUTH_ISSUER"]
    endpoint = TokenEndpoint(
        f"{issuer}/token",
        topology.env["CALENDAR_CLIENT_ID"],
        **topology.crm_mcp_credential("CALENDAR_CLIENT_AUTH_METHOD"),
    )
    data, headers = endpoint.authenticate(form)
    async with httpx2.AsyncClient(timeout=10) as http:
        return await http.post(url, data=data, headers=headers)
