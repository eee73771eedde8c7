"""Pattern 4's connect flow in Chromium, page by page: each provider's pages look like that provider's, and
the last one says the calendar is connected and the tab may be closed. Screenshots of every page are saved.

The flow starts as an MCP client starts it: a 2025-11-25 SDK client calls `list_my_meetings` without a
calendar and gets the connect link (URL elicitation). Chromium then opens it, signs alice in at crm-mcp's
authorization server, then at the calendar provider's own, allows access there, and lands on crm-mcp's
"Calendar connected" page. The screenshots go to this test's tmp dir (printed; CI can keep them as
artifacts), or to BROWSER_SCREENSHOTS_DIR when set.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest
from devkit.topology import Topology
from mcp.shared.exceptions import MCPError
from mcp.types import ElicitResult
from playwright.sync_api import Page, expect

from tests.integration.browser.flow import BrowserClient, authorization
from tests.integration.browser.user import CONSENT_HEADING, sign_in
from tests.support.crm_mcp_state import crm_mcp_vault

# A phone's width: where a code span broken mid-word ("we / ather:read") showed.
NARROW = {"width": 360, "height": 900}
# Code spans shorter than this fit on one line at NARROW; each must be drawn on one line, whole.
SHORT_CODE = 30
# The lines a code span's text is drawn on, counted from its text's own boxes (one per line).
BROKEN_CODES = f"""() => [...document.querySelectorAll("code")].filter(code => {{
    const text = document.createRange();
    text.selectNodeContents(code);
    const lines = new Set([...text.getClientRects()].map(box => Math.round(box.top)));
    return code.textContent.length < {SHORT_CODE} && lines.size > 1;
}}).map(code => code.textContent)"""
LOOK = """() => ({
    provider: document.querySelector("header").textContent.trim(),
    accent: getComputedStyle(document.querySelector("header")).backgroundColor,
    footer: document.querySelector("footer")?.textContent.trim() ?? "",
    font: getComputedStyle(document.body).fontFamily,
    card: getComputedStyle(document.querySelector("main")).backgroundColor,
})"""


async def _accept(context: Any, params: Any) -> ElicitResult:
    return ElicitResult(action="accept")  # declares URL elicitation; the test opens the page itself


def connect_link(topology: Topology) -> str:
    """The link crm-mcp elicits for alice, with no calendar connected (her grant removed from the vault first)."""

    async def elicit() -> str:
        env = topology.env
        async with crm_mcp_vault(env) as vault:
            await vault.delete("alice", env["CALENDAR_AUTH_ISSUER"])
        async with topology.user_session("alice", elicitation_callback=_accept, mode="legacy") as client:
            with pytest.raises(MCPError) as required:
                await client.call_tool("list_my_meetings", {})
        return str(required.value.data["elicitations"][0]["url"])  # type: ignore[index]

    # In a thread of its own: Playwright's sync API holds this thread's event loop.
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(anyio.run, elicit).result(timeout=120)


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("BROWSER_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {directory}")
    return directory


def test_each_provider_has_its_own_look_and_the_connected_page_says_close_this_tab(
    page: Page, topology: Topology, screenshots: Path
) -> None:
    page.set_viewport_size(NARROW)
    page.goto(connect_link(topology))

    expect(page).to_have_title("Sign in - auth-server (development)")
    crm = page.evaluate(LOOK)
    page.screenshot(path=screenshots / "1-crm-auth-server-sign-in.png", full_page=True)
    sign_in(page, "alice", topology.password("alice"))
    if page.title().startswith(CONSENT_HEADING):
        page.get_by_role("button", name="Allow").click()

    expect(page).to_have_title("Sign in - Calendar · sign in to your calendar account")
    calendar = page.evaluate(LOOK)
    page.screenshot(path=screenshots / "2-calendar-provider-sign-in.png", full_page=True)
    # Which provider is asking for a password, told apart by name, colour and footer.
    assert crm["provider"] == "auth-server (development)"
    assert calendar["provider"] == "Calendar · sign in to your calendar account"
    assert crm["accent"] == "rgb(29, 78, 216)"
    assert calendar["accent"] == "rgb(15, 118, 110)"
    assert "not your organisation's" in calendar["footer"]
    assert calendar["footer"] != crm["footer"]

    sign_in(page, "alice", topology.env["CALENDAR_ALICE_PASSWORD"])
    expect(page.get_by_role("heading", name=CONSENT_HEADING)).to_be_visible()
    assert page.evaluate(BROKEN_CODES) == []  # calendar:read, calendar:write, localhost:port: never split
    page.screenshot(path=screenshots / "3-calendar-provider-consent.png", full_page=True)
    page.get_by_role("button", name="Allow").click()

    expect(page).to_have_title("Calendar connected - crm-mcp · connect your calendar")
    expect(page.get_by_role("status")).to_have_text(
        "Your calendar is connected. You can close this tab and go back to your MCP client."
    )
    connected = page.evaluate(LOOK)
    page.screenshot(path=screenshots / "4-calendar-connected.png", full_page=True)
    assert connected["provider"] == "crm-mcp · connect your calendar"
    assert "system-ui" in connected["font"]  # the shared stylesheet, not the browser's default serif
    assert connected["card"] == "rgb(255, 255, 255)"  # the message sits on a card
    for name in ("1-crm-auth-server-sign-in", "2-calendar-provider-sign-in", "4-calendar-connected"):
        assert (screenshots / f"{name}.png").stat().st_size > 0


def test_code_spans_on_the_crm_consent_page_are_never_split_mid_word(
    page: Page, topology: Topology, client: BrowserClient
) -> None:
    page.set_viewport_size(NARROW)
    page.goto(authorization(topology, client, "crm:read tickets:write weather:read").url)
    sign_in(page, "alice", topology.password("alice"))
    expect(page.get_by_role("heading", name=CONSENT_HEADING)).to_be_visible()
    assert page.evaluate(BROKEN_CODES) == []
