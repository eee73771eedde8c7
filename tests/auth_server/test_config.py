"""The config file: the shipped one loads and says what the issue asks; mistakes stop start-up clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
from auth_server.clients import ClientRegistry
from auth_server.config import ConfigError, default_config_text, load_config
from auth_server.config_sections import GRANT_TOKEN_EXCHANGE
from auth_server.settings import AuthServerSettings
from auth_server.users import UserDirectory
from oauth_tokens.errors import SettingsError
from oauth_tokens.settings import load_settings

STATE_KEY = "k" * 32

ENVIRONMENT = {
    "CRM_MCP_RESOURCE": "http://localhost:8001/mcp",
    "CRM_MCP_PUBLIC_URL": "http://localhost:8001",
    "TICKETS_MCP_RESOURCE": "http://localhost:8002/mcp",
    "CRM_API_AUDIENCE": "http://localhost:8003",
    "CRM_MCP_JWKS_URI": "http://localhost:8001/.well-known/jwks.json",
    "DEMO_ALICE_PASSWORD": "alice-password-for-tests",
    "DEMO_BOB_PASSWORD": "bob-password-for-tests",
    # Pattern 5: the calendar's authorization server, the one audience ID-JAGs are issued for.
    "CALENDAR_AUTH_ISSUER": "http://localhost:9001",
    "CALENDAR_API_AUDIENCE": "http://localhost:8005",
    "CALENDAR_CLIENT_ID": "crm-mcp",
}


def test_shipped_config_describes_the_topology() -> None:
    config = load_config(None, ENVIRONMENT)

    crm_mcp = config.resources["crm-mcp"]
    assert crm_mcp.identifier == "http://localhost:8001/mcp"
    assert set(crm_mcp.scopes) == {"crm:read", "crm:write", "tickets:read", "tickets:write", "weather:read"}
    assert crm_mcp.extra_audiences == ("http://localhost:8003",)
    assert config.resources["tickets-mcp"].extra_audiences == ()
    assert set(config.resources["crm-api"].scopes) == {"crm:read", "crm:write"}
    agent, connect = config.clients
    assert agent.client_id == "crm-mcp-agent"
    # Pattern 4: crm-mcp signs users in at /connect, only to learn (and check) who they are.
    assert (connect.client_id, connect.grant_types, connect.scopes) == (
        "crm-mcp-connect",
        ("authorization_code",),
        ("crm:read",),
    )
    assert connect.redirect_uris == ("http://localhost:8001/connect/calendar/signed-in",)
    # No secret by default: crm-mcp's clients sign assertions, checked with the keys at CRM_MCP_JWKS_URI.
    assert (agent.auth_method, connect.auth_method) == ("private_key_jwt", "private_key_jwt")
    assert agent.jwks_uri == connect.jwks_uri == "http://localhost:8001/.well-known/jwks.json"
    assert set(agent.grant_types) == {"client_credentials", GRANT_TOKEN_EXCHANGE}
    assert set(agent.resources) == {"tickets-mcp", "crm-api"}
    assert set(agent.scopes) == {"tickets:read", "tickets:write", "crm:read", "crm:write"}
    assert [(user.username, user.name) for user in config.users] == [("alice", "Alice Adams"), ("bob", "Bob Baker")]
    assert config.registration.resources == ("crm-mcp",)
    assert config.registration_scopes() == crm_mcp.scopes
    assert (config.lifetimes.access_token_seconds, config.lifetimes.authorization_code_seconds) == (600, 60)
    assert config.lifetimes.refresh_token_seconds == 86400
    # The limits the README's "Limits and refusals" table states.
    assert (config.login.max_failures, config.login.max_pending_sign_ins) == (10, 10_000)
    assert (config.login.max_failures_per_address, config.login.max_pending_sign_ins_per_address) == (100, 100)
    assert (config.login.max_tracked_usernames, config.login.max_tracked_addresses) == (10_000, 10_000)
    assert (config.registration.max_clients, config.registration.unused_client_seconds) == (1000, 3600)
    assert config.registration.max_clients_per_address == 50
    documents = config.client_metadata_documents
    assert (documents.max_cached_documents, documents.max_cached_documents_per_address) == (1000, 50)
    limits = config.rate_limits
    assert (limits.authorize.burst, limits.authorize.per_minute) == (120, 60)
    assert (limits.registration.burst, limits.registration.per_minute) == (60, 10)
    assert (limits.token.burst, limits.token.per_minute) == (300, 300)


@pytest.mark.parametrize(("mode", "crm_mcp_audiences"), [("cascade", ("http://localhost:8003",)), ("exchange", ())])
def test_crm_api_auth_mode_decides_whether_crm_mcp_tokens_name_crm_api(
    mode: str, crm_mcp_audiences: tuple[str, ...]
) -> None:
    config = load_config(None, {**ENVIRONMENT, "CRM_API_AUTH_MODE": mode})
    assert config.resources["crm-mcp"].extra_audiences == crm_mcp_audiences
    assert config.resources["crm-api"].identifier == "http://localhost:8003"  # exchange still targets it


@pytest.mark.parametrize("value", ["passthrough", "", "Exchange"])
def test_a_bad_crm_api_auth_mode_stops_start_up_naming_it(value: str) -> None:
    with pytest.raises(ConfigError, match="Invalid setting CRM_API_AUTH_MODE: must be one of cascade, exchange"):
        load_config(None, {**ENVIRONMENT, "CRM_API_AUTH_MODE": value})


@pytest.mark.parametrize("username", ["crm-mcp-agent", "dyn-alice"])
def test_a_username_that_could_be_a_client_id_is_refused(tmp_path: Path, username: str) -> None:
    user = f'[[users]]\nusername = "{username}"\nname = "X"\npassword_env = "DEMO_BOB_PASSWORD"\n'
    path = tmp_path / "config.toml"
    path.write_text(f"{default_config_text()}\n{user}", encoding="utf-8")
    with pytest.raises(ConfigError, match="could be taken for client ids"):
        load_config(path, ENVIRONMENT)


def test_shipped_config_holds_no_secret_values() -> None:
    text = default_config_text()
    for secret in ("agent-secret-for-tests", "alice-password-for-tests"):
        assert secret not in text
    assert "secret_env" in text
    assert "password_env" in text


def test_a_missing_variable_stops_start_up_naming_it() -> None:
    environment = {name: value for name, value in ENVIRONMENT.items() if name != "TICKETS_MCP_RESOURCE"}
    with pytest.raises(ConfigError, match="TICKETS_MCP_RESOURCE"):
        load_config(None, environment)


def test_a_missing_secret_stops_start_up_naming_it_not_showing_anything() -> None:
    with_secret_method = {**ENVIRONMENT, "CRM_MCP_CLIENT_AUTH_METHOD": "client_secret_basic"}
    config = load_config(None, with_secret_method)
    assert config.clients[0].auth_method == "client_secret_basic"
    with pytest.raises(SettingsError, match="CRM_MCP_CLIENT_SECRET"):
        ClientRegistry.from_config(config, with_secret_method, realm="test")
    # private_key_jwt (the default) reads no secret at all.
    agent = ClientRegistry.from_config(load_config(None, ENVIRONMENT), ENVIRONMENT, realm="test").configured(
        "crm-mcp-agent"
    )
    assert agent is not None
    assert agent.token_endpoint_auth_method == "private_key_jwt"
    assert agent.secret_digest is None
    config = load_config(None, ENVIRONMENT)
    without_password = {name: value for name, value in ENVIRONMENT.items() if name != "DEMO_BOB_PASSWORD"}
    with pytest.raises(SettingsError, match="DEMO_BOB_PASSWORD"):
        UserDirectory.from_config(config, without_password)


@pytest.mark.parametrize(
    ("client_toml", "problem"),
    [
        ('redirect_uris = ["http://evil.example.com/cb"]', "https"),
        ('redirect_uris = ["https://app.example.com/cb#frag"]', "fragment"),
        ('redirect_uris = ["https://app.example.com/cb"]\nresources = ["nope"]', "unknown resources"),
        ('redirect_uris = ["https://app.example.com/cb"]\ngrant_types = ["password"]', "unsupported grant"),
        ('redirect_uris = ["https://app.example.com/cb"]\ngrant_types = ["client_credentials"]', "confidential"),
        ('redirect_uris = ["https://app.example.com/cb"]\nscopes = ["crm:admin"]', "scopes none"),
        ('redirect_uris = ["https://app.example.com/cb"]\nsecret = "inline"', "Extra inputs"),
        ('grant_types = ["client_credentials"]\ntoken_endpoint_auth_method = "private_key_jwt"', "jwks or jwks_uri"),
        ('grant_types = ["client_credentials"]\njwks_uri = "https://a.test/k"\njwks = {keys = []}', "not both"),
        ('grant_types = ["client_credentials"]\njwks_uri = "file:///etc/keys"', "http"),
        ('grant_types = ["client_credentials"]\ntoken_endpoint_auth_method = "client_secret_basic"', "secret_env"),
        ('grant_types = ["client_credentials"]\ntoken_endpoint_auth_method_switch = "NOPE"', "switches"),
        ('grant_types = ["client_credentials"]\ntoken_endpoint_auth_method_switch = "CRM_API_AUTH_MODE"', "switches"),
    ],
)
def test_config_mistakes_are_refused(tmp_path: Path, client_toml: str, problem: str) -> None:
    defaults = {
        "grant_types": 'grant_types = ["authorization_code"]',
        "resources": 'resources = ["crm-mcp"]',
        "scopes": 'scopes = ["crm:read"]',
    }
    lines = [line for key, line in defaults.items() if f"{key} =" not in client_toml]
    client = "\n".join(['client_id = "broken"', *lines, client_toml])
    path = tmp_path / "config.toml"
    path.write_text(f"{default_config_text()}\n[[clients]]\n{client}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=problem):
        load_config(path, ENVIRONMENT)


def test_the_method_switch_picks_the_credential_and_refuses_other_values() -> None:
    config = load_config(None, {**ENVIRONMENT, "CRM_MCP_CLIENT_AUTH_METHOD": "client_secret_post"})
    assert config.clients[0].auth_method == "client_secret_post"
    with pytest.raises(ConfigError, match="CRM_MCP_CLIENT_AUTH_METHOD"):
        load_config(None, {**ENVIRONMENT, "CRM_MCP_CLIENT_AUTH_METHOD": "client_secret_jwt"})


def test_an_unreadable_config_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.toml"):
        load_config(tmp_path / "nowhere.toml", ENVIRONMENT)


@pytest.mark.parametrize(
    "issuer", ["http://localhost:9000/", "localhost:9000", "http://localhost:9000/auth", "ftp://localhost"]
)
def test_the_issuer_must_be_an_exact_origin(monkeypatch: pytest.MonkeyPatch, issuer: str) -> None:
    monkeypatch.setenv("AUTH_ISSUER", issuer)
    with pytest.raises(SettingsError, match="AUTH_ISSUER"):
        load_settings(AuthServerSettings)


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("AUTH_SERVER_PORT", "AUTH_SERVER_HOST", "AUTH_SERVER_DATA_DIR", "AUTH_SERVER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUTH_ISSUER", "http://localhost:9000")
    monkeypatch.setenv("AUTH_SERVER_STATE_KEYS", STATE_KEY)
    for name in ("DATABASE_URL", "DATABASE_MIGRATE_ON_START"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(AuthServerSettings)
    assert (settings.auth_server_host, settings.auth_server_port) == ("127.0.0.1", 9000)
    assert settings.keys_dir == Path("data/auth-server/keys")
    assert settings.auth_server_config is None
    assert settings.database_url.get_secret_value() == ""
    assert settings.database_file == Path("data/auth-server/auth-server.db")
    assert settings.database_migrate_on_start is True


@pytest.mark.parametrize("keys", [None, "", "short-secret", f"{STATE_KEY},short-secret"])
def test_the_state_keys_are_required_and_long(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, keys: str | None
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("AUTH_ISSUER", "http://localhost:9000")
    monkeypatch.delenv("AUTH_SERVER_STATE_KEYS", raising=False)
    if keys is not None:
        monkeypatch.setenv("AUTH_SERVER_STATE_KEYS", keys)
    with pytest.raises(SettingsError, match="AUTH_SERVER_STATE_KEYS") as refused:
        load_settings(AuthServerSettings)
    assert "short-secret" not in str(refused.value)  # named, never echoed


def test_several_state_keys_are_a_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_ISSUER", "http://localhost:9000")
    monkeypatch.setenv("AUTH_SERVER_STATE_KEYS", f"{'n' * 32}, {STATE_KEY}")
    assert load_settings(AuthServerSettings).auth_server_state_keys == ("n" * 32, STATE_KEY)


def test_an_empty_config_setting_means_the_packaged_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_ISSUER", "http://localhost:9000")
    monkeypatch.setenv("AUTH_SERVER_STATE_KEYS", STATE_KEY)
    monkeypatch.setenv("AUTH_SERVER_CONFIG", "")
    assert load_settings(AuthServerSettings).auth_server_config is None


def test_every_shipped_scope_has_a_plain_language_description() -> None:
    config = load_config(None, ENVIRONMENT)
    assert set(config.scope_descriptions) == set(config.all_scopes())
    assert config.scope_descriptions["tickets:write"] == "Open and update support tickets"


WEATHER_DESCRIPTION = '"weather:read" = "Look up the weather where your customers are"\n'


@pytest.mark.parametrize(
    ("replacement", "problem"),
    [
        ("", r"needs a plain-language description of \['weather:read'\]"),
        ('"weather:read" = " "\n', r"needs a plain-language description of \['weather:read'\]"),
        (
            f'{WEATHER_DESCRIPTION}"crm:admin" = "Everything"\n',
            r"describes scopes no resource defines: \['crm:admin'\]",
        ),
    ],
)
def test_scope_descriptions_must_cover_exactly_the_defined_scopes(
    tmp_path: Path, replacement: str, problem: str
) -> None:
    text = default_config_text()
    assert WEATHER_DESCRIPTION in text
    path = tmp_path / "config.toml"
    path.write_text(text.replace(WEATHER_DESCRIPTION, replacement), encoding="utf-8")
    with pytest.raises(ConfigError, match=problem):
        load_config(path, ENVIRONMENT)
