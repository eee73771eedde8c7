"""RFC 8414 / OpenID discovery of the jwks_uri, against real metadata documents on loopback."""

from __future__ import annotations

import httpx2
import pytest
from oauth_tokens import AccessTokenValidator, SigningKeyUnavailableError, ValidatorConfig
from oauth_tokens.discovery import metadata_urls

from tests.shared.conftest import Keys
from tests.shared.loopback import LoopbackAuthServer
from tests.shared.tokens import AUDIENCE, claims, mint

pytestmark = pytest.mark.anyio


def test_metadata_urls_follow_rfc_8414_for_issuers_with_a_path() -> None:
    assert metadata_urls("https://as.example") == [
        "https://as.example/.well-known/oauth-authorization-server",
        "https://as.example/.well-known/openid-configuration",
    ]
    assert metadata_urls("https://as.example/tenant/1/") == [
        "https://as.example/.well-known/oauth-authorization-server/tenant/1",
        "https://as.example/.well-known/openid-configuration/tenant/1",
        "https://as.example/tenant/1/.well-known/openid-configuration",
    ]
    with pytest.raises(ValueError, match="absolute http"):
        metadata_urls("as.example/tenant")


async def _validate_with(config: ValidatorConfig, client: httpx2.AsyncClient, token: str) -> str:
    async with AccessTokenValidator(config, http_client=client) as validator:
        return (await validator.validate(token)).subject


async def test_jwks_uri_discovered_from_the_issuer(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    config = ValidatorConfig(issuers=[issuer], audiences=[AUDIENCE])
    async with AccessTokenValidator(config, http_client=http_client) as validator:
        for _ in range(3):
            await validator.validate(mint(keys.rsa, claims(issuer)))
    assert auth_server.state.counts["metadata"] == 1
    assert auth_server.state.counts["jwks"] == 1


async def test_issuer_with_a_path_uses_the_path_inserted_well_known_url(
    keys: Keys, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    issuer = f"{auth_server.url}/tenant-a"
    config = ValidatorConfig(issuers=[issuer], audiences=[AUDIENCE])
    assert await _validate_with(config, http_client, mint(keys.rsa, claims(issuer))) == "alice"
    assert auth_server.state.counts["metadata:tenant-a"] == 1


async def test_openid_configuration_is_the_fallback(
    keys: Keys, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    issuer = f"{auth_server.url}/tenant-b"
    config = ValidatorConfig(issuers=[issuer], audiences=[AUDIENCE])
    assert await _validate_with(config, http_client, mint(keys.rsa, claims(issuer))) == "alice"
    assert auth_server.state.counts["openid:tenant-b"] == 1


async def test_metadata_naming_another_issuer_is_refused(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    auth_server.state.metadata_issuer = "https://evil.example"
    config = ValidatorConfig(issuers=[issuer], audiences=[AUDIENCE])
    with pytest.raises(SigningKeyUnavailableError):
        await _validate_with(config, http_client, mint(keys.rsa, claims(issuer)))
    assert auth_server.state.counts["jwks"] == 0


async def test_non_http_jwks_uri_is_refused(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    auth_server.state.metadata_jwks_uri = "file:///etc/passwd"
    config = ValidatorConfig(issuers=[issuer], audiences=[AUDIENCE])
    with pytest.raises(SigningKeyUnavailableError):
        await _validate_with(config, http_client, mint(keys.rsa, claims(issuer)))


async def test_discovery_url_reaches_an_issuer_whose_public_host_is_not_reachable(
    keys: Keys, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    public_issuer = "http://issuer.invalid:9000"  # what tokens say; not resolvable from here
    auth_server.state.metadata_issuer = public_issuer
    auth_server.state.metadata_jwks_uri = f"{public_issuer}/jwks"
    config = ValidatorConfig(issuers=[public_issuer], audiences=[AUDIENCE], discovery_url=auth_server.url)
    assert await _validate_with(config, http_client, mint(keys.rsa, claims(public_issuer))) == "alice"
    assert auth_server.state.counts["jwks"] == 1
