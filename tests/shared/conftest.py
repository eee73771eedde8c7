"""Fixtures for the oauth_tokens tests: session-wide keys and one loopback authorization server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx2
import pytest
from devkit.clock import ManualClock
from oauth_tokens import AccessTokenValidator, ValidatorConfig

from tests.shared.loopback import LoopbackAuthServer
from tests.shared.tokens import AUDIENCE, SigningKeyPair, ec_key, rsa_key


@dataclass(frozen=True)
class Keys:
    rsa: SigningKeyPair
    ec: SigningKeyPair
    attacker: SigningKeyPair
    encryption: SigningKeyPair  # published with use="enc": must never verify anything


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(
        rsa=rsa_key("rsa-1"),
        ec=ec_key("ec-1"),
        attacker=rsa_key("attacker-1"),
        encryption=rsa_key("enc-1"),
    )


@pytest.fixture(scope="session")
def loopback_server() -> Iterator[LoopbackAuthServer]:
    server = LoopbackAuthServer().start()
    yield server
    server.stop()


@pytest.fixture
def auth_server(loopback_server: LoopbackAuthServer, keys: Keys) -> LoopbackAuthServer:
    """The loopback server, reset, publishing the RSA and EC keys (and an encryption key)."""
    loopback_server.state.reset()
    loopback_server.state.jwks = {
        "keys": [
            keys.rsa.public_jwk(),
            keys.ec.public_jwk(),
            keys.encryption.public_jwk(use="enc"),
        ]
    }
    loopback_server.state.attacker_jwks = {"keys": [keys.attacker.public_jwk()]}
    return loopback_server


@pytest.fixture
def issuer(auth_server: LoopbackAuthServer) -> str:
    return auth_server.url


@pytest.fixture
def validator_config(auth_server: LoopbackAuthServer) -> ValidatorConfig:
    return ValidatorConfig(
        issuers=[auth_server.url],
        audiences=[AUDIENCE],
        jwks_url=f"{auth_server.url}/jwks",
        algorithms=("RS256", "ES256"),
    )


@pytest.fixture
async def http_client() -> AsyncIterator[httpx2.AsyncClient]:
    """A client for plain-HTTP loopback calls; verify=False only skips loading CA certificates (~70 ms)."""
    async with httpx2.AsyncClient(verify=False, timeout=5.0) as client:
        yield client


@pytest.fixture
async def validator(
    validator_config: ValidatorConfig, http_client: httpx2.AsyncClient
) -> AsyncIterator[AccessTokenValidator]:
    async with AccessTokenValidator(validator_config, http_client=http_client) as token_validator:
        yield token_validator


@pytest.fixture
def clock() -> ManualClock:
    """A clock the test moves by hand, for the token caches under test."""
    return ManualClock()
