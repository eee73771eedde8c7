"""Two real auth-server processes on one Redis (REDIS_URL): a lockout earned on one holds on the other,
a client assertion used on one is a replay on the other, a client metadata document is fetched once for
both; with Redis stopped, the token endpoint answers a client assertion with 503 temporarily_unavailable
and Retry-After (never 500, never accepted unchecked), sign-in still works on per-process limits, and both
recover within 5 s of Redis's return."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx2
import pytest
from authlib.common.security import generate_token
from devkit.local_servers import LocalServer
from devkit.processes import ServiceProcess
from oauth_tokens.client_assertion import CLIENT_ASSERTION_TYPE, ClientAssertionSigner, client_keys
from oauth_tokens.signing_keys import KeyStore

from tests.auth_server.browser import Browser, only_form
from tests.auth_server.conftest import AuthTestEnv, start_auth_server
from tests.auth_server.flows import authorize_url, native_app
from tests.auth_server.metadata_host import Answer, DocumentHost
from tests.auth_server.test_cimd import _open, document
from tests.support.servers import redis_server

SCALED_DOWN = {"max_failures = 10": "max_failures = 2"}
INCORRECT = "The username or password is incorrect."
LOCKED_OUT = "Too many failed sign-in attempts"


@dataclass
class Replicas:
    envs: list[AuthTestEnv]
    processes: list[ServiceProcess]
    keys: KeyStore
    redis: LocalServer
    host: DocumentHost

    def signer(self) -> ClientAssertionSigner:
        return ClientAssertionSigner(self.keys, self.envs[0].issuer, audience="issuer")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    host = DocumentHost()
    workdir = tmp_path_factory.mktemp("auth-replicas")
    keys = client_keys(workdir / "agent-keys")
    host.answers["/agent.json"] = Answer(document=keys.jwks())
    with redis_server() as redis:
        envs: list[AuthTestEnv] = []
        processes: list[ServiceProcess] = []
        try:
            for index in range(2):
                env, process = start_auth_server(
                    workdir / f"server-{index}",
                    issuer=envs[0].issuer if envs else "",  # one issuer, as behind a load balancer
                    config_changes=SCALED_DOWN,
                    extra_env={
                        "REDIS_URL": redis.url,
                        "CRM_MCP_CLIENT_AUTH_METHOD": "private_key_jwt",
                        "CRM_MCP_JWKS_URI": host.url("/agent.json"),
                        "AUTH_SERVER_CIMD_ALLOW_LOOPBACK": "true",  # client metadata documents from `host`
                    },
                )
                envs.append(env)
                processes.append(process)
            yield Replicas(envs, processes, keys, redis, host)
        finally:
            for process in processes:
                process.stop()
            host.stop()


def _login_form(env: AuthTestEnv, browser: Browser) -> tuple[str, dict[str, str]]:
    form = only_form(browser.open(authorize_url(env, native_app(), generate_token(64))[0])).fields
    return f"{env.url}/authorize/login", form


def test_a_lockout_on_one_replica_holds_on_the_other(replicas: Replicas) -> None:
    first, second = Browser(), Browser()
    try:
        url_a, form_a = _login_form(replicas.envs[0], first)
        url_b, form_b = _login_form(replicas.envs[1], second)
        for _ in range(2):
            assert INCORRECT in first.http.post(url_a, data={**form_a, "username": "bob", "password": "no"}).text
        locked = second.http.post(url_b, data={**form_b, "username": "bob", "password": replicas.envs[1].bob_password})
    finally:
        first.close()
        second.close()
    assert locked.status_code == 429
    assert LOCKED_OUT in locked.text
    assert 0 < int(locked.headers["retry-after"]) <= 900


def test_a_client_metadata_document_is_fetched_once_for_both_replicas(replicas: Replicas) -> None:
    replicas.host.answers["/client.json"] = Answer(document=document(replicas.host, "/client.json"))
    client_id = replicas.host.url("/client.json")
    assert [_open(env, client_id).status_code for env in replicas.envs] == [200, 200]  # sign-in pages
    assert replicas.host.requests["/client.json"] == 1  # the second replica used the shared copy


def _client_credentials(env: AuthTestEnv, assertion: str) -> httpx2.Response:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion,
        "resource": env.tickets_mcp_resource,
    }
    return httpx2.post(env.token_url, data=form, timeout=10.0)


def test_an_assertion_used_on_one_replica_is_a_replay_on_the_other(replicas: Replicas) -> None:
    assertion = replicas.signer().sign("crm-mcp-agent", replicas.envs[0].token_url)
    assert _client_credentials(replicas.envs[0], assertion).status_code == 200
    replayed = _client_credentials(replicas.envs[1], assertion)
    assert replayed.status_code == 401
    assert replayed.json()["error"] == "invalid_client"
    assert "jti already used" in replicas.processes[1].logs()


def test_redis_down_means_503_for_replay_checks_and_per_process_limits_then_recovery(replicas: Replicas) -> None:
    env = replicas.envs[1]
    browser = Browser()
    try:
        url, form = _login_form(env, browser)
        replicas.redis.stop()
        try:
            refused = [
                _client_credentials(e, replicas.signer().sign("crm-mcp-agent", e.token_url)) for e in replicas.envs
            ]
            # Sign-in still works: the rate limit and the lockout count in this process meanwhile.
            signed_in = browser.http.post(url, data={**form, "username": "alice", "password": env.alice_password})
        finally:
            replicas.redis.start()
    finally:
        browser.close()
    returned_at = time.monotonic()
    for answer in refused:
        assert answer.status_code == 503
        assert answer.json()["error"] == "temporarily_unavailable"
        assert 0 < int(answer.headers["retry-after"]) <= 5
    assert signed_in.status_code == 200
    assert "Allow access?" in signed_in.text

    for replica in replicas.envs:
        while True:
            answer = _client_credentials(replica, replicas.signer().sign("crm-mcp-agent", replica.token_url))
            if answer.status_code == 200:
                break
            assert answer.status_code == 503
            assert time.monotonic() - returned_at < 5, "not recovered within 5 s of Redis's return"
            time.sleep(0.2)
    for process in replicas.processes:
        logs = process.logs()
        assert "redis://" not in logs
        assert " 500" not in logs
        assert logs.count("is unreachable") == 1
