"""JWKS cache policy against a real JWKS endpoint: TTL, cool-down, single flight, rotation, key filtering."""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import pytest
from oauth_tokens import AccessTokenValidator, KeySourceUnavailableError, SigningKeyUnavailableError, ValidatorConfig
from oauth_tokens.jwks import JWKSCache

from tests.shared.conftest import Keys
from tests.shared.loopback import LoopbackAuthServer
from tests.shared.tokens import AUDIENCE, claims, ec_key, mint, rsa_key

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
