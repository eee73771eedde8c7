"""Unit tests of the parts whose timing or internals the end-to-end tests cannot reach cheaply."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from auth_server.clients import Client, ClientRegistry
from auth_server.codes import AuthorizationCodeStore, AuthorizationGrant, check_pkce, s256_challenge
from auth_server.config import LoginPolicy, RateLimit
from auth_server.errors import OAuthError
from auth_server.keys import KeyStore
from auth_server.limits import RateLimiter
from auth_server.pending import PendingAuthorization, PendingAuthorizations, TooManyPending
from auth_server.tokens import AccessTokenIssuer, RefreshTokenStore
from auth_server.users import LoginThrottle, TooManyFailures, UserDirectory, make_user

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


def test_the_throttle_counts_attempts_as_they_begin_doubles_and_forgets() -> None:
    throttle = LoginThrottle(LoginPolicy(failure_delay_seconds=0.5, max_failure_delay_seconds=2.0, max_failures=10))
    # Attempts that begin before any has finished (in parallel) are counted, so each waits longer.
    delays = [throttle.begin_attempt("Bob", "10.0.0.1", now=0) for _ in range(5)]
    assert delays == [0, 0.5, 1.0, 2.0, 2.0]
    assert throttle.begin_attempt("bob", "10.0.0.2", now=1) == 0  # per username + address
    assert throttle.begin_attempt("alice", "10.0.0.1", now=1) == 0
    assert throttle.begin_attempt("bob", "10.0.0.1", now=901) == 0  # the failure window passed
    throttle.record_success("bob", "10.0.0.1")
    assert throttle.begin_attempt("bob", "10.0.0.1", now=902) == 0


def test_the_throttle_refuses_past_max_failures_until_the_window_passes() -> None:
    throttle = LoginThrottle(LoginPolicy(max_failures=3, failure_window_seconds=900))
    for _ in range(3):
        throttle.begin_attempt("mallory", "10.0.0.1", now=0)
    with pytest.raises(TooManyFailures) as refused:
        throttle.begin_attempt("Mallory", "10.0.0.1", now=10)
    assert refused.value.retry_after == 890
    with pytest.raises(TooManyFailures):  # refusals do not count, so they do not extend the lock
        throttle.begin_attempt("mallory", "10.0.0.1", now=899)
    assert throttle.begin_attempt("mallory", "10.0.0.1", now=901) == 0
    assert throttle.begin_attempt("mallory", "10.0.0.2", now=901) == 0  # another address is not affected


def test_a_full_throttle_refuses_new_pairs_and_never_evicts_a_lockout() -> None:
    throttle = LoginThrottle(LoginPolicy(max_failures=2, failure_window_seconds=900, max_tracked_failures=3))
    for _ in range(2):
        throttle.begin_attempt("bob", "10.0.0.1", now=0)
    throttle.begin_attempt("junk-1", "10.0.0.9", now=100)
    throttle.begin_attempt("junk-2", "10.0.0.9", now=200)
    with pytest.raises(TooManyFailures) as full:  # a new pair while full: refused, bob's entry stays
        throttle.begin_attempt("junk-3", "10.0.0.9", now=300)
    assert full.value.retry_after == 600  # when bob's failures (the oldest) expire
    with pytest.raises(TooManyFailures):
        throttle.begin_attempt("bob", "10.0.0.1", now=300)
    assert throttle.begin_attempt("junk-1", "10.0.0.9", now=300) == 0.5  # known pairs still count on
    # Once bob's window has passed his entry is forgotten, which makes room for one new pair.
    assert throttle.begin_attempt("junk-3", "10.0.0.9", now=901) == 0
    with pytest.raises(TooManyFailures):
        throttle.begin_attempt("junk-4", "10.0.0.9", now=902)
    throttle.record_success("junk-3", "10.0.0.9")
    assert throttle.begin_attempt("junk-4", "10.0.0.9", now=903) == 0


def _registered(number: int) -> Client:
    return Client(
        client_id=f"dyn-{number}",
        name=f"Registered {number}",
        grant_types=frozenset({"authorization_code"}),
        resources=("crm-mcp",),
        scopes=("crm:read",),
        redirect_uris=("http://localhost:1/cb",),
        dynamically_registered=True,
    )


def test_a_full_registry_refuses_new_registrations_and_keeps_the_old(monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1_000_000.0
    monkeypatch.setattr(time, "time", lambda: now)
    registry = ClientRegistry([], realm="test", max_dynamic_clients=2, unused_client_seconds=3600)
    registry.register(_registered(1))
    now += 100
    registry.register(_registered(2))
    with pytest.raises(OAuthError) as refused:
        registry.register(_registered(3))
    assert (refused.value.status_code, refused.value.error) == (503, "temporarily_unavailable")
    assert refused.value.headers["Retry-After"] == "3500"  # when the oldest unused registration expires
    assert registry.get("dyn-1") is not None
    assert registry.get("dyn-2") is not None
    assert registry.get("dyn-3") is None


def test_registrations_never_used_expire_used_ones_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1_000_000.0
    monkeypatch.setattr(time, "time", lambda: now)
    registry = ClientRegistry([], realm="test", max_dynamic_clients=2, unused_client_seconds=3600)
    registry.register(_registered(1))
    registry.register(_registered(2))
    registry.mark_used("dyn-2")  # it obtained a token
    now += 3600
    assert registry.get("dyn-1") is None
    assert registry.get("dyn-2") is not None
    registry.register(_registered(3))  # the expired one made room
    with pytest.raises(OAuthError):
        registry.register(_registered(4))


def _pend(store: PendingAuthorizations) -> PendingAuthorization:
    return store.create(
        client_id="app",
        redirect_uri="http://localhost:1/cb",
        redirect_uri_in_request=True,
        state=None,
        code_challenge="c" * 43,
        resource="crm-mcp",
        scopes=("crm:read",),
    )


def test_a_full_pending_store_refuses_and_expired_entries_make_room(monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1_000_000.0
    monkeypatch.setattr(time, "time", lambda: now)
    store = PendingAuthorizations(lifetime_seconds=600, max_entries=2)
    first = _pend(store)
    now += 60
    second = _pend(store)
    with pytest.raises(TooManyPending) as refused:
        _pend(store)
    assert refused.value.retry_after == 540
    assert store.get(first.request_id) is first  # nothing was evicted
    assert store.get(second.request_id) is second
    now += 541
    assert store.get(first.request_id) is None  # expired
    _pend(store)
    assert store.get(second.request_id) is second


def test_the_rate_limiter_allows_a_burst_then_the_rate_per_address() -> None:
    limiter = RateLimiter(RateLimit(burst=3, per_minute=6))  # one every 10 s
    for _ in range(3):
        limiter.check("10.0.0.1", now=0)
    with pytest.raises(OAuthError) as refused:
        limiter.check("10.0.0.1", now=1)
    assert (refused.value.status_code, refused.value.headers["Retry-After"]) == (429, "9")
    limiter.check("10.0.0.2", now=1)  # per address
    limiter.check("10.0.0.1", now=10)
    with pytest.raises(OAuthError):
        limiter.check("10.0.0.1", now=11)
