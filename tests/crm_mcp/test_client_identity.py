"""crm-mcp's client authentication settings and its public client keys at /.well-known/jwks.json."""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

import httpx2
import pytest
from crm_mcp.client_identity import JWKS_PATH, ClientIdentity
from crm_mcp.client_keys import main as client_keys_main
from crm_mcp.settings import Settings
from oauth_tokens.errors import SettingsError
from oauth_tokens.settings import load_settings
from starlette.applications import Starlette
from starlette.routing import Route

pytestmark = pytest.mark.anyio

REQUIRED = {
    "AUTH_ISSUER": "http://127.0.0.1:9000",
    "CRM_MCP_RESOURCE": "http://127.0.0.1:8001/mcp",
    "WEATHER_API_URL": "http://127.0.0.1:8004",
    "WEATHER_API_KEY": "k",
    "CRM_MCP_CLIENT_ID": "crm-mcp-agent",
    "TICKETS_MCP_URL": "http://127.0.0.1:8002/mcp",
    "TICKETS_MCP_RESOURCE": "http://127.0.0.1:8002/mcp",
    "CRM_API_URL": "http://127.0.0.1:8003",
    "CRM_MCP_PUBLIC_URL": "http://127.0.0.1:8001",
    "CALENDAR_API_URL": "http://127.0.0.1:8005",
    "CALENDAR_API_AUDIENCE": "http://127.0.0.1:8005",
    "CALENDAR_AUTH_ISSUER": "http://127.0.0.1:9001",
    "CALENDAR_CLIENT_ID": "crm-mcp",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("CRM_MCP_CLIENT_SECRET", "CALENDAR_CLIENT_SECRET", "CRM_MCP_CLIENT_AUTH_METHOD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CALENDAR_CLIENT_AUTH_METHOD", raising=False)
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CRM_MCP_VAULT_KEYS", f"k1:{secrets.token_urlsafe(32)}")
    monkeypatch.setenv("CRM_MCP_REQUEST_STATE_KEYS", secrets.token_urlsafe(32))
    monkeypatch.setenv("CRM_MCP_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


@pytest.mark.usefixtures("environment")
def test_the_default_is_private_key_jwt_with_no_secret_and_a_key_generated_on_first_start(tmp_path: Path) -> None:
    settings = load_settings(Settings)
    assert (settings.crm_mcp_client_auth_method, settings.calendar_client_auth_method) == (
        "private_key_jwt",
        "private_key_jwt",
    )
    identity = ClientIdentity(settings)
    own, calendar = identity.own(), identity.calendar()
    assert own.client_secret is None
    assert own.assertion_signer is not None
    assert own.assertion_signer.issuer == "http://127.0.0.1:9000"
    assert calendar.assertion_signer is not None
    assert calendar.assertion_signer.issuer == "http://127.0.0.1:9001"
    (pem,) = (tmp_path / "data" / "client-keys").glob("*.pem")
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("method_setting", "secret_setting"),
    [
        ("CRM_MCP_CLIENT_AUTH_METHOD", "CRM_MCP_CLIENT_SECRET"),
        ("CALENDAR_CLIENT_AUTH_METHOD", "CALENDAR_CLIENT_SECRET"),
    ],
)
@pytest.mark.usefixtures("environment")
def test_a_secret_method_needs_its_secret_and_the_error_names_it(
    monkeypatch: pytest.MonkeyPatch, method_setting: str, secret_setting: str
) -> None:
    monkeypatch.setenv(method_setting, "client_secret_basic")
    with pytest.raises(SettingsError, match=f"{secret_setting}: .*{method_setting}=client_secret_basic"):
        load_settings(Settings)
    monkeypatch.setenv(secret_setting, "a-secret-for-this-test")
    settings = load_settings(Settings)
    identity = ClientIdentity(settings)
    credential = identity.calendar() if method_setting.startswith("CALENDAR") else identity.own()
    assert (credential.auth_method, credential.client_secret) == ("client_secret_basic", "a-secret-for-this-test")
    assert credential.assertion_signer is None


@pytest.mark.usefixtures("environment")
def test_an_unknown_method_stops_start_up_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_MCP_CLIENT_AUTH_METHOD", "client_secret_jwt")
    with pytest.raises(SettingsError, match="CRM_MCP_CLIENT_AUTH_METHOD"):
        load_settings(Settings)


@pytest.mark.usefixtures("environment")
async def test_the_jwks_route_serves_the_public_keys_only() -> None:
    identity = ClientIdentity(load_settings(Settings))
    identity.keys.rotate(publish_ahead_seconds=60)
    app = Starlette(routes=[Route(JWKS_PATH, identity.jwks)])
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://crm-mcp") as http:
        response = await http.get(JWKS_PATH)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=60"
    keys = response.json()["keys"]
    assert len(keys) == 2  # the rotated-in key is published ahead of signing
    assert all(set(key) == {"kty", "crv", "x", "y", "kid", "use", "alg"} for key in keys)
    assert identity.keys.signing_key().kid in {key["kid"] for key in keys}


@pytest.mark.usefixtures("environment")
def test_the_rotate_command_rotates_the_keys_crm_mcp_serves(capsys: pytest.CaptureFixture[str]) -> None:
    identity = ClientIdentity(load_settings(Settings))
    before = identity.keys.signing_key().kid
    client_keys_main(["rotate"])  # what `make rotate-client` runs
    assert "published now, signs from" in capsys.readouterr().out
    published = {key["kid"] for key in identity.keys.jwks()["keys"]}  # the running server re-reads the index
    assert before in published
    assert len(published) == 2
    assert identity.keys.signing_key().kid == before  # the new key signs only after the publish-ahead
