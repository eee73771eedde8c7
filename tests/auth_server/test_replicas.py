"""Two real auth-server processes on one PostgreSQL and one shared key directory, as two replicas behind a
load balancer without stickiness: every step of a flow may land on either; a database outage is a 503."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
from auth_server.config import default_config_text
from authlib.common.security import generate_token
from devkit.headless_login import parse_forms
from devkit.local_servers import LocalServer
from devkit.processes import ServiceProcess, free_port, start_service

from tests.auth_server.browser import Browser, only_form, query_of
from tests.auth_server.conftest import NATIVE_REDIRECT, TEST_CLIENTS, AuthTestEnv
from tests.auth_server.flows import authorize_url, native_app
from tests.support.servers import postgres_server

pytestmark = pytest.mark.slow


@dataclass
class Replicas:
    auth: AuthTestEnv  # its `url` is replica A
    a: ServiceProcess
    b: ServiceProcess
    postgres: LocalServer


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    workdir = tmp_path_factory.mktemp("replicas")
    with postgres_server() as postgres:
        auth = AuthTestEnv(port=free_port(), workdir=workdir)
        auth.config_path.write_text(default_config_text() + TEST_CLIENTS, encoding="utf-8")
        # One issuer (the load balancer's public URL; here replica A's), one data directory, one database.
        a = start_service(
            "auth-server-a",
            "auth_server",
            port_variable="AUTH_SERVER_PORT",
            env={**auth.environment(), "DATABASE_URL": postgres.url},
            workdir=workdir,
            port=auth.port,
        )
        b = start_service(
            "auth-server-b",
            "auth_server",
            port_variable="AUTH_SERVER_PORT",
            env={**auth.environment(), "DATABASE_URL": postgres.url},
            workdir=workdir,
        )
        try:
            yield Replicas(auth, a, b, postgres)
        finally:
            a.stop()
            b.stop()


def _token(url: str, **form: str) -> httpx2.Response:
    return httpx2.post(f"{url}/token", data={"client_id": "test-native-app", **form}, timeout=10.0)


def _code(replicas: Replicas, login_at: str, consent_at: str) -> tuple[str, str]:
    """Open /authorize at replica A, post the login form to `login_at` and the consent to `consent_at`;
    returns (code, verifier)."""
    verifier = generate_token(64)
    url, _ = authorize_url(replicas.auth, native_app(), verifier)
    browser = Browser()
    try:
        login = browser.open(url)
        assert login.status_code == 200, login.text
        form = only_form(login)
        values = {**form.fields, "username": "alice", "password": replicas.auth.alice_password}
        consent = browser.http.post(f"{login_at}{urlsplit(form.action).path or '/authorize/login'}", data=values)
        assert consent.status_code == 200, consent.text
        assert "Allow access?" in consent.text, consent.text
        decision = parse_forms(consent.text)[0]
        redirect = browser.http.post(
            f"{consent_at}{urlsplit(decision.action).path}", data={**decision.fields, "decision": "approve"}
        )
    finally:
        browser.close()
    assert redirect.status_code == 303, redirect.text
    assert redirect.headers["location"].startswith(NATIVE_REDIRECT)
    return query_of(redirect.headers["location"])["code"], verifier


def _redeem(url: str, code: str, verifier: str) -> httpx2.Response:
    return _token(
        url,
        grant_type="authorization_code",
        code=code,
        code_verifier=verifier,
        redirect_uri=NATIVE_REDIRECT,
    )


def test_a_sign_in_spread_over_both_replicas_and_a_code_redeemed_at_the_other(replicas: Replicas) -> None:
    a, b = replicas.a.url, replicas.b.url
    code, verifier = _code(replicas, login_at=b, consent_at=a)  # the CSRF keys are shared: B accepts A's form
    issued = _redeem(b, code, verifier)
    assert issued.status_code == 200, issued.text
    replayed = _redeem(a, code, verifier)
    assert (replayed.status_code, replayed.json()["error"]) == (400, "invalid_grant")
    # The replay at A revoked the grant the redemption at B started.
    refreshed = _token(b, grant_type="refresh_token", refresh_token=issued.json()["refresh_token"])
    assert (refreshed.status_code, refreshed.json()["error"]) == (400, "invalid_grant")


def test_a_refresh_token_issued_at_a_rotates_at_b(replicas: Replicas) -> None:
    a, b = replicas.a.url, replicas.b.url
    code, verifier = _code(replicas, login_at=a, consent_at=b)
    first = _redeem(a, code, verifier).json()["refresh_token"]
    rotated = _token(b, grant_type="refresh_token", refresh_token=first)
    assert rotated.status_code == 200, rotated.text
    again = _token(a, grant_type="refresh_token", refresh_token=rotated.json()["refresh_token"])
    assert again.status_code == 200, again.text
    # An access token signed by either replica verifies with the other's JWKS: one key, shared.
    assert httpx2.get(f"{a}/jwks").json() == httpx2.get(f"{b}/jwks").json()


def test_one_refresh_token_used_at_both_replicas_at_once_succeeds_once_and_revokes_the_grant(
    replicas: Replicas,
) -> None:
    a, b = replicas.a.url, replicas.b.url
    for _ in range(3):
        code, verifier = _code(replicas, login_at=a, consent_at=a)
        token = _redeem(a, code, verifier).json()["refresh_token"]
        with ThreadPoolExecutor(max_workers=2) as pool:
            uses = [pool.submit(_token, url, grant_type="refresh_token", refresh_token=token) for url in (a, b)]
            answers = [use.result() for use in uses]
        assert sorted(answer.status_code for answer in answers) == [200, 400], [answer.text for answer in answers]
        winner = next(answer for answer in answers if answer.status_code == 200).json()["refresh_token"]
        for url in (a, b):  # reuse revoked the family: the winner's new token is dead at every replica
            refused = _token(url, grant_type="refresh_token", refresh_token=winner)
            assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")


def test_a_registration_at_one_replica_is_known_at_the_other(replicas: Replicas) -> None:
    registered = httpx2.post(
        f"{replicas.a.url}/register", json={"redirect_uris": ["http://127.0.0.1:7777/cb"], "client_name": "x"}
    )
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    login = httpx2.get(
        f"{replicas.b.url}/authorize",
        params={
            "client_id": client_id,
            "response_type": "code",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "redirect_uri": "http://127.0.0.1:7777/cb",
        },
    )
    assert login.status_code == 200, login.text
    assert "Sign in" in login.text


def test_a_database_outage_is_503_with_retry_after_and_both_recover(replicas: Replicas) -> None:
    a, b = replicas.a.url, replicas.b.url
    replicas.postgres.stop(signal.SIGINT)  # fast shutdown: the replicas' pooled connections are cut
    try:
        for url in (a, b):
            ready = httpx2.get(f"{url}/health/ready", timeout=10.0)
            assert (ready.status_code, "Retry-After" in ready.headers) == (503, True)
            assert httpx2.get(f"{url}/health", timeout=10.0).status_code == 200  # alive, just not ready
        token = _token(a, grant_type="refresh_token", refresh_token="x" * 43)
        assert token.status_code == 503, token.text
        assert (token.json()["error"], token.headers["Retry-After"]) == ("temporarily_unavailable", "2")
        verifier = generate_token(64)
        page = httpx2.get(authorize_url(replicas.auth, native_app(), verifier)[0].replace(replicas.auth.url, b))
        assert (page.status_code, "Retry-After" in page.headers) == (503, True)
        assert "temporarily unavailable" in page.text
        assert replicas.postgres.url.split("@")[0].split(":")[-1] not in replicas.a.logs() + replicas.b.logs()
    finally:
        replicas.postgres.start()
    for url in (a, b):
        assert httpx2.get(f"{url}/health/ready", timeout=10.0).status_code == 200
    code, verifier = _code(replicas, login_at=b, consent_at=a)
    assert _redeem(b, code, verifier).status_code == 200


_FIRST_START = """
import sys
from pathlib import Path
from oauth_tokens.signing_keys import KeyStore
store = KeyStore(Path(sys.argv[1]), 300)
store.ensure_key()
print(store.signing_key().kid)
"""


def test_two_processes_starting_at_once_on_an_empty_key_directory_make_one_key(tmp_path: Path) -> None:
    for attempt in range(3):
        directory = tmp_path / f"keys-{attempt}"
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", _FIRST_START, str(directory)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for _ in range(2)
        ]
        kids = []
        for process in processes:
            stdout, stderr = process.communicate(timeout=60)
            assert process.returncode == 0, stderr.decode()
            kids.append(stdout.decode().strip())
        assert kids[0] == kids[1]
        assert [path.name for path in directory.glob("*.pem")] == [f"{kids[0]}.pem"]
