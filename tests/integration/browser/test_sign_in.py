"""The auth-server's login and consent pages in Chromium: sign in, decide, land back at the client; by keyboard too.

The client is registered dynamically with a redirect URI on a loopback page origin, as MCP Inspector does;
every code the browser brings back is exchanged at the token endpoint, which proves it real.
"""

from __future__ import annotations

from devkit.topology import Topology
from playwright.sync_api import Page, expect

from tests.integration.browser.flow import BrowserClient, authorization, exchange
from tests.integration.browser.user import expect_consent, sent_back, sign_in

SCOPE = "crm:read tickets:write"
LOGIN_FAILED = "The username or password is incorrect."


def test_the_right_password_and_allow_send_the_browser_back_with_code_state_and_iss(
    page: Page, topology: Topology, client: BrowserClient
) -> None:
    request = authorization(topology, client, SCOPE)
    page.goto(request.url)
    expect(page).to_have_title("Sign in - auth-server (development)")
    sign_in(page, "alice", topology.password("alice"))

    expect_consent(page)
    scopes = page.get_by_role("list", name="With these permissions (scopes)").get_by_role("listitem")
    expect(scopes).to_have_text(
        ["See your customers and their notes (crm:read)", "Open and update support tickets (tickets:write)"]
    )
    page.get_by_role("button", name="Allow").click()

    back = sent_back(page, client)
    assert back["state"] == request.state
    assert back["iss"] == topology.env["AUTH_ISSUER"]
    assert exchange(topology, client, request, back["code"])


def test_a_wrong_password_keeps_the_username_and_focuses_the_password(
    page: Page, topology: Topology, client: BrowserClient
) -> None:
    page.goto(authorization(topology, client, SCOPE).url)
    sign_in(page, "bob", "not-bobs-password")

    expect(page.get_by_role("alert")).to_have_text(LOGIN_FAILED)
    expect(page).to_have_title("Error: Sign in - auth-server (development)")
    expect(page.get_by_label("Username")).to_have_value("bob")
    password = page.get_by_label("Password")
    expect(password).to_be_focused()
    expect(password).to_have_accessible_description(LOGIN_FAILED)

    page.keyboard.type(topology.password("bob"))  # straight into the focused field
    page.keyboard.press("Enter")
    expect_consent(page)
    expect(page.get_by_text("Signed in as Bob Baker (bob).")).to_be_visible()


def test_deny_sends_the_browser_back_with_access_denied_and_no_code(
    page: Page, topology: Topology, client: BrowserClient
) -> None:
    request = authorization(topology, client, SCOPE)
    page.goto(request.url)
    sign_in(page, "alice", topology.password("alice"))
    expect_consent(page)
    page.get_by_role("button", name="Deny").click()

    back = sent_back(page, client)
    assert back["error"] == "access_denied"
    assert back["state"] == request.state
    assert back["iss"] == topology.env["AUTH_ISSUER"]
    assert "code" not in back


def test_sign_in_and_consent_by_keyboard_alone(page: Page, topology: Topology, client: BrowserClient) -> None:
    request = authorization(topology, client, SCOPE)
    page.goto(request.url)
    keyboard = page.keyboard

    expect(page.get_by_label("Username")).to_be_focused()  # nothing to click first
    keyboard.type("alice")
    keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    keyboard.type(topology.password("alice"))
    keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    keyboard.press("Enter")

    expect_consent(page)
    keyboard.press("Tab")
    allow = page.get_by_role("button", name="Allow")
    expect(allow).to_be_focused()  # the first stop on the page: the decision, not a link
    keyboard.press("Tab")
    expect(page.get_by_role("button", name="Deny")).to_be_focused()
    keyboard.press("Shift+Tab")
    expect(allow).to_be_focused()
    keyboard.press("Space")

    back = sent_back(page, client)
    assert back["state"] == request.state
    assert exchange(topology, client, request, back["code"])
