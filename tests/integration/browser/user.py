"""What the user does in the browser, found the way assistive technology finds it: by label, role and name."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.integration.browser.flow import BrowserClient, query_of

CONSENT_HEADING = "Allow access?"


def sign_in(page: Page, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def expect_consent(page: Page) -> None:
    expect(page.get_by_role("heading", name=CONSENT_HEADING)).to_be_visible()


def sent_back(page: Page, client: BrowserClient) -> dict[str, str]:
    """Wait until the browser lands on the client's redirect URI; its query parameters."""
    page.wait_for_url(lambda url: url.startswith(f"{client.redirect_uri}?"))
    return query_of(page.url)
