"""The login and consent pages: accessible HTML, nothing revealed about which usernames exist, repeated
failures slowed, forms bound to the browser that loaded them (CSRF), framing forbidden."""

from __future__ import annotations

import time

import httpx2
from authlib.common.security import generate_token

from tests.auth_server.browser import Browser, only_form, without_per_request_values
from tests.auth_server.conftest import AuthTestEnv
from tests.auth_server.flows import authorize_url, native_app


def _login_page(auth: AuthTestEnv, browser: Browser) -> httpx2.Response:
    url, _ = authorize_url(auth, native_app(), generate_token(64))
    page = browser.open(url)
    assert page.status_code == 200, page.text
    return page


def test_the_login_page_is_plain_accessible_html(auth: AuthTestEnv) -> None:
    browser = Browser()
    page = _login_page(auth, browser)
    browser.close()
    html = page.text
    assert page.headers["content-type"].startswith("text/html")
    assert '<html lang="en">' in html
    assert '<label for="username">' in html
    assert 'id="username"' in html
    assert '<label for="password">' in html
    assert 'id="password"' in html
    assert 'autocomplete="username"' in html
    assert 'autocomplete="current-password"' in html
    assert 'type="password"' in html
    assert "<script" not in html
    assert "Test native app" in html  # names the client
    assert "development stand-in" in html


def test_pages_cannot_be_framed_or_cached(auth: AuthTestEnv) -> None:
    browser = Browser()
    page = _login_page(auth, browser)
    browser.close()
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"


def test_the_consent_page_names_client_scopes_and_resource(auth: AuthTestEnv) -> None:
    browser = Browser()
    url, _ = authorize_url(auth, native_app("crm:read weather:read"), generate_token(64))
    consent = browser.sign_in(url, "alice", auth.alice_password)
    browser.close()
    html = consent.text
    assert "Allow access?" in html
    assert "Alice Adams" in html
    assert "Test native app" in html
    assert "test-native-app" in html
    assert "<code>crm:read</code>" in html
    assert "<code>weather:read</code>" in html
    assert "<code>crm:write</code>" not in html
    assert auth.crm_mcp_resource in html
    assert "http://127.0.0.1:53682" in html  # where the browser will be sent


def _failed_login(auth: AuthTestEnv, username: str, password: str) -> tuple[httpx2.Response, float]:
    browser = Browser()
    page = _login_page(auth, browser)
    started = time.monotonic()
    response = browser.submit(page, {"username": username, "password": password})
    elapsed = time.monotonic() - started
    browser.close()
    return response, elapsed


def test_a_failed_login_does_not_reveal_whether_the_user_exists(auth: AuthTestEnv) -> None:
    wrong_password, _ = _failed_login(auth, "bob", "not-bobs-password")
    unknown_user, _ = _failed_login(auth, "nobody-by-this-name", "whatever")
    for response in (wrong_password, unknown_user):
        assert response.status_code == 200
        assert "The username or password is incorrect." in response.text
        assert "Allow access?" not in response.text
    assert without_per_request_values(wrong_password.text) == without_per_request_values(unknown_user.text)
    # Sign bob in properly, which resets his failure count for the tests that follow.
    browser = Browser()
    url, _ = authorize_url(auth, native_app(), generate_token(64))
    assert "Allow access?" in browser.sign_in(url, "bob", auth.bob_password).text
    browser.close()


def test_repeated_failures_are_slowed(auth: AuthTestEnv) -> None:
    username = "mallory-guessing"
    _, first = _failed_login(auth, username, "guess-1")
    _, second = _failed_login(auth, username, "guess-2")
    _, third = _failed_login(auth, username, "guess-3")
    # Config: 0.5 s after one failure, doubling: the third attempt waits 1 s on top of the password check.
    assert second >= 0.5
    assert third >= 1.0
    assert third > first + 0.8


def test_a_form_posted_without_this_browsers_cookie_is_refused(auth: AuthTestEnv) -> None:
    browser = Browser()
    page = _login_page(auth, browser)
    browser.close()
    form = only_form(page)
    forged = {**form.fields, "username": "alice", "password": auth.alice_password}
    attacker = Browser()  # a different browser: no cookie, or its own
    response = attacker.http.post(f"{auth.url}/authorize/login", data=forged)
    assert response.status_code == 403
    assert "Allow access?" not in response.text
    _login_page(auth, attacker)  # now it has a cookie of its own: still not the one the form is bound to
    response = attacker.http.post(f"{auth.url}/authorize/login", data=forged)
    attacker.close()
    assert response.status_code == 403


def test_consent_needs_a_signed_in_user_and_the_consent_csrf_value(auth: AuthTestEnv) -> None:
    browser = Browser()
    page = _login_page(auth, browser)
    # The login form's values do not work for the consent step, and nobody has signed in yet.
    response = browser.http.post(
        f"{auth.url}/authorize/consent", data={**only_form(page).fields, "decision": "approve"}
    )
    browser.close()
    assert response.status_code in (400, 403)
    assert "location" not in response.headers


def test_a_client_name_is_escaped(auth: AuthTestEnv, http: httpx2.Client) -> None:
    registration = http.post(
        f"{auth.url}/register",
        json={
            "redirect_uris": ["http://localhost:53999/callback"],
            "client_name": '<script>alert("x")</script>',
            "token_endpoint_auth_method": "none",
        },
    )
    assert registration.status_code == 201, registration.text
    client = registration.json()
    session = native_app()
    session.client_id = client["client_id"]
    session.redirect_uri = "http://localhost:53999/callback"
    url, _ = authorize_url(auth, session, generate_token(64))
    page = http.get(url)
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert "&lt;script&gt;" in page.text
    assert "not verified" in page.text  # a self-asserted name is marked as such
