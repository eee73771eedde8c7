"""Verified-token cache: hits and misses, expiry and maximum age, key removal, size bound, tampering, no token in keys.

The validator tests run against the real loopback JWKS endpoint with real signed tokens; the policy tests
drive VerifiedTokenCache directly with injected clocks, so expiry is tested without sleeping.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import anyio
import httpx2
import jwt
import pytest
from devkit.clock import ManualClock
from oauth_tokens import (
    AccessTokenValidator,
    InsufficientScopeError,
    InvalidTokenError,
    Principal,
    SigningKeyUnavailableError,
    ValidatorConfig,
)
from oauth_tokens.settings import TrustSettings, load_settings
from oauth_tokens.token_cache import VerifiedTokenCache, token_digest

from tests.shared.conftest import Keys
from tests.shared.loopback import LoopbackAuthServer
from tests.shared.tokens import AUDIENCE, claims, mint, rsa_key

pytestmark = pytest.mark.anyio


def _principal(expires_at: int, **extra_claims: Any) -> Principal:
    return Principal(
        subject="alice",
        client_id="crm-mcp",
        issuer="https://as",
        scopes=frozenset({"crm:read"}),
        audiences=(AUDIENCE,),
        expires_at=expires_at,
        claims={"exp": expires_at, **extra_claims},
    )


def _config(server: LoopbackAuthServer, **overrides: Any) -> ValidatorConfig:
    return ValidatorConfig(issuers=[server.url], audiences=[AUDIENCE], jwks_url=f"{server.url}/jwks", **overrides)


async def test_a_repeated_token_hits_and_another_token_misses(
    keys: Keys, issuer: str, validator: AccessTokenValidator
) -> None:
    token = mint(keys.rsa, claims(issuer))
    first = await validator.validate(token)
    again = await validator.validate(token)
    other = await validator.validate(mint(keys.rsa, claims(issuer, jti="another")))

    assert again is first  # the stored Principal: no second decode
    assert other is not first
    assert len(validator.token_cache) == 2


async def test_scopes_are_checked_on_every_hit(keys: Keys, issuer: str, validator: AccessTokenValidator) -> None:
    token = mint(keys.rsa, claims(issuer, scope="crm:read"))
    await validator.validate(token, required_scopes=("crm:read",))
    with pytest.raises(InsufficientScopeError):
        await validator.validate(token, required_scopes=("crm:write",))
    assert len(validator.token_cache) == 1


async def test_a_cached_token_is_refused_once_expired(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    async with AccessTokenValidator(_config(auth_server, leeway_seconds=0), http_client=http_client) as validator:
        token = mint(keys.rsa, claims(issuer, exp=int(time.time()) + 1))
        await validator.validate(token)
        assert len(validator.token_cache) == 1
        await anyio.sleep(max(0.0, jwt.decode(token, options={"verify_signature": False})["exp"] - time.time()) + 0.05)
        with pytest.raises(InvalidTokenError, match="ExpiredSignatureError"):
            await validator.validate(token)
        assert len(validator.token_cache) == 0


async def test_entries_of_a_key_removed_from_the_jwks_are_dropped_at_the_next_refresh(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    async with AccessTokenValidator(_config(auth_server, jwks_refetch_cooldown_seconds=0), http_client=http_client) as (
        validator
    ):
        rsa_token, ec_token = mint(keys.rsa, claims(issuer)), mint(keys.ec, claims(issuer))
        await validator.validate(rsa_token)
        await validator.validate(ec_token)
        auth_server.state.jwks = {"keys": [keys.ec.public_jwk()]}  # the RSA key is withdrawn
        # An unknown kid makes the validator refresh the JWKS.
        with pytest.raises(SigningKeyUnavailableError):
            await validator.validate(mint(keys.rsa, claims(issuer), kid="new-kid"))

        assert len(validator.token_cache) == 1
        assert await validator.validate(ec_token)  # still a hit: its key is still published
        with pytest.raises(SigningKeyUnavailableError):
            await validator.validate(rsa_token)
    assert auth_server.state.counts["jwks"] == 3  # the first fetch, the refresh, the RSA kid looked up again


async def test_a_kid_republished_with_another_key_no_longer_hits(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    async with AccessTokenValidator(_config(auth_server, jwks_refetch_cooldown_seconds=0), http_client=http_client) as (
        validator
    ):
        token = mint(keys.rsa, claims(issuer))
        await validator.validate(token)
        # The issuer now publishes another key under the same kid, then the JWKS is refreshed.
        auth_server.state.jwks = {"keys": [rsa_key(keys.rsa.kid).public_jwk()]}
        with pytest.raises(SigningKeyUnavailableError):
            await validator.validate(mint(keys.rsa, claims(issuer), kid="new-kid"))
        assert len(validator.token_cache) == 1  # the kid is still published

        with pytest.raises(InvalidTokenError, match="InvalidSignatureError"):
            await validator.validate(token)


async def test_tampered_tokens_never_hit(keys: Keys, issuer: str, validator: AccessTokenValidator) -> None:
    token = mint(keys.rsa, claims(issuer, sub="alice"))
    await validator.validate(token)
    header, _, signature = token.split(".")
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims(issuer, sub="mallory")).encode())
    tampered = [
        f"{header}.{forged_payload.decode().rstrip('=')}.{signature}",  # other claims, the cached token's signature
        f"{header}.{token.split('.')[1]}.{signature[:-4]}AAAA",  # a changed signature
        mint(keys.attacker, claims(issuer, sub="alice"), kid=keys.rsa.kid),  # same claims, another key
    ]
    for forged in tampered:
        with pytest.raises(InvalidTokenError):
            await validator.validate(forged)
    assert len(validator.token_cache) == 1


async def test_cache_keys_hold_no_token_material(keys: Keys, issuer: str, validator: AccessTokenValidator) -> None:
    tokens = [mint(keys.rsa, claims(issuer, jti=f"jti-{n}")) for n in range(3)]
    for token in tokens:
        await validator.validate(token)
    stored = validator.token_cache.keys()
    dump = b"".join(stored) + repr(stored).encode()

    assert sorted(stored) == sorted(token_digest(token) for token in tokens)
    assert all(len(key) == 32 for key in stored)
    for token in tokens:
        for segment in token.split("."):
            raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
            assert segment.encode()[:16] not in dump
            assert raw[:16] not in dump


async def test_size_zero_turns_the_cache_off(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    async with AccessTokenValidator(_config(auth_server, token_cache_size=0), http_client=http_client) as validator:
        token = mint(keys.rsa, claims(issuer))
        assert await validator.validate(token) is not await validator.validate(token)
        assert len(validator.token_cache) == 0


def test_the_least_recently_used_entry_is_evicted_beyond_the_size() -> None:
    cache = VerifiedTokenCache(max_size=2, max_age_seconds=60)
    principal = _principal(expires_at=int(time.time()) + 300)
    cache.put(token_digest("a"), "kid", {}, principal)
    cache.put(token_digest("b"), "kid", {}, principal)
    assert cache.get(token_digest("a")) is not None  # "a" is now the most recently used
    cache.put(token_digest("c"), "kid", {}, principal)

    assert len(cache) == 2
    assert cache.get(token_digest("b")) is None
    assert cache.get(token_digest("a")) is not None
    assert cache.get(token_digest("c")) is not None


def test_an_entry_lives_until_the_earlier_of_exp_and_the_maximum_age() -> None:
    wall, monotonic = ManualClock(), ManualClock()
    cache = VerifiedTokenCache(max_size=10, max_age_seconds=60, wall_clock=wall, monotonic_clock=monotonic)
    short_lived, long_lived = token_digest("short"), token_digest("long")
    cache.put(short_lived, "kid", {}, _principal(expires_at=int(wall.now) + 30))
    cache.put(long_lived, "kid", {}, _principal(expires_at=int(wall.now) + 3600))

    wall.now += 29
    monotonic.now += 29
    assert cache.get(short_lived) is not None
    wall.now += 1
    monotonic.now += 1
    assert cache.get(short_lived) is None  # at exp
    wall.now += 29.9
    monotonic.now += 29.9
    assert cache.get(long_lived) is not None
    wall.now += 0.1
    monotonic.now += 0.1
    assert cache.get(long_lived) is None  # at the maximum age, long before exp
    assert len(cache) == 0


def test_nbf_is_checked_on_every_hit() -> None:
    wall = ManualClock()
    cache = VerifiedTokenCache(max_size=10, max_age_seconds=60, leeway_seconds=5, wall_clock=wall)
    key = token_digest("not-yet")
    cache.put(key, "kid", {}, _principal(expires_at=int(wall.now) + 300, nbf=wall.now + 2))
    assert cache.get(key) is not None  # within the leeway
    wall.now -= 10  # the clock was set back
    assert cache.get(key) is None


def test_retain_keys_drops_only_entries_of_other_keys() -> None:
    cache = VerifiedTokenCache(max_size=10, max_age_seconds=60)
    principal = _principal(expires_at=int(time.time()) + 300)
    cache.put(token_digest("a"), "kept", {}, principal)
    cache.put(token_digest("b"), "removed", {}, principal)
    cache.retain_keys(frozenset({"kept", "other"}))
    assert cache.keys() == [token_digest("a")]


@pytest.mark.parametrize(("size", "max_age"), [(-1, 60), (10, 0)])
def test_bad_cache_bounds_are_refused(size: int, max_age: float) -> None:
    with pytest.raises(ValueError, match="token_cache"):
        ValidatorConfig(
            issuers=["https://as"], audiences=["api"], token_cache_size=size, token_cache_max_age_seconds=max_age
        )


def test_cache_settings_reach_the_validator_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_ISSUER", "http://localhost:9000")
    monkeypatch.setenv("AUTH_TOKEN_CACHE_SIZE", "7")
    monkeypatch.setenv("AUTH_TOKEN_CACHE_MAX_AGE_SECONDS", "15")
    config = load_settings(TrustSettings).validator_config(["api"])
    assert (config.token_cache_size, config.token_cache_max_age_seconds) == (7, 15)
