"""CORS_ALLOWED_ORIGINS: which origin patterns load, which fail start-up naming the variable, what they match.

The wire behaviour (preflight before the bearer check, 403 for another Origin) is tested against a real
tickets-mcp in tests/tickets_mcp/test_cors.py, and from a real browser in tests/integration/browser/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from oauth_tokens import SettingsError
from oauth_tokens.cors import DEFAULT_ALLOWED_ORIGINS, CorsSettings, checked_origin, origin_regex
from oauth_tokens.settings import TrustSettings, load_settings


class McpServerSettings(TrustSettings, CorsSettings):
    """As crm-mcp and tickets-mcp compose theirs."""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CORS_ALLOWED_ORIGINS", raising=False)
    monkeypatch.setenv("AUTH_ISSUER", "http://localhost:9000")
    monkeypatch.chdir(tmp_path)  # no .env


def test_the_default_is_loopback_pages_on_any_port() -> None:
    assert load_settings(McpServerSettings).cors_allowed_origins == DEFAULT_ALLOWED_ORIGINS
    assert DEFAULT_ALLOWED_ORIGINS == ("http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*")


def test_origins_are_read_comma_separated_and_lower_cased(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "https://App.Example.com, http://localhost:6274,")
    assert load_settings(McpServerSettings).cors_allowed_origins == ("https://app.example.com", "http://localhost:6274")


def test_empty_allows_no_browser_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "")
    settings = load_settings(McpServerSettings)
    assert settings.cors_allowed_origins == ()
    assert origin_regex(settings.cors_allowed_origins) is None


@pytest.mark.parametrize(
    "value",
    [
        "https://app.example.com/",  # a trailing slash is a path: browsers never send one
        "https://app.example.com/mcp",
        "app.example.com",
        "ftp://app.example.com",
        "https://user@app.example.com",
        "https://*.example.com",
        "https://app.example.com:80x",
        "https://app.example.com:99999",
        "https://app.example.com:0443",
    ],
)
def test_a_bad_origin_stops_start_up_naming_the_variable_never_the_value(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", value)
    with pytest.raises(SettingsError, match=r"^Invalid setting CORS_ALLOWED_ORIGINS: ") as failed:
        load_settings(McpServerSettings)
    assert value not in str(failed.value)


@pytest.mark.parametrize("value", ["*", "http://localhost:*, *"])
def test_star_is_refused_with_the_reason(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", value)
    refusal = r"^Invalid setting CORS_ALLOWED_ORIGINS: Value error, `\*` is not allowed: list each origin"
    with pytest.raises(SettingsError, match=refusal):
        load_settings(McpServerSettings)
    assert checked_origin(" HTTP://LOCALHOST:* ") == "http://localhost:*"


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:6274", True),
        ("http://127.0.0.1:1", True),
        ("http://localhost:65535", True),
        ("http://localhost:65536", False),  # ports as the Host check reads them: 1-65535, no leading zero
        ("http://localhost:99999", False),
        ("http://localhost:0", False),
        ("http://localhost:06274", False),
        ("http://[::1]:8001", True),
        ("https://app.example.com", True),
        ("http://localhost", False),  # `:*` means some port, as in the SDK's allowed_origins
        ("https://localhost:6274", False),
        ("http://localhost:6274.evil.example", False),
        ("http://evil.example", False),
        ("https://app.example.com:8443", False),
        ("https://app.example.com.evil.example", False),
        ("null", False),  # a sandboxed iframe or a file:// page
    ],
)
def test_origin_patterns_match_exactly(origin: str, allowed: bool) -> None:
    pattern = origin_regex([*DEFAULT_ALLOWED_ORIGINS, "https://app.example.com"])
    assert pattern is not None
    assert bool(re.fullmatch(pattern, origin)) is allowed
