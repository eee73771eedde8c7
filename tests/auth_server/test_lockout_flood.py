"""A flood of junk usernames cannot reopen a locked-out account, and one address can neither spray
guesses over many usernames nor flood the sign-in form: against a real auth-server whose limits are
scaled down by its config (5 remembered usernames, a lockout after 2 failures of a username or 8 from an
address, a login burst of 9 per address). tests/abuse/test_auth_server_lockout.py floods from several
addresses and signs in as an untargeted user."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from authlib.common.security import generate_token

from tests.auth_server.browser import Browser, only_form
from tests.auth_server.conftest import AuthTestEnv, start_auth_server
from tests.auth_server.flows import authorize_url, native_app

SCALED_DOWN = {
    "max_failures = 10": "max_failures = 2",
    "max_failures_per_address = 100": "max_failures_per_address = 8",
    "max_tracked_usernames = 10000": "max_tracked_usernames = 5",
    "login = { burst = 60, per_minute = 30 }": "login = { burst = 9, per_minute = 1 }",
}
INCORRECT = "The username or password is incorrect."
LOCKED_OUT = "Too many failed sign-in attempts"
RATE_LIMITED = "Too many sign-in attempts from your address"


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthTestEnv]:
    env, process = start_auth_server(tmp_path_factory.mktemp("auth-server-flood"), config_changes=SCALED_DOWN)
    yield env
    process.stop()


def test_junk_usernames_cannot_flush_a_lockout_and_one_address_is_limited(scaled: AuthTestEnv) -> None:
    browser = Browser()
    form = only_form(browser.open(authorize_url(scaled, native_app(), generate_token(64))[0])).fields
    login_url = f"{scaled.url}/authorize/login"

    def bob(password: str) -> httpx2.Response:
        return browser.http.post(login_url, data={**form, "username": "bob", "password": password})

    assert INCORRECT in bob("wrong").text
    assert INCORRECT in bob("wrong").text
    assert LOCKED_OUT in bob(scaled.bob_password).text  # locked out: even the right password is not checked

    # From another address (same browser cookies, so the form is accepted): one junk username each time.
    with httpx2.Client(
        transport=httpx2.HTTPTransport(local_address="127.0.0.2"), cookies=browser.http.cookies, timeout=10.0
    ) as flooder:
        answers = [
            flooder.post(login_url, data={**form, "username": f"junk-{number}", "password": "x"})
            for number in range(10)
        ]
    texts = [next(text for text in (INCORRECT, LOCKED_OUT, RATE_LIMITED) if text in a.text) for a in answers]
    # 8 junk usernames overflow the table of 5 (junk evicts junk, never bob's lockout) and reach the
    # address's limit of 8 failures; the 9th is refused unchecked, the 10th is over the login burst of 9.
    assert texts == [INCORRECT] * 8 + [LOCKED_OUT, RATE_LIMITED]
    assert all(answer.status_code == 429 for answer in answers[8:])
    assert 0 < int(answers[-1].headers["retry-after"]) <= 60

    still_locked = bob(scaled.bob_password)
    browser.close()
    assert still_locked.status_code == 429
    assert LOCKED_OUT in still_locked.text
    assert "Allow access?" not in still_locked.text
