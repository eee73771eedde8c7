"""Settings loader: env and .env, errors that name the variable and never echo its value."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from oauth_tokens import SettingsError, ValidatorConfig
from oauth_tokens.settings import CommaList, ServiceSettings, TrustSettings, load_settings
from pydantic import Field, SecretStr


class DemoSettings(TrustSettings):
    demo_api_port: int = 8003
    demo_api_audience: str
    demo_client_secret: SecretStr = SecretStr("")
    demo_allowed_hosts: CommaList = ()


class ListSettings(ServiceSettings):
    demo_json_list: list[str] = Field(default_factory=list)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer variables, and a cwd without a .env, unless a test writes one."""
    for name in list(os.environ):
        if name.startswith(("AUTH_", "DEMO_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_loads_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_ISSUER", "http://localhost:9000")
    monkeypatch.setenv("AUTH_ISSUER_ALIASES", "https://a.example, https://b.example/ ,")
    monkeypatch.setenv("DEMO_API_AUDIENCE", "http://localhost:8003")
    monkeypatch.setenv("DEMO_API_PORT", "9100")
    monkeypatch.setenv("DEMO_ALLOWED_HOSTS", "a , b,c")

    settings = load_settings(DemoSettings)

    assert settings.demo_api_port == 9100
    assert settings.demo_allowed_hosts == ("a", "b", "c")
    assert settings.auth_issuer_aliases == ("https://a.example", "https://b.example/")
    assert settings.auth_algorithms == ("RS256", "ES256")
    assert settings.auth_jwks_url is None


def test_missing_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_API_AUDIENCE", "http://localhost:8003")
    with pytest.raises(SettingsError, match=r"^Missing required setting AUTH_ISSUER$"):
        load_settings(DemoSettings)


def test_invalid_value_is_named_but_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_ISSUER", "http://localhost:9000")
    monkeypatch.setenv("DEMO_API_AUDIENCE", "http://localhost:8003")
    monkeypatch.setenv("DEMO_API_PORT", "hunter2-secret-looking")
    with pytest.raises(SettingsError) as failed:
        load_settings(DemoSettings)
    message = str(failed.value)
    assert message.startswith("Invalid setting DEMO_API_PORT: ")
    assert "hunter2" not in message
    assert failed.value.__cause__ is None  # pydantic's error (with the input) is not chained


def test_several_problems_are_reported_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_API_PORT", "x")
    with pytest.raises(SettingsError) as failed:
        load_settings(DemoSettings)
    message = str(failed.value)
    for variable in ("AUTH_ISSUER", "DEMO_API_AUDIENCE", "DEMO_API_PORT"):
        assert variable in message


def test_undecodable_value_is_named_but_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_JSON_LIST", "[not json hunter2")
    with pytest.raises(SettingsError) as failed:
        load_settings(ListSettings)
    assert str(failed.value) == "Invalid setting DEMO_JSON_LIST: the value could not be parsed"


def test_dotenv_in_the_working_directory_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(
        "AUTH_ISSUER=http://from-dotenv:9000\n"
        "DEMO_API_AUDIENCE=http://localhost:8003\n"
        "DEMO_CLIENT_SECRET=dotenv-secret\n"
        "UNRELATED_VARIABLE=ignored\n"
    )
    monkeypatch.setenv("DEMO_API_AUDIENCE", "http://from-env:8003")  # the environment wins over .env

    settings = load_settings(DemoSettings)

    assert settings.auth_issuer == "http://from-dotenv:9000"
    assert settings.demo_api_audience == "http://from-env:8003"
    assert settings.demo_client_secret.get_secret_value() == "dotenv-secret"
    assert "dotenv-secret" not in repr(settings)


def test_validator_config_from_trust_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_ISSUER", "http://localhost:9000")
    monkeypatch.setenv("AUTH_ISSUER_ALIASES", "http://127.0.0.1:9000")
    monkeypatch.setenv("AUTH_JWKS_URL", "http://auth-server:9000/jwks")
    monkeypatch.setenv("AUTH_ALGORITHMS", "RS256")
    monkeypatch.setenv("AUTH_LEEWAY_SECONDS", "5")
    monkeypatch.setenv("DEMO_API_AUDIENCE", "http://localhost:8003")

    settings = load_settings(DemoSettings)
    config = settings.validator_config([settings.demo_api_audience])

    assert config == ValidatorConfig(
        issuers=("http://localhost:9000", "http://127.0.0.1:9000"),
        audiences=("http://localhost:8003",),
        jwks_url="http://auth-server:9000/jwks",
        algorithms=("RS256",),
        leeway_seconds=5,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AUTH_ALGORITHMS", "RS256,HS256"),
        ("AUTH_ALGORITHMS", "none"),
        ("AUTH_ALGORITHMS", "RS256,hunter2"),  # not a supported algorithm
        ("AUTH_ALGORITHMS", " , "),  # no algorithm at all
        ("AUTH_ISSUER", "localhost:9000-hunter2"),  # no scheme
        ("AUTH_ISSUER", "http://"),  # no host
        ("AUTH_JWKS_URL", "file:///etc/hunter2"),
        ("AUTH_JWKS_URL", "auth-server:9000/jwks-hunter2"),
        ("AUTH_DISCOVERY_URL", "//auth-server:9000/hunter2"),
        ("AUTH_DISCOVERY_URL", "http://[hunter2"),  # urlsplit itself refuses it
        ("AUTH_LEEWAY_SECONDS", "-1"),
        ("AUTH_LEEWAY_SECONDS", "301"),
        ("AUTH_TOKEN_CACHE_SIZE", "-1"),
        ("AUTH_TOKEN_CACHE_MAX_AGE_SECONDS", "0"),
    ],
)
def test_bad_trust_setting_is_named_when_loaded_never_echoed(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_ISSUER", "http://localhost:9000")
    monkeypatch.setenv("DEMO_API_AUDIENCE", "http://localhost:8003")
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as failed:
        load_settings(DemoSettings)
    message = str(failed.value)
    assert message.startswith(f"Invalid setting {variable}: ")
    assert ";" not in message  # this one problem only
    assert value not in message
    assert "hunter2" not in message


def test_empty_optional_urls_mean_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("AUTH_JWKS_URL=\nAUTH_DISCOVERY_URL=\n")  # as in .env.example
    monkeypatch.setenv("AUTH_ISSUER", "https://keycloak.example.com/realms/acme")
    monkeypatch.setenv("AUTH_LEEWAY_SECONDS", "0")
    monkeypatch.setenv("DEMO_API_AUDIENCE", "http://localhost:8003")

    config = load_settings(DemoSettings).validator_config(["http://localhost:8003"])

    assert (config.jwks_url, config.discovery_url, config.leeway_seconds) == (None, None, 0)


def test_an_optional_port_may_be_empty_but_not_out_of_range() -> None:
    from oauth_tokens.settings import OptionalPort
    from pydantic import TypeAdapter, ValidationError

    port = TypeAdapter(OptionalPort)
    assert port.validate_python("") is None
    assert port.validate_python("9401") == 9401
    with pytest.raises(ValidationError):
        port.validate_python("0")
