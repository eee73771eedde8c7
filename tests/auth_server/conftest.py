"""Fixtures: a real auth-server process on loopback with generated secrets, a throwaway data dir and a
test config (the shipped config plus a few extra clients), and helpers to call it."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from auth_server.config import default_config_text
from devkit.processes import ServiceProcess, free_port, start_service
from oauth_tokens.client_assertion import AssertionAudience, AssertionKey, ClientAssertionSigner, client_keys
from oauth_tokens.signing_keys import KeyStore

from tests.auth_server.metadata_host import Answer, DocumentHost

# Appended to the shipped config: clients the negative tests need (TOML arrays of tables may continue
# anywhere in the file). Names and secrets are test-only.
TEST_CLIENTS = """
[[clients]]
client_id = "test-native-app"
name = "Test native app"
grant_types = ["authorization_code", "refresh_token"]
resources = ["crm-mcp"]
scopes = ["crm:read", "crm:write", "tickets:read", "tickets:write", "weather:read"]
redirect_uris = ["http://127.0.0.1:53682/callback", "http://localhost:53682/callback?app=native"]

[[clients]]
client_id = "test-web-app"
name = "Test web app (confidential)"
secret_env = "TEST_WEB_APP_SECRET"
grant_types = ["authorization_code", "client_credentials"]
resources = ["crm-mcp", "crm-api"]
scopes = ["crm:read", "tickets:read"]
redirect_uris = ["https://app.example.test/callback"]

[[clients]]
client_id = "test-reporting-job"
name = "Reporting job: client credentials only, no token exchange"
secret_env = "TEST_REPORTING_JOB_SECRET"
grant_types = ["client_credentials"]
resources = ["crm-api"]
scopes = ["crm:read"]

[[clients]]
client_id = "test-exchanger"
name = "Exchanges crm-mcp tokens, but no ID-JAG policy names it (pattern 5)"
secret_env = "TEST_REPORTING_JOB_SECRET"
grant_types = ["urn:ietf:params:oauth:grant-type:token-exchange"]
resources = ["crm-api"]
scopes = ["crm:read"]
exchange_subject_resources = ["crm-mcp"]

# A second audience for ID-JAGs: an authorization server that is not the calendar's.
[[id_jag.audiences]]
issuer = "http://other-saas.example.test"
resources = ["http://other-saas.example.test/api"]
scopes = ["calendar:read"]
clients = { "crm-mcp-agent" = "crm-mcp" }
"""

NATIVE_REDIRECT = "http://127.0.0.1:53682/callback"
WEB_REDIRECT = "https://app.example.test/callback"


@dataclass
class AuthTestEnv:
    """Everything a test needs to know about the auth-server under test (secrets generated per run)."""

    port: int
    workdir: Path
    crm_mcp_port: int = field(default_factory=free_port)
    tickets_mcp_port: int = field(default_factory=free_port)
    crm_api_audience: str = "http://crm-api.internal:8003"
    agent_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    web_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    reporting_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    alice_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    bob_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    state_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    issuer: str = ""
    # Pattern 5: the authorization server ID-JAGs are issued for (the shipped policy's one audience).
    calendar_issuer: str = "http://calendar-auth.example.test"
    calendar_audience: str = "http://calendar-api.example.test"

    def __post_init__(self) -> None:
        self.issuer = self.issuer or f"http://127.0.0.1:{self.port}"

    @property
    def crm_mcp_resource(self) -> str:
        return f"http://127.0.0.1:{self.crm_mcp_port}/mcp"

    @property
    def tickets_mcp_resource(self) -> str:
        return f"http://127.0.0.1:{self.tickets_mcp_port}/mcp"

    @property
    def url(self) -> str:
        """Where the test reaches the server (equals the issuer except in the internal-host-name test)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def config_path(self) -> Path:
        return self.workdir / "auth-server.test.toml"

    def secrets(self) -> list[str]:
        return [
            self.agent_secret,
            self.web_secret,
            self.reporting_secret,
            self.alice_password,
            self.bob_password,
            self.state_key,
        ]

    def environment(self) -> dict[str, str]:
        return {
            "AUTH_ISSUER": self.issuer,
            "AUTH_SERVER_DATA_DIR": str(self.workdir / "data"),
            "AUTH_SERVER_STATE_KEYS": self.state_key,
            "AUTH_SERVER_CONFIG": str(self.config_path),
            "CRM_MCP_RESOURCE": self.crm_mcp_resource,
            "CRM_MCP_PUBLIC_URL": f"http://127.0.0.1:{self.crm_mcp_port}",
            "TICKETS_MCP_RESOURCE": self.tickets_mcp_resource,
            "CRM_API_AUDIENCE": self.crm_api_audience,
            # The shipped config's default is private_key_jwt (test_private_key_jwt.py); most tests here
            # use the secret method, which stays selectable. CRM_MCP_JWKS_URI is set either way (the config
            # names it) and fetched only for private_key_jwt.
            "CRM_MCP_CLIENT_AUTH_METHOD": "client_secret_basic",
            "CRM_MCP_JWKS_URI": f"http://127.0.0.1:{self.crm_mcp_port}/.well-known/jwks.json",
            "CRM_MCP_CLIENT_SECRET": self.agent_secret,
            "TEST_WEB_APP_SECRET": self.web_secret,
            "TEST_REPORTING_JOB_SECRET": self.reporting_secret,
            "DEMO_ALICE_PASSWORD": self.alice_password,
            "DEMO_BOB_PASSWORD": self.bob_password,
            "CALENDAR_AUTH_ISSUER": self.calendar_issuer,
            "CALENDAR_API_AUDIENCE": self.calendar_audience,
            "CALENDAR_CLIENT_ID": "crm-mcp",
        }


def start_auth_server(
    workdir: Path,
    *,
    issuer: str = "",
    config_changes: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    extra_config: str = "",
) -> tuple[AuthTestEnv, ServiceProcess]:
    """Start a server; `config_changes` replaces lines of the shipped config (each must be found);
    `extra_config` is appended (more clients)."""
    env = AuthTestEnv(port=free_port(), workdir=workdir, issuer=issuer)
    workdir.mkdir(parents=True, exist_ok=True)
    config = default_config_text()
    for old, new in (config_changes or {}).items():
        assert old in config, f"not in the shipped config: {old}"
        config = config.replace(old, new)
    env.config_path.write_text(config + TEST_CLIENTS + extra_config, encoding="utf-8")
    process = start_service(
        "auth-server",
        "auth_server",
        port_variable="AUTH_SERVER_PORT",
        env={**env.environment(), **(extra_env or {})},
        workdir=workdir,
        port=env.port,
    )
    return env, process


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthTestEnv, ServiceProcess]]:
    env, process = start_auth_server(tmp_path_factory.mktemp("auth-server"))
    yield env, process
    process.stop()


@pytest.fixture(scope="session")
def auth(auth_server: tuple[AuthTestEnv, ServiceProcess]) -> AuthTestEnv:
    """The shared auth-server under test."""
    return auth_server[0]


@pytest.fixture
def http() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=10.0, follow_redirects=False) as client:
        yield client


@pytest.fixture(autouse=True)
def _authlib_over_loopback_http(monkeypatch: pytest.MonkeyPatch) -> None:
    # Authlib refuses plain http unless told; the servers under test listen on loopback http.
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")


def toml_inline(value: Any) -> str:
    """`value` (JSON-like) as a TOML inline value, for keys written into a test config."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{name} = {toml_inline(item)}" for name, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_inline(item) for item in value) + "]"
    return json.dumps(value)


@dataclass
class AssertionServer:
    """An auth-server where crm-mcp-agent uses private_key_jwt (its keys served by `host` at /agent.json)
    and test-inline-keys has its public keys inline in the config."""

    auth: AuthTestEnv
    process: ServiceProcess
    host: DocumentHost
    agent_keys: KeyStore
    other_keys: KeyStore

    def publish(self) -> None:
        """Serve the agent's current JWKS (as crm-mcp does at /.well-known/jwks.json)."""
        self.host.answers["/agent.json"] = Answer(document=self.agent_keys.jwks())

    def signer(self, keys: AssertionKey | None = None, audience: AssertionAudience = "issuer") -> ClientAssertionSigner:
        return ClientAssertionSigner(keys or self.agent_keys, self.auth.issuer, audience=audience)


def start_assertion_server(workdir: Path) -> AssertionServer:
    host = DocumentHost()
    agent_keys = client_keys(workdir / "agent-keys")
    other_keys = client_keys(workdir / "other-keys")
    inline_client = f"""
[[clients]]
client_id = "test-inline-keys"
name = "Test job whose public keys are in the config"
jwks = {toml_inline(other_keys.jwks())}
grant_types = ["client_credentials"]
resources = ["crm-api"]
scopes = ["crm:read"]
"""
    auth, process = start_auth_server(
        workdir / "server",
        extra_env={"CRM_MCP_CLIENT_AUTH_METHOD": "private_key_jwt", "CRM_MCP_JWKS_URI": host.url("/agent.json")},
        extra_config=inline_client,
    )
    server = AssertionServer(auth, process, host, agent_keys, other_keys)
    server.publish()
    return server


@pytest.fixture(scope="session")
def assertion_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssertionServer]:
    """One per session: its users (test_private_key_jwt, test_client_assertion_attacks) only read its keys
    (a test that rotates them starts its own, start_assertion_server) and count key fetches from a start."""
    server = start_assertion_server(tmp_path_factory.mktemp("assertion-server"))
    yield server
    server.process.stop()
    server.host.stop()
