"""private_key_jwt, client side: the assertion's claims, the key files and their rotation, and TokenEndpoint
(through ClientCredentialsAuth and TokenExchange) sending it to a real token endpoint on loopback."""

from __future__ import annotations

import secrets
import stat
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import get_args

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from oauth_tokens import ClientCredentialsAuth, TokenEndpointError, TokenExchange
from oauth_tokens.client_assertion import (
    ASSERTION_LIFETIME_SECONDS,
    CLIENT_ASSERTION_TYPE,
    ClientAssertionSigner,
    StaticKey,
    client_keys,
)
from oauth_tokens.signing_keys import PUBLISH_AHEAD_SECONDS, RETIREMENT_MARGIN_SECONDS, SigningAlgorithm
from oauth_tokens.token_endpoint import TokenEndpoint

from tests.shared.loopback import LoopbackAuthServer

pytestmark = pytest.mark.anyio

ISSUER = "https://as.example.test"
TOKEN_URL = "https://as.example.test/oauth/token"


def _verified(
    assertion: str, keys_jwks: dict[str, list[dict[str, object]]], audience: str = ISSUER
) -> dict[str, object]:
    header = jwt.get_unverified_header(assertion)
    key = next(key for key in keys_jwks["keys"] if key["kid"] == header["kid"])
    claims: dict[str, object] = jwt.decode(
        assertion, jwt.PyJWK(key).key, algorithms=[header["alg"]], audience=audience, issuer="crm-mcp-agent"
    )
    return claims


@pytest.mark.parametrize("algorithm", get_args(SigningAlgorithm))
def test_an_assertion_has_the_rfc_7523_claims_and_verifies_with_the_published_key(
    tmp_path: Path, algorithm: SigningAlgorithm
) -> None:
    keys = client_keys(tmp_path, algorithm)
    signer = ClientAssertionSigner(keys, ISSUER)
    before = int(time.time())
    first, second = signer.sign("crm-mcp-agent", TOKEN_URL), signer.sign("crm-mcp-agent", TOKEN_URL)
    claims = _verified(first, keys.jwks())
    header = jwt.get_unverified_header(first)
    assert (header["alg"], header["kid"], header["typ"]) == (algorithm, keys.signing_key().kid, "JWT")
    assert claims["iss"] == claims["sub"] == "crm-mcp-agent"
    assert claims["aud"] == ISSUER
    assert isinstance(claims["exp"], int)
    assert isinstance(claims["iat"], int)
    assert before <= claims["iat"] <= claims["exp"] - ASSERTION_LIFETIME_SECONDS + 1
    assert claims["exp"] - claims["iat"] <= 60
    assert claims["jti"] != _verified(second, keys.jwks())["jti"]


def test_the_audience_option_adds_or_uses_the_token_endpoint(tmp_path: Path) -> None:
    keys = client_keys(tmp_path)
    both = ClientAssertionSigner(keys, ISSUER, audience="issuer_and_token_endpoint").sign("crm-mcp-agent", TOKEN_URL)
    assert jwt.decode(both, options={"verify_signature": False})["aud"] == [ISSUER, TOKEN_URL]
    endpoint_only = ClientAssertionSigner(keys, ISSUER, audience="token_endpoint").sign("crm-mcp-agent", TOKEN_URL)
    assert _verified(endpoint_only, keys.jwks(), audience=TOKEN_URL)["aud"] == TOKEN_URL
    with pytest.raises(ValueError, match="lifetime_seconds"):
        ClientAssertionSigner(keys, ISSUER, lifetime_seconds=3600)


def test_client_keys_are_generated_once_0600_and_hold_no_private_part_in_the_jwks(tmp_path: Path) -> None:
    keys = client_keys(tmp_path / "client-keys")
    again = client_keys(tmp_path / "client-keys")
    assert again.signing_key().kid == keys.signing_key().kid
    pem_files = list((tmp_path / "client-keys").glob("*.pem"))
    assert len(pem_files) == 1
    assert stat.S_IMODE(pem_files[0].stat().st_mode) == 0o600
    (published,) = keys.jwks()["keys"]
    assert set(published) == {"kty", "crv", "x", "y", "kid", "use", "alg"}
    with pytest.raises(TypeError, match="not a RS256 key"):
        client_keys(tmp_path / "client-keys", "RS256").signing_key()


def test_rotation_publishes_the_new_key_ahead_and_retires_the_old_one_after_its_assertions(tmp_path: Path) -> None:
    keys = client_keys(tmp_path)
    old = keys.signing_key().kid
    record = keys.rotate()
    now = time.time()
    assert {key["kid"] for key in keys.jwks()["keys"]} == {old, record.kid}  # both published at once
    assert keys.signing_key(now).kid == old  # the old one signs until the publish-ahead ends
    assert keys.signing_key(now + PUBLISH_AHEAD_SECONDS + 1).kid == record.kid
    gone = now + PUBLISH_AHEAD_SECONDS + ASSERTION_LIFETIME_SECONDS + RETIREMENT_MARGIN_SECONDS + 2
    assert [published.kid for published in keys.published_records(gone)] == [record.kid]
    assert keys.prune(gone) == [old]


def test_the_rotate_command_refuses_a_publish_ahead_shorter_than_the_cool_down(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "oauth_tokens.client_assertion", "rotate", "--keys-dir", str(tmp_path)]
    refused = subprocess.run([*command, "--publish-ahead", "5"], capture_output=True, text=True, check=False)
    assert refused.returncode != 0
    assert "at least 30 s" in refused.stderr
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "published now, signs from" in done.stdout
    assert len(client_keys(tmp_path).jwks()["keys"]) == 2


def test_a_static_pem_key_signs_without_a_kid_and_must_fit_its_algorithm() -> None:
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    assertion = ClientAssertionSigner(StaticKey.from_pem(pem, "ES256"), ISSUER).sign("client", TOKEN_URL)
    assert "kid" not in jwt.get_unverified_header(assertion)
    assert jwt.decode(assertion, private_key.public_key(), algorithms=["ES256"], audience=ISSUER)["sub"] == "client"
    with pytest.raises(ValueError, match="not a RS256 key"):
        StaticKey.from_pem(pem, "RS256")


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({}, "auth_method client_secret_basic needs a non-empty client_secret"),
        ({"auth_method": "private_key_jwt", "client_secret": "s"}, "needs an assertion_signer"),
        ({"auth_method": "client_secret_post", "signer": True}, "not both|needs a non-empty client_secret"),
        ({"client_secret": "s", "signer": True}, "not both"),
        ({"client_secret": "s", "auth_method": "client_secret_jwt"}, "Unsupported auth_method"),
    ],
)
def test_the_method_and_the_credential_must_agree(tmp_path: Path, arguments: dict[str, object], problem: str) -> None:
    signer = ClientAssertionSigner(client_keys(tmp_path), ISSUER) if arguments.pop("signer", False) else None
    with pytest.raises(ValueError, match=problem):
        TokenEndpoint(TOKEN_URL, "crm-mcp-agent", assertion_signer=signer, **arguments)  # type: ignore[arg-type]


async def test_client_credentials_send_a_fresh_assertion_and_no_secret(
    tmp_path: Path, auth_server: LoopbackAuthServer
) -> None:
    keys = client_keys(tmp_path)
    auth = ClientCredentialsAuth(
        f"{auth_server.url}/token", "crm-mcp-agent", assertion_signer=ClientAssertionSigner(keys, ISSUER)
    )
    try:
        await auth.get_token()
        auth.invalidate()
        await auth.get_token()
    finally:
        await auth.aclose()
    first, second = auth_server.state.token_requests
    for request in (first, second):
        assert request.authorization is None
        assert set(request.form) == {"grant_type", "client_id", "client_assertion_type", "client_assertion"}
        assert request.form["client_assertion_type"] == CLIENT_ASSERTION_TYPE
        assert _verified(request.form["client_assertion"], keys.jwks())["sub"] == request.form["client_id"]
    assert first.form["client_assertion"] != second.form["client_assertion"]  # never reused


async def test_an_echoed_assertion_is_redacted_from_token_exchange_errors(
    tmp_path: Path, auth_server: LoopbackAuthServer
) -> None:
    exchange = TokenExchange(
        f"{auth_server.url}/token",
        "crm-mcp-agent",
        assertion_signer=ClientAssertionSigner(client_keys(tmp_path), ISSUER),
    )
    auth_server.state.token_echo_form = True
    subject_token = f"subject-{secrets.token_hex(8)}"
    try:
        with pytest.raises(TokenEndpointError) as failed:
            await exchange.token_for(subject_token, resource="http://crm-api", scope="crm:read")
    finally:
        await exchange.aclose()
    sent = auth_server.state.token_requests[0].form["client_assertion"]
    everything = str(failed.value) + repr(failed.value) + "".join(traceback.format_exception(failed.value))
    assert sent.split(".")[2] not in everything  # not even the signature
    assert subject_token not in everything
    assert "[REDACTED]" in (failed.value.description or "")
