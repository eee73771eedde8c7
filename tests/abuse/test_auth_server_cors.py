"""Abuse: any web page reading the auth-server's token and registration answers (CORS `*`).

Measured on main: `/token` and `/register` answered every origin with `Access-Control-Allow-Origin: *`,
so a page on any site a user visits could call them from the user's browser and read the answers, while
the MCP servers allow only the origins in CORS_ALLOWED_ORIGINS. Bounded outcome, against a real
auth-server on loopback with CORS_ALLOWED_ORIGINS set: `/token`, `/revoke` and `/register` allow exactly
the listed origins (a preflight from another gets 400, an answer to it carries no CORS header); the
public metadata stays readable from any origin, and the sign-in pages get no CORS at all.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from tests.abuse.auth_server_support import scaled_auth_server
from tests.auth_server.conftest import AuthTestEnv

ALLOWED = ("https://app.example.com", "http://localhost:6274")  # the second: MCP Inspector's web UI
OTHER = ("https://evil.example", "http://localhost.evil.example:6274", "null")
ACAO = "access-control-allow-origin"


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthTestEnv]:
    origins = {"CORS_ALLOWED_ORIGINS": "https://app.example.com,http://localhost:*"}
    with scaled_auth_server(tmp_path_factory.mktemp("abuse-cors"), {}, origins) as env:
        yield env


@pytest.fixture
def http() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=10.0) as client:
        yield client


def _preflight(http: httpx2.Client, url: str, origin: str) -> httpx2.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    return http.options(url, headers=headers)


@pytest.mark.parametrize("path", ["/token", "/revoke", "/register"])
def test_the_api_endpoints_allow_only_the_listed_origins(auth: AuthTestEnv, http: httpx2.Client, path: str) -> None:
    for origin in ALLOWED:
        allowed = _preflight(http, f"{auth.url}{path}", origin)
        assert allowed.status_code == 200, (origin, allowed.text)
        assert allowed.headers[ACAO] == origin
        assert "access-control-allow-credentials" not in allowed.headers
    for origin in OTHER:
        refused = _preflight(http, f"{auth.url}{path}", origin)
        assert refused.status_code == 400, (origin, refused.text)
        assert ACAO not in refused.headers


def test_answers_to_another_origin_carry_no_cors_header(auth: AuthTestEnv, http: httpx2.Client) -> None:
    evil = {"Origin": OTHER[0]}
    registered = http.post(f"{auth.url}/register", json={"redirect_uris": ["http://localhost:1/cb"]}, headers=evil)
    assert registered.status_code == 201  # processed (a server could send it too), but unreadable to the page
    assert ACAO not in registered.headers
    token = http.post(auth.token_url, data={"grant_type": "client_credentials"}, headers=evil)
    assert token.status_code == 401
    assert ACAO not in token.headers
    listed = http.post(auth.token_url, data={"grant_type": "client_credentials"}, headers={"Origin": ALLOWED[1]})
    assert listed.headers[ACAO] == ALLOWED[1]


def test_public_metadata_stays_open_and_pages_get_no_cors(auth: AuthTestEnv, http: httpx2.Client) -> None:
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/jwks"):
        answer = http.get(f"{auth.url}{path}", headers={"Origin": OTHER[0]})
        assert answer.status_code == 200
        assert answer.headers[ACAO] == "*"
    page = http.get(f"{auth.url}/authorize", headers={"Origin": ALLOWED[0]})
    assert ACAO not in page.headers
