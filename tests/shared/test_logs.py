"""Logging: one format, and no bearer token or JWT survives into the output."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from oauth_tokens.logs import RedactSecretsFilter, configure_logging, redact

JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYS0xIn0.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVzLWhlcmUtZm9yLXRlc3Q"
OPAQUE = "opaque-access-token-value-123"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_configured_logging_redacts_messages_args_and_tracebacks(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug")
    logger = logging.getLogger("oauth_tokens.test")

    logger.info("header Authorization: Bearer %s", OPAQUE)
    logger.warning("token %s in args", JWT)
    logger.error("dict args %(token)s", {"token": JWT})
    logger.debug("inline %s", "Authorization: bearer " + OPAQUE)
    logger.info("form body grant_type=client_credentials&client_secret=%s&scope=a", "hunter2")
    try:
        raise ValueError(f"bad token {JWT}")
    except ValueError:
        logger.exception("failed")

    output = capsys.readouterr().err
    assert JWT not in output
    assert OPAQUE not in output
    assert "hunter2" not in output
    assert "c2lnbmF0dXJl" not in output
    assert output.count("[REDACTED]") >= 6
    first_line = output.splitlines()[0]
    assert " INFO oauth_tokens.test: header Authorization: Bearer [REDACTED]" in first_line


def test_filter_leaves_ordinary_messages_alone() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "user %s fetched %d keys", ("alice", 3), None)
    assert RedactSecretsFilter().filter(record)
    assert record.getMessage() == "user alice fetched 3 keys"


def test_redact_patterns() -> None:
    assert redact(f"Bearer {JWT}") == "Bearer [REDACTED]"
    assert redact(f"token={JWT}.") == "token=[REDACTED]."
    assert redact('{"access_token": "abc123", "expires_in": 60}') == '{"access_token": "[REDACTED]", "expires_in": 60}'
    assert redact("GET http://auth-server:9000/.well-known/oauth-authorization-server") == (
        "GET http://auth-server:9000/.well-known/oauth-authorization-server"
    )
    assert redact("module oauth_tokens.client_credentials.ClientCredentialsAuth") == (
        "module oauth_tokens.client_credentials.ClientCredentialsAuth"
    )
    # An access log line of a redirect back from an authorization server, and of a connect link.
    assert redact('"GET /connect/calendar/callback?code=Zx9_a-1&state=s1&iss=http%3A%2F%2Fa HTTP/1.1" 200') == (
        '"GET /connect/calendar/callback?code=[REDACTED]&state=s1&iss=http%3A%2F%2Fa HTTP/1.1" 200'
    )
    assert redact("GET /connect/calendar?ref=IqFHCXxQT3b HTTP/1.1") == "GET /connect/calendar?ref=[REDACTED] HTTP/1.1"
    assert redact("code_challenge=abc&code_verifier=xyz") == "code_challenge=abc&code_verifier=[REDACTED]"


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(("level", "request_lines"), [("INFO", False), ("WARNING", False), ("DEBUG", True)])
def test_httpx2_request_lines_only_at_debug(level: str, request_lines: bool) -> None:
    try:
        configure_logging(level)
        for name in ("httpx2", "httpcore2"):
            assert logging.getLogger(name).isEnabledFor(logging.INFO) is request_lines
            assert logging.getLogger(name).isEnabledFor(logging.WARNING)
    finally:
        for name in ("httpx2", "httpcore2"):
            logging.getLogger(name).setLevel(logging.NOTSET)
