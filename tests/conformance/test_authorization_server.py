"""The official MCP conformance suite's authorization-server scenarios against the project's auth-server.

`conformance authorization` plays an OAuth client against a real authorization server: it reads the RFC
8414 metadata (`authorization-server-metadata-endpoint`), then runs an authorization-code grant with PKCE
(`authorization-code-grant`): it prints the authorization URL for a person to open, waits for the redirect
to its own loopback callback server, and redeems the code. Here the auth-server runs as a real process;
the client is registered through its real dynamic client registration (a public PKCE client, as MCP
clients are) and the person is the project's headless login (devkit/src/devkit/headless_login.py) signing alice
in and approving consent on the real pages. Every scenario the pinned suite offers applies and must pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from devkit.headless_login import HeadlessBrowser, open_in_browser
from devkit.processes import free_port

from tests.auth_server.conftest import AuthTestEnv, start_auth_server
from tests.conformance.suite import ConformanceSuite

# The pinned suite's authorization-server scenarios, and the check each must pass (a scenario that cannot
# apply reports SKIPPED, which would not fail the run: each one is required by name).
REQUIRED_CHECKS = {
    "authorization-server-metadata-endpoint": "authorization-server-metadata",
    "authorization-code-grant": "authorization-code-grant",
}


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthTestEnv]:
    env, process = start_auth_server(tmp_path_factory.mktemp("conformance-auth-server"))
    yield env
    process.stop()


def register_client(auth: AuthTestEnv, redirect_uri: str) -> str:
    """A public client registered the way MCP clients register (RFC 7591), for the suite's callback URI."""
    registration = {"client_name": "MCP conformance suite", "redirect_uris": [redirect_uri]}
    response = httpx2.post(f"{auth.url}/register", json=registration, timeout=10.0)
    assert response.status_code == 201, response.text
    client_id: str = response.json()["client_id"]
    return client_id


def test_authorization_server_scenarios_pass(suite: ConformanceSuite, auth_server: AuthTestEnv, tmp_path: Path) -> None:
    callback_port = free_port()
    client_id = register_client(auth_server, f"http://127.0.0.1:{callback_port}/callback")
    alice = HeadlessBrowser("alice", auth_server.alice_password)

    def sign_in(authorization_url: str) -> None:
        # Log in and approve on the real pages, then follow the redirect to the suite's callback server.
        anyio.run(lambda: open_in_browser(authorization_url, {auth_server.url: alice}))

    run = suite.authorization(
        [
            "--url",
            auth_server.issuer,
            "--client-id",
            client_id,
            "--resource",
            auth_server.crm_mcp_resource,
            "--port",
            str(callback_port),
        ],
        tmp_path,
        authorization_endpoint=f"{auth_server.url}/authorize",
        visit=sign_in,
    )
    run.assert_passed()
    passed = {check["id"] for check in run.successes()}
    missing = {scenario: check for scenario, check in REQUIRED_CHECKS.items() if check not in passed}
    assert not missing, f"scenarios that did not pass: {missing}\n{run.output}"
