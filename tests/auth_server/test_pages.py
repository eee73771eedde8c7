"""The pages' markup for keyboard and screen-reader users: where focus starts, what the title says, scopes in words.

Rendered straight from auth_server.pages (no server needed); tests/integration/browser/ checks the same in Chromium.
"""

from __future__ import annotations

import dataclasses
import re

from auth_server.pages import LOGIN_FAILED, RequestSummary, consent_page, login_page
from fastapi.responses import HTMLResponse

SUMMARY = RequestSummary(
    request_id="request-1",
    csrf_token="csrf-1",
    client_name="Test <app>",
    client_id="client-1",
    client_verified=False,
    resource_description="CRM MCP server",
    resource_identifier="http://localhost:8001/mcp",
    scopes=("crm:read", "tickets:write"),
    return_to="http://127.0.0.1:53682",
    scope_descriptions={"crm:read": "See your customers & their notes", "tickets:write": "Open tickets"},
)


def _html(response: HTMLResponse) -> str:
    return bytes(response.body).decode()


def _input(html: str, name: str) -> str:
    match = re.search(rf'<input id="{name}"[^>]*>', html)
    assert match is not None, html
    return match.group(0)


def test_a_fresh_login_page_focuses_the_username() -> None:
    html = _html(login_page(SUMMARY))
    assert " autofocus" in _input(html, "username")
    assert " autofocus" not in _input(html, "password")
    assert "<title>Sign in - " in html


def test_after_a_failed_login_focus_is_on_the_password_and_the_title_says_error() -> None:
    html = _html(login_page(SUMMARY, username="alice", error=LOGIN_FAILED))
    password = _input(html, "password")
    assert " autofocus" in password
    assert 'aria-describedby="login-error"' in password
    assert " autofocus" not in _input(html, "username")
    assert '<p id="login-error" class="error" role="alert">' in html
    assert "<title>Error: Sign in - " in html


def test_a_failed_login_without_a_username_focuses_the_username() -> None:
    html = _html(login_page(SUMMARY, username="", error=LOGIN_FAILED))
    assert " autofocus" in _input(html, "username")
    assert html.count(" autofocus") == 1


def test_each_scope_is_described_in_words_with_its_code_beside_it() -> None:
    html = _html(consent_page(SUMMARY, user_name="Alice Adams", username="alice"))
    described = '<li>See your customers &amp; their notes <span class="scope-code">(<code>crm:read</code>)</span></li>'
    assert described in html
    assert '<li>Open tickets <span class="scope-code">(<code>tickets:write</code>)</span></li>' in html


def test_a_scope_without_a_description_shows_its_code() -> None:
    summary = dataclasses.replace(SUMMARY, scope_descriptions={})
    html = _html(consent_page(summary, user_name="Alice Adams", username="alice"))
    assert "<li><code>crm:read</code></li>" in html
