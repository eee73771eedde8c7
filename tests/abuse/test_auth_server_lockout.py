"""Abuse: a failed-login table full of junk (username, address) pairs must not lock everyone out.

Measured on main: with the default 10 000 remembered pairs, 20 addresses (510 failed logins each, the
login rate limit's allowance in a window) filled the table, and from then on every sign-in from a new
(username, address) pair was refused, correct passwords included. Here the same attack at a scale that
takes seconds: a table of 20 usernames, four flooding addresses with 10 junk usernames each (twice the
table), against a real auth-server on loopback. Bounded outcome: an untargeted user signing in from a new
address with the right password gets the consent page; the account the attacker targeted stays locked,
for every address, through the flood.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from authlib.common.security import generate_token

from tests.abuse.auth_server_support import from_address, scaled_auth_server
from tests.auth_server.browser import Browser, only_form
from tests.auth_server.conftest import AuthTestEnv
from tests.auth_server.flows import authorize_url, native_app

SCALED = {
    "max_failures = 10": "max_failures = 3",
    "max_failures_per_address = 100": "max_failures_per_address = 10",
    "max_tracked_usernames = 10000": "max_tracked_usernames = 20",
}
FLOODERS = (3, 4, 5, 6)  # 127.0.0.3 to 127.0.0.6
JUNK_PER_FLOODER = 10
INCORRECT = "The username or password is incorrect."
LOCKED_OUT = "Too many failed sign-in attempts"
CONSENT = "Allow access?"


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthTestEnv]:
    with scaled_auth_server(tmp_path_factory.mktemp("abuse-lockout"), SCALED) as env:
        yield env


def test_a_junk_flood_neither_locks_out_a_new_user_nor_reopens_a_locked_account(auth: AuthTestEnv) -> None:
    browser = Browser()
    form = only_form(browser.open(authorize_url(auth, native_app(), generate_token(64))[0])).fields
    login_url = f"{auth.url}/authorize/login"

    def sign_in(address: int, username: str, password: str) -> str:
        with from_address(address, browser.http.cookies) as client:
            answer = client.post(login_url, data={**form, "username": username, "password": password})
        return next(text for text in (CONSENT, LOCKED_OUT, INCORRECT) if text in answer.text)

    # The attacker targets alice from 127.0.0.2 until she is locked out.
    assert [sign_in(2, "alice", f"guess-{number}") for number in range(3)] == [INCORRECT] * 3
    assert sign_in(2, "alice", auth.alice_password) == LOCKED_OUT

    # Then floods the table with junk usernames from four addresses: twice as many as it holds.
    flood = [
        sign_in(address, f"junk-{address}-{number}", "x") for address in FLOODERS for number in range(JUNK_PER_FLOODER)
    ]
    assert flood == [INCORRECT] * len(flood)  # each a plain failure: nobody's entry blocked them

    # bob, whom nobody targeted, signs in from an address the table has never seen: not refused.
    assert sign_in(9, "bob", auth.bob_password) == CONSENT
    # alice stays locked out, from any address, even with her password: the flood evicted only junk.
    assert sign_in(10, "alice", auth.alice_password) == LOCKED_OUT
    browser.close()
