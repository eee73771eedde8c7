"""Unit tests of the parts whose timing or internals the end-to-end tests cannot reach cheaply."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from auth_server.codes import AuthorizationCodeStore, AuthorizationGrant, check_pkce, s256_challenge
from auth_server.config import LoginPolicy
from auth_server.errors import OAuthError
from auth_server.keys import KeyStore
from auth_server.tokens import AccessTokenIssuer, RefreshTokenStore
from auth_server.users import LoginThrottle, UserDirectory, make_user

VERIFIER = "v" * 43


def _grant() -> AuthorizationGrant:
    return AuthorizationGrant(
        client_id="app",
        subject="alice",
        resource="crm-mcp",
        scopes=("crm:read",),
        redirect_uri="http://localhost:1/cb",
        redirect_uri_in_request=True,
        code_challenge=s256_challenge(VERIFIER),
    )


def test_an_expired_code_is_invalid_grant(monkeypatch: pytest.MonkeyPatch) -> None:
    store = AuthorizationCodeStore(60, RefreshTokenStore())
    code = store.issue(_grant())
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)  # the clock moves past the 60 s lifetime
    with pytest.raises(OAuthError) as raised:
        store.redeem(code, "app")
    assert raised.value.error == "invalid_grant"


def test_a_code_redeems_once() -> None:
    store = AuthorizationCodeStore(60, RefreshTokenStore())
    code = store.issue(_grant())
    _, grant = store.redeem(code, "app")
    assert grant.subject == "alice"
    with pytest.raises(OAuthError):
        store.redeem(code, "app")


def test_pkce_s256_matches_rfc_7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    check_pkce(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    with pytest.raises(OAuthError):
        check_pkce("x" * 42, s256_challenge("x" * 42))  # too short to be a verifier


def test_own_tokens_past_their_expiry_do_not_verify(tmp_path: Path) -> None:
    store = KeyStore(tmp_path, 600)
    store.ensure_key()
    issuer = AccessTokenIssuer("http://issuer.test", store, 600)
    expired = issuer.issue(subject="s", client_id="c", audiences=("a",), scopes=(), not_after=int(time.time()) - 5)
    with pytest.raises(ValueError, match="Expired"):
        issuer.verify_own(expired.token)
    other_issuer = AccessTokenIssuer("http://someone-else.test", store, 600)
    foreign = other_issuer.issue(subject="s", client_id="c", audiences=("a",), scopes=())
    with pytest.raises(ValueError, match="Issuer"):
        issuer.verify_own(foreign.token)


@pytest.mark.anyio
async def test_password_checks() -> None:
    users = UserDirectory([make_user("alice", "Alice Adams", "Sales rep", "correct horse")])
    user = await users.verify("alice", "correct horse")
    assert user is not None
    assert user.name == "Alice Adams"
    assert await users.verify("alice", "Correct horse") is None
    assert await users.verify("mallory", "correct horse") is None
    assert user.password_hash != b"correct horse"
    assert make_user("a", "", "", "same").salt != make_user("a", "", "", "same").salt


def test_the_throttle_doubles_up_to_its_cap_and_forgets() -> None:
    throttle = LoginThrottle(LoginPolicy(failure_delay_seconds=0.5, max_failure_delay_seconds=2.0))
    assert throttle.delay_for("bob", "10.0.0.1", now=0) == 0
    delays = []
    for attempt in range(4):
        throttle.record_failure("bob", "10.0.0.1", now=attempt)
        delays.append(throttle.delay_for("Bob", "10.0.0.1", now=attempt))
    assert delays == [0.5, 1.0, 2.0, 2.0]
    assert throttle.delay_for("bob", "10.0.0.2", now=4) == 0  # per username + address
    assert throttle.delay_for("bob", "10.0.0.1", now=4 + 901) == 0  # the failure window passed
    throttle.record_success("bob", "10.0.0.1")
    assert throttle.delay_for("bob", "10.0.0.1", now=5) == 0
