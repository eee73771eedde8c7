"""Attack catalog, token endpoint: forged, stolen and misdirected client assertions (RFC 7523).

Each is sent to the real auth-server as crm-mcp-agent (a private_key_jwt client) and refused with 401
invalid_client; the server's log names the check that failed and never holds the assertion.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from oauth_tokens.client_assertion import CLIENT_ASSERTION_TYPE

from tests.auth_server.conftest import AssertionServer
from tests.shared.tokens import hmac_signed, unsigned

AGENT = "crm-mcp-agent"
AssertionBuilder = Callable[[AssertionServer], str]


def _claims(server: AssertionServer, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": AGENT,
        "sub": AGENT,
        "aud": server.auth.issuer,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 60,
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def _signed(server: AssertionServer, *, other_client_key: bool = False, **changes: Any) -> str:
    key = (server.other_keys if other_client_key else server.agent_keys).signing_key()
    return jwt.encode(_claims(server, **changes), key.private_key, algorithm=key.algorithm, headers={"kid": key.kid})


def _alg_none(server: AssertionServer) -> str:
    kid = server.agent_keys.signing_key().kid
    return unsigned({"alg": "none", "kid": kid, "typ": "JWT"}, _claims(server))


def _hs256_with_the_public_key(server: AssertionServer) -> str:
    key = server.agent_keys.signing_key()
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hmac_signed({"alg": "HS256", "kid": key.kid, "typ": "JWT"}, _claims(server), public_pem)


REFUSED: dict[str, tuple[AssertionBuilder, str]] = {
    "wrong aud": (lambda s: _signed(s, aud="https://another-server.example"), "InvalidAudienceError"),
    "expired": (lambda s: _signed(s, iat=int(time.time()) - 600, exp=int(time.time()) - 120), "ExpiredSignatureError"),
    "alg none": (_alg_none, "alg 'none' is not allowed"),
    "HS256 with the public key as secret": (_hs256_with_the_public_key, "alg 'HS256' is not allowed"),
    "key of another client": (lambda s: _signed(s, other_client_key=True), "kid"),
    "for another client_id": (lambda s: _signed(s, iss="test-inline-keys", sub="test-inline-keys"), "kid"),
    "iss is not sub": (lambda s: _signed(s, iss="test-inline-keys"), "iss and sub are not both the client_id"),
    "no exp": (lambda s: _signed(s, exp=None), "MissingRequiredClaimError"),
    "exp too far ahead": (lambda s: _signed(s, exp=int(time.time()) + 3600), "more than 300 s ahead"),
    "issued in the future": (lambda s: _signed(s, iat=int(time.time()) + 600), "ImmatureSignatureError"),
    "no jti": (lambda s: _signed(s, jti=None), "MissingRequiredClaimError"),
    "not a JWT": (lambda s: "not-a-jwt", "not a JWT"),
}


def _post(server: AssertionServer, assertion: str, **form: str) -> httpx2.Response:
    data = {
        "grant_type": "client_credentials",
        "resource": server.auth.tickets_mcp_resource,
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion,
        **form,
    }
    with httpx2.Client(timeout=10) as http:
        return http.post(server.auth.token_url, data=data)


def _assert_refused(server: AssertionServer, response: httpx2.Response, check: str, assertion: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")
    logs = server.process.logs()
    refusals = [line for line in logs.splitlines() if "Client assertion refused" in line]
    assert any(check in line for line in refusals), refusals[-3:]
    assert assertion not in logs
    assert assertion not in response.text


@pytest.mark.parametrize("case", REFUSED)
def test_refused(assertion_server: AssertionServer, case: str) -> None:
    build, check = REFUSED[case]
    assertion = build(assertion_server)
    _assert_refused(assertion_server, _post(assertion_server, assertion), check, assertion)


def test_a_genuine_assertion_is_accepted_once_and_its_replay_refused(assertion_server: AssertionServer) -> None:
    assertion = _signed(assertion_server)
    first = _post(assertion_server, assertion)
    assert first.status_code == 200, first.text
    _assert_refused(assertion_server, _post(assertion_server, assertion), "jti already used", assertion)


def test_the_wrong_assertion_type_is_refused(assertion_server: AssertionServer) -> None:
    assertion = _signed(assertion_server)
    response = _post(assertion_server, assertion, client_assertion_type="urn:ietf:params:oauth:grant-type:jwt-bearer")
    _assert_refused(assertion_server, response, "client_assertion_type is not", assertion)


def test_a_client_id_parameter_naming_another_client_is_refused(assertion_server: AssertionServer) -> None:
    assertion = _signed(assertion_server)
    response = _post(assertion_server, assertion, client_id="test-inline-keys")
    _assert_refused(assertion_server, response, "client_id parameter is not the assertion's sub", assertion)


def test_an_assertion_with_a_secret_as_well_is_an_invalid_request(assertion_server: AssertionServer) -> None:
    response = _post(assertion_server, _signed(assertion_server), client_secret="anything")
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
