"""Unit tests of the parts whose timing or internals the end-to-end tests cannot reach cheaply."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from auth_server.codes import check_pkce, s256_challenge
from auth_server.config_sections import LoginPolicy, RateLimit
from auth_server.errors import OAuthError
from auth_server.keys import KeyStore
from auth_server.limits import RateLimiter
from auth_server.pending import CsrfSigner
from auth_server.quotas import owner_of_address
from auth_server.tokens import AccessTokenIssuer
from auth_server.users import LoginThrottle, TooManyFailures, UserDirectory, make_user


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
    assert throttle.begin_attempt("bob", "10.0.0.2", now=1) == 2.0  # per username, from any address
    assert throttle.begin_attempt("alice", "10.0.0.1", now=1) == 0
    assert throttle.begin_attempt("bob", "10.0.0.1", now=902) == 0  # the failure window passed
    throttle.record_success("bob", "10.0.0.1", now=902)
    assert throttle.begin_attempt("bob", "10.0.0.1", now=903) == 0


def test_the_throttle_locks_a_username_from_every_address_until_the_window_passes() -> None:
    throttle = LoginThrottle(LoginPolicy(max_failures=3, failure_window_seconds=900))
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        throttle.begin_attempt("mallory", address, now=0)
    with pytest.raises(TooManyFailures) as refused:
        throttle.begin_attempt("Mallory", "10.0.0.4", now=10)  # locked for every address
    assert refused.value.retry_after == 890
    with pytest.raises(TooManyFailures):  # refusals do not count, so they do not extend the lock
        throttle.begin_attempt("mallory", "10.0.0.1", now=899)
    assert throttle.begin_attempt("alice", "10.0.0.1", now=899) == 0  # other usernames are not affected
    assert throttle.begin_attempt("mallory", "10.0.0.1", now=901) == 0


def test_the_throttle_refuses_an_address_past_its_failures_for_any_usernames() -> None:
    throttle = LoginThrottle(LoginPolicy(max_failures=3, max_failures_per_address=4, failure_window_seconds=900))
    for number in range(4):
        throttle.begin_attempt(f"user-{number}", "2001:db8::1", now=0)
    with pytest.raises(TooManyFailures) as refused:
        throttle.begin_attempt("someone-else", "2001:db8::ffff", now=100)  # the same /64
    assert refused.value.retry_after == 800
    assert throttle.begin_attempt("someone-else", "2001:db8:0:1::1", now=100) == 0  # another /64
    throttle.record_success("user-0", "2001:db8::1", now=100)  # a success takes its attempt back
    assert throttle.begin_attempt("another", "2001:db8::1", now=101) == 0


def test_a_full_throttle_evicts_the_flood_never_a_lockout_and_never_refuses_a_newcomer() -> None:
    policy = LoginPolicy(max_failures=2, max_failures_per_address=50, max_tracked_usernames=6, max_tracked_addresses=3)
    throttle = LoginThrottle(policy)
    for _ in range(2):
        throttle.begin_attempt("bob", "10.0.0.1", now=0)  # bob is locked out
    throttle.begin_attempt("alice", "10.0.0.2", now=0)  # one failure of alice's
    for number in range(20):  # a flood of junk from two addresses fills both tables
        throttle.begin_attempt(f"junk-{number}", f"10.0.0.{9 + number % 2}", now=1)
    with pytest.raises(TooManyFailures):  # never evicted: the lockout stands
        throttle.begin_attempt("bob", "10.0.0.77", now=2)
    assert throttle.begin_attempt("carol", "10.0.0.78", now=2) == 0  # a newcomer from a new address
    # alice (one failure, from a light address) outlived the junk (one failure each, from heavy ones).
    assert throttle.begin_attempt("alice", "10.0.0.79", now=3) == 0.5


def test_a_throttle_full_of_lockouts_lets_newcomers_through_uncounted() -> None:
    throttle = LoginThrottle(LoginPolicy(max_failures=1, max_failures_per_address=1, max_tracked_usernames=2))
    throttle.begin_attempt("bob", "10.0.0.1", now=0)
    throttle.begin_attempt("alice", "10.0.0.2", now=0)
    assert throttle.begin_attempt("carol", "10.0.0.3", now=1) == 0  # both entries locked: carol uncounted
    for username, address in (("bob", "10.0.0.4"), ("alice", "10.0.0.5")):
        with pytest.raises(TooManyFailures):
            throttle.begin_attempt(username, address, now=2)


@pytest.mark.parametrize(
    ("address", "owner"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:db8::abcd:1", "2001:db8::/64"),
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("unknown", "unknown"),
    ],
)
def test_an_ipv6_client_owns_its_64_an_ipv4_one_its_address(address: str, owner: str) -> None:
    assert owner_of_address(address) == owner


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


def test_csrf_values_verify_under_every_state_key_and_the_first_signs() -> None:
    old, new = "o" * 32, "n" * 32
    before = CsrfSigner([old]).value("login", "request", "nonce")
    rotated = CsrfSigner([new, old])  # a new key first; the old one kept for the sign-ins it signed
    assert rotated.is_valid(before, "login", "request", "nonce")
    assert rotated.value("login", "request", "nonce") == CsrfSigner([new]).value("login", "request", "nonce")
    assert not CsrfSigner([new]).is_valid(before, "login", "request", "nonce")  # the old key dropped
    assert not rotated.is_valid(before, "consent", "request", "nonce")  # per step
    assert not rotated.is_valid(before, "login", "request", "another browser")
