"""Abuse limits: bounded request bodies, the oldest entries making room when registrations or sign-ins fill
up, failed logins counted before they wait, and per-address rate limits on /authorize, /register and /token.
(tests/abuse/ floods these tables from several addresses.)"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from authlib.common.security import generate_token

from tests.auth_server.browser import Browser, only_form, without_per_request_values
from tests.auth_server.conftest import AuthTestEnv, start_auth_server
from tests.auth_server.flows import authorize_url, native_app

BODY_LIMIT = 16 * 1024  # the README's figure
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

# A second server with tiny limits, so reaching them takes a handful of requests.
TIGHT_LIMITS = {
    "max_failures = 10": "max_failures = 2",
    "max_pending_sign_ins = 10000": "max_pending_sign_ins = 3",
    "max_clients = 1000": "max_clients = 2",
    "authorize = { burst = 120, per_minute = 60 }": "authorize = { burst = 30, per_minute = 1 }",
    "registration = { burst = 60, per_minute = 10 }": "registration = { burst = 3, per_minute = 1 }",
    "token = { burst = 300, per_minute = 300 }": "token = { burst = 3, per_minute = 1 }",
}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthTestEnv]:
    env, process = start_auth_server(tmp_path_factory.mktemp("auth-server-limited"), config_changes=TIGHT_LIMITS)
    yield env
    process.stop()


def _assert_json_error(response: httpx2.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


def _registration(**metadata: Any) -> dict[str, Any]:
    return {"redirect_uris": ["http://localhost:33418/callback"], "token_endpoint_auth_method": "none", **metadata}


@pytest.mark.parametrize("endpoint", ["/token", "/register"])
def test_oversized_api_bodies_get_413_json(auth: AuthTestEnv, http: httpx2.Client, endpoint: str) -> None:
    if endpoint == "/token":
        response = http.post(f"{auth.url}/token", content=f"grant_type=x&pad={'x' * BODY_LIMIT}", headers=FORM)
    else:
        response = http.post(f"{auth.url}/register", json=_registration(client_name="x" * BODY_LIMIT))
    _assert_json_error(response, 413, "invalid_request")


def test_a_body_at_the_limit_is_accepted(auth: AuthTestEnv, http: httpx2.Client) -> None:
    prefix = "grant_type=client_credentials&pad="
    body = prefix + "x" * (BODY_LIMIT - len(prefix))
    response = http.post(f"{auth.url}/token", content=body, headers=FORM)
    _assert_json_error(response, 401, "invalid_client")  # read and processed: no client was named


def test_chunked_bodies_are_read_only_up_to_the_limit(auth: AuthTestEnv, http: httpx2.Client) -> None:
    # An iterator makes the client send Transfer-Encoding: chunked, with no Content-Length.
    endless = (b" " * 1024 for _ in range(1024))  # 1 MiB of JSON whitespace
    _assert_json_error(http.post(f"{auth.url}/register", content=endless), 413, "invalid_request")
    small = iter([json.dumps(_registration(client_name="Chunked")).encode()])
    assert http.post(f"{auth.url}/register", content=small).status_code == 201


def test_a_declared_oversized_body_is_refused_without_waiting_for_it(auth: AuthTestEnv) -> None:
    head = (
        "POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        "Content-Length: 100000000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", auth.port), timeout=5) as connection:
        connection.sendall(head.encode())  # and no body at all: only the header can be judged
        reply = connection.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413 "), reply


@pytest.mark.parametrize("path", ["/authorize/login", "/authorize/consent"])
def test_oversized_forms_get_a_413_page(auth: AuthTestEnv, http: httpx2.Client, path: str) -> None:
    response = http.post(f"{auth.url}{path}", data={"request_id": "x", "pad": "x" * BODY_LIMIT})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html")
    assert "too large" in response.text


def test_registrations_past_the_cap_make_room_and_past_the_rate_are_refused(
    limited: AuthTestEnv, http: httpx2.Client
) -> None:
    registered = [http.post(f"{limited.url}/register", json=_registration()) for _ in range(3)]
    assert [response.status_code for response in registered] == [201, 201, 201]  # never 503

    def known(response: httpx2.Response) -> bool:  # /authorize redirects to its redirect URI, else an error page
        answer = http.get(f"{limited.url}/authorize", params={"client_id": response.json()["client_id"]})
        return answer.status_code == 302

    # max_clients = 2, all from one address: its oldest unused registration made room for the third.
    assert [known(response) for response in registered] == [False, True, True]
    # Three requests from this address used the burst of 3; the rate is 1 a minute.
    too_fast = http.post(f"{limited.url}/register", json=_registration())
    _assert_json_error(too_fast, 429, "temporarily_unavailable")
    assert 0 < int(too_fast.headers["retry-after"]) <= 60


def test_token_requests_past_the_rate_are_refused(limited: AuthTestEnv, http: httpx2.Client) -> None:
    def request() -> httpx2.Response:
        data = {"grant_type": "client_credentials", "resource": limited.crm_api_audience}
        return http.post(limited.token_url, data=data, auth=("crm-mcp-agent", limited.agent_secret))

    assert [request().status_code for _ in range(3)] == [200, 200, 200]
    refused = request()
    _assert_json_error(refused, 429, "temporarily_unavailable")
    assert 0 < int(refused.headers["retry-after"]) <= 60


def test_authorize_requests_past_the_rate_get_a_429_page_per_address(limited: AuthTestEnv, http: httpx2.Client) -> None:
    # From another loopback address, so the other tests' requests (from 127.0.0.1) do not count.
    other_address = httpx2.HTTPTransport(local_address="127.0.0.2")
    with httpx2.Client(transport=other_address, timeout=10.0) as other:
        # No parameters: an error page, so no sign-in is started; the burst is 30.
        answered = [other.get(f"{limited.url}/authorize").status_code for _ in range(30)]
        refused = other.get(f"{limited.url}/authorize")
    assert 429 not in answered
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("text/html")
    assert "Try again in a minute" in refused.text
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert http.get(f"{limited.url}/authorize").status_code != 429  # 127.0.0.1 has its own allowance


def _sign_in_and_deny(browser: Browser, login: httpx2.Response, password: str) -> None:
    consent = browser.submit(login, {"username": "alice", "password": password})
    assert "Allow access?" in consent.text, consent.text
    assert browser.submit(consent, {}, button=("decision", "deny")).status_code == 303


def test_sign_ins_past_the_cap_push_out_the_oldest_unfinished_ones(limited: AuthTestEnv) -> None:
    browser = Browser()
    url, _ = authorize_url(limited, native_app(), generate_token(64))
    opened = [browser.open(url) for _ in range(6)]  # twice max_pending_sign_ins = 3, all from one address
    assert [page.status_code for page in opened] == [200] * 6  # never refused for lack of room
    for login in opened[:3]:  # the oldest made room for the newest
        expired = browser.submit(login, {"username": "alice", "password": limited.alice_password})
        assert "This sign-in page has expired" in expired.text
    for login in opened[3:]:  # every newer sign-in in progress still completes
        _sign_in_and_deny(browser, login, limited.alice_password)
    browser.close()


@pytest.mark.anyio
async def test_parallel_failed_logins_count_before_they_wait_then_are_refused(limited: AuthTestEnv) -> None:
    browser = Browser()
    url, _ = authorize_url(limited, native_app(), generate_token(64))
    form = only_form(browser.open(url)).fields
    login_url = f"{limited.url}/authorize/login"
    guess = {**form, "username": "mallory", "password": "guess"}
    async with httpx2.AsyncClient(cookies=browser.http.cookies, timeout=10.0) as client:
        responses = await asyncio.gather(*(client.post(login_url, data=guess) for _ in range(5)))
    # max_failures = 2: the first two run (the second after a delay), the other three are refused unchecked.
    assert sorted(response.status_code for response in responses) == [200, 200, 429, 429, 429]
    refused = next(response for response in responses if response.status_code == 429)
    assert "Too many failed sign-in attempts" in refused.text
    assert "incorrect" not in refused.text
    assert 0 < int(refused.headers["retry-after"]) <= 900
    # A real user is treated exactly alike, and once refused even the right password is not checked.
    for _ in range(2):
        failed = browser.http.post(login_url, data={**form, "username": "bob", "password": "wrong"})
        assert "The username or password is incorrect." in failed.text
    right = browser.http.post(login_url, data={**form, "username": "bob", "password": limited.bob_password})
    browser.close()
    assert right.status_code == 429
    assert "Allow access?" not in right.text
    assert without_per_request_values(right.text) == without_per_request_values(refused.text)
