"""Abuse: /authorize requests left waiting for a user (sign-ins in progress) must not fill the table for
everyone.

On main the table refused new sign-ins once full (HTTP 503 "Try again in a few minutes"): one address
could hold 720 of the 10 000 (the /authorize rate limit's allowance in 10 minutes), so 14 addresses
locked every user out of signing in. Here the same at a scale of seconds: a table of 20 with a share of 5
per address, four addresses opening 10 sign-ins each (twice the table), against a real auth-server on
loopback. Bounded outcome: a user from another address starts a sign-in, the flood goes on, and the user
still finishes: signs in, approves, and gets a code.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from authlib.common.security import generate_token

from tests.abuse.auth_server_support import from_address, scaled_auth_server
from tests.auth_server.browser import Browser, query_of
from tests.auth_server.conftest import AuthTestEnv
from tests.auth_server.flows import authorize_url, native_app

SCALED = {
    "max_pending_sign_ins = 10000": "max_pending_sign_ins = 20",
    "max_pending_sign_ins_per_address = 100": "max_pending_sign_ins_per_address = 5",
}
FLOODERS = (2, 3, 4, 5)


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthTestEnv]:
    with scaled_auth_server(tmp_path_factory.mktemp("abuse-pending"), SCALED) as env:
        yield env


def _flood(url: str) -> list[int]:
    statuses: list[int] = []
    for address in FLOODERS:
        with from_address(address) as client:
            statuses += [client.get(url).status_code for _ in range(10)]
    return statuses


def test_a_sign_in_flood_from_a_few_addresses_never_stops_a_user_signing_in(auth: AuthTestEnv) -> None:
    url, state = authorize_url(auth, native_app(), generate_token(64))
    assert _flood(url) == [200] * 40  # never 503: past its share each address evicts its own

    browser = Browser()  # the user, from 127.0.0.1
    login = browser.open(url)
    assert login.status_code == 200, login.text
    assert _flood(url) == [200] * 40  # the flood goes on while the user types
    consent = browser.submit(login, {"username": "alice", "password": auth.alice_password})
    assert "Allow access?" in consent.text, consent.text
    assert _flood(url) == [200] * 40  # and while the user reads the consent page
    redirect = browser.submit(consent, {}, button=("decision", "approve"))
    browser.close()
    assert redirect.status_code == 303, redirect.text
    answer = query_of(redirect.headers["location"])
    assert answer["state"] == state
    assert answer["code"]
