"""JWKS cache policy against a real JWKS endpoint: TTL, cool-down, single flight, rotation, key filtering."""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import pytest
from devkit.clock import ManualClock
from oauth_tokens import AccessTokenValidator, KeySourceUnavailableError, SigningKeyUnavailableError, ValidatorConfig
from oauth_tokens.jwks import JWKSCache

from tests.shared.conftest import Keys
from tests.shared.loopback import LoopbackAuthServer
from tests.shared.tokens import AUDIENCE, claims, ec_key, mint, rsa_key
from tests.support.hanging import misbehaving_server

pytestmark = pytest.mark.anyio


def _config(server: LoopbackAuthServer, **overrides: Any) -> ValidatorConfig:
    return ValidatorConfig(issuers=[server.url], audiences=[AUDIENCE], jwks_url=f"{server.url}/jwks", **overrides)


async def test_keys_are_cached_for_the_ttl(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, validator: AccessTokenValidator
) -> None:
    for _ in range(20):
        await validator.validate(mint(keys.rsa, claims(issuer)))
        await validator.validate(mint(keys.ec, claims(issuer)))
    assert auth_server.state.counts["jwks"] == 1


async def test_keys_are_refetched_after_the_ttl(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    config = _config(auth_server, jwks_ttl_seconds=0.2, jwks_refetch_cooldown_seconds=0)
    async with AccessTokenValidator(config, http_client=http_client) as validator:
        await validator.validate(mint(keys.rsa, claims(issuer)))
        await anyio.sleep(0.25)
        await validator.validate(mint(keys.rsa, claims(issuer)))
    assert auth_server.state.counts["jwks"] == 2


async def test_concurrent_first_use_shares_one_fetch(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, validator: AccessTokenValidator
) -> None:
    token = mint(keys.rsa, claims(issuer))
    subjects: list[str] = []

    async def validate() -> None:
        subjects.append((await validator.validate(token)).subject)

    async with anyio.create_task_group() as group:
        for _ in range(50):
            group.start_soon(validate)

    assert subjects == ["alice"] * 50
    assert auth_server.state.counts["jwks"] == 1


async def test_callers_arriving_during_a_fetch_wait_for_it(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, validator: AccessTokenValidator
) -> None:
    auth_server.state.jwks_delay_seconds = 0.2
    subjects: list[str] = []

    async def validate() -> None:
        subjects.append((await validator.validate(mint(keys.rsa, claims(issuer)))).subject)

    async with anyio.create_task_group() as group:
        group.start_soon(validate)
        await anyio.sleep(0.05)  # the first fetch is now in flight
        for _ in range(5):
            group.start_soon(validate)

    assert subjects == ["alice"] * 6
    assert auth_server.state.counts["jwks"] == 1


async def test_rotated_key_is_picked_up_after_the_cool_down(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    new_key = rsa_key("rsa-2")
    config = _config(auth_server, jwks_refetch_cooldown_seconds=0.3)
    async with AccessTokenValidator(config, http_client=http_client) as validator:
        await validator.validate(mint(keys.rsa, claims(issuer)))
        auth_server.state.jwks = {"keys": [keys.rsa.public_jwk(), new_key.public_jwk()]}

        with pytest.raises(SigningKeyUnavailableError):  # within the cool-down: no refetch
            await validator.validate(mint(new_key, claims(issuer)))
        assert auth_server.state.counts["jwks"] == 1

        await anyio.sleep(0.35)
        principal = await validator.validate(mint(new_key, claims(issuer)))
    assert principal.subject == "alice"
    assert auth_server.state.counts["jwks"] == 2


async def test_key_removed_from_the_jwks_stops_working(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    config = _config(auth_server, jwks_ttl_seconds=0, jwks_refetch_cooldown_seconds=0)
    async with AccessTokenValidator(config, http_client=http_client) as validator:
        await validator.validate(mint(keys.ec, claims(issuer)))
        auth_server.state.jwks = {"keys": [keys.rsa.public_jwk()]}
        with pytest.raises(SigningKeyUnavailableError):
            await validator.validate(mint(keys.ec, claims(issuer)))


async def test_stale_keys_expire_after_max_stale(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    config = _config(auth_server, jwks_ttl_seconds=0, jwks_refetch_cooldown_seconds=0, jwks_max_stale_seconds=0.2)
    async with AccessTokenValidator(config, http_client=http_client) as validator:
        await validator.validate(mint(keys.rsa, claims(issuer)))
        auth_server.state.jwks_down = True
        await validator.validate(mint(keys.rsa, claims(issuer)))  # stale, still fine
        await anyio.sleep(0.3)
        with pytest.raises(SigningKeyUnavailableError):
            await validator.validate(mint(keys.rsa, claims(issuer)))


async def test_jwks_down_from_the_start_refuses_and_is_not_hammered(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, validator: AccessTokenValidator
) -> None:
    auth_server.state.jwks_down = True
    for _ in range(10):
        with pytest.raises(SigningKeyUnavailableError):
            await validator.validate(mint(keys.rsa, claims(issuer)))
    assert auth_server.state.counts["jwks"] == 1


async def test_unusable_keys_are_ignored(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    p384 = ec_key("ec-p384")  # published as ES384, which this cache does not allow
    private_jwk = {**keys.attacker.public_jwk(), "kid": "private", "d": "AAAA"}
    auth_server.state.jwks = {
        "keys": [
            keys.rsa.public_jwk(use="enc"),
            keys.ec.public_jwk(key_ops=["encrypt"]),
            {**p384.public_jwk(), "alg": "ES384"},
            private_jwk,
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kid": "no-kty"},
            "not an object",
            {**keys.attacker.public_jwk(), "kid": "attacker-1"},
            {**keys.attacker.public_jwk(), "kid": "attacker-1", "n": "AQAB"},  # duplicate kid: first wins
        ]
    }
    cache = JWKSCache(f"{auth_server.url}/jwks", http_client, allowed_algorithms=("RS256", "ES256"))
    for kid in ("rsa-1", "ec-1", "ec-p384", "private", "hmac", "no-kty"):
        with pytest.raises(SigningKeyUnavailableError):
            await cache.get_signing_key(kid)
    assert (await cache.get_signing_key("attacker-1")).key_type == "RSA"
    assert cache.fetch_count == 1


async def test_jwks_without_a_keys_list_counts_as_a_failed_fetch(
    auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    auth_server.state.jwks = {"not_keys": []}
    cache = JWKSCache(f"{auth_server.url}/jwks", http_client, allowed_algorithms=("RS256",))
    with pytest.raises(SigningKeyUnavailableError):
        await cache.get_signing_key("rsa-1")
    assert cache.fetch_count == 1


async def test_unknown_kid_from_an_answering_jwks_is_not_a_key_source_failure(
    auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    cache = JWKSCache(f"{auth_server.url}/jwks", http_client, allowed_algorithms=("RS256",))
    for _ in range(2):  # refetched at once, then refused within the cool-down: a bad token both times
        with pytest.raises(SigningKeyUnavailableError) as refused:
            await cache.get_signing_key("no-such-kid")
        assert not isinstance(refused.value, KeySourceUnavailableError)
    assert cache.fetch_count == 1


async def test_unknown_kid_while_the_jwks_is_down_is_a_key_source_failure(
    auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    auth_server.state.jwks_down = True
    cache = JWKSCache(f"{auth_server.url}/jwks", http_client, allowed_algorithms=("RS256",), refetch_cooldown_seconds=0)
    with pytest.raises(KeySourceUnavailableError):  # down from the start
        await cache.get_signing_key("rsa-1")

    auth_server.state.jwks_down = False
    assert (await cache.get_signing_key("rsa-1")).kid == "rsa-1"
    auth_server.state.jwks_down = True
    with pytest.raises(KeySourceUnavailableError):  # a kid rotated in during the outage may be genuine
        await cache.get_signing_key("rotated-in-during-outage")
    assert (await cache.get_signing_key("rsa-1")).kid == "rsa-1"  # cached keys keep working
    assert cache.fetch_count == 3


async def test_after_a_failed_fetch_the_keys_are_retried_within_seconds_not_the_cool_down(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    """The key source down at first use, then back: tokens are accepted again well before the 30 s cool-down."""
    auth_server.state.jwks_down = True
    validator = AccessTokenValidator(_config(auth_server), http_client=http_client)  # the default 30 s cool-down
    with pytest.raises(KeySourceUnavailableError) as refused:
        await validator.validate(mint(keys.rsa, claims(issuer)))
    assert refused.value.retry_after_seconds is not None
    assert 0 < refused.value.retry_after_seconds <= 1  # the first retry waits about a second

    auth_server.state.jwks_down = False
    started = anyio.current_time()
    with anyio.fail_after(5):  # the back-off never exceeds 4 s
        while True:
            try:
                principal = await validator.validate(mint(keys.rsa, claims(issuer)))
                break
            except KeySourceUnavailableError:
                await anyio.sleep(0.1)
    print(f"accepted {anyio.current_time() - started:.2f} s after the JWKS came back")
    assert principal.subject == "alice"
    assert auth_server.state.counts["jwks"] == 2  # polling while backing off did not fetch


async def test_failed_fetches_back_off_up_to_a_bound(auth_server: LoopbackAuthServer) -> None:
    clock = ManualClock(1000.0)
    auth_server.state.jwks_down = True
    async with httpx2.AsyncClient() as client:
        cache = JWKSCache(f"{auth_server.url}/jwks", client, allowed_algorithms=("RS256",), clock=clock)
        waits = []
        for _ in range(5):
            with pytest.raises(KeySourceUnavailableError) as refused:
                await cache.get_signing_key("rsa-1")
            assert refused.value.retry_after_seconds is not None
            waits.append(refused.value.retry_after_seconds)
            clock.now += refused.value.retry_after_seconds
    assert waits == [1, 2, 4, 4, 4]
    assert cache.fetch_count == 5


async def test_a_jwks_that_drips_ends_at_the_deadline(http_client: httpx2.AsyncClient) -> None:
    async with misbehaving_server(drip_every_seconds=0.1) as dripping:
        cache = JWKSCache(f"{dripping.url}/jwks", http_client, allowed_algorithms=("RS256",), timeout_seconds=0.5)
        started = anyio.current_time()
        with anyio.fail_after(10), pytest.raises(KeySourceUnavailableError):
            await cache.get_signing_key("rsa-1")
    took = anyio.current_time() - started
    print(f"a JWKS dripping a byte every 0.1 s was cut off after {took:.2f} s")
    assert took < 1.5  # per-read timeouts alone would wait for ever


async def test_a_hanging_discovery_costs_one_deadline_for_the_whole_key_fetch(
    keys: Keys, http_client: httpx2.AsyncClient
) -> None:
    async with misbehaving_server() as hanging:
        config = ValidatorConfig(issuers=[hanging.url], audiences=[AUDIENCE], http_timeout_seconds=0.5)
        validator = AccessTokenValidator(config, http_client=http_client)
        started = anyio.current_time()
        with anyio.fail_after(10), pytest.raises(KeySourceUnavailableError):
            await validator.validate(mint(keys.rsa, claims(hanging.url)))
    took = anyio.current_time() - started
    print(f"discovery against a hanging server ended after {took:.2f} s")
    assert hanging.connections == 1  # the deadline ended the fetch, not just the first metadata URL
    assert took < 1.5
