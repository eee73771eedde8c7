"""AccessTokenValidator: configuration checks, the Principal it builds, provider-shaped tokens."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from oauth_tokens import (
    AccessTokenValidator,
    InsufficientScopeError,
    InvalidTokenError,
    Principal,
    ValidatorConfig,
)

from tests.shared.conftest import Keys
from tests.shared.loopback import LoopbackAuthServer
from tests.shared.tokens import AUDIENCE, SigningKeyPair, claims, mint, rsa_key

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("algorithm", ["none", "None", "HS256", "hs384", "HS512"])
def test_symmetric_and_none_algorithms_are_refused_in_config(algorithm: str) -> None:
    with pytest.raises(ValueError, match="never accepted"):
        ValidatorConfig(issuers=["https://as"], audiences=["api"], algorithms=("RS256", algorithm))


@pytest.mark.parametrize(
    "overrides",
    [
        {"algorithms": ("XS999",)},
        {"algorithms": ()},
        {"issuers": []},
        {"audiences": [""]},
        {"leeway_seconds": -1},
        {"max_token_bytes": 0},
        {"issuers": ["not-a-url"]},
        {"jwks_url": "file:///etc/jwks.json"},
    ],
)
def test_bad_config_is_refused(overrides: dict[str, Any]) -> None:
    settings: dict[str, Any] = {"issuers": ["https://as"], "audiences": ["api"], **overrides}
    with pytest.raises(ValueError, match=r"\w"):
        ValidatorConfig(**settings)


def test_a_single_string_issuer_is_not_split_into_characters() -> None:
    config = ValidatorConfig(issuers="https://as", audiences="api")
    assert config.issuers == ("https://as",)
    assert config.audiences == ("api",)


async def test_principal_carries_the_verified_claims(keys: Keys, issuer: str, validator: AccessTokenValidator) -> None:
    token_claims = claims(issuer, aud=[AUDIENCE, "account"], scope="crm:read  crm:write")
    principal = await validator.validate(mint(keys.rsa, token_claims), required_scopes=("crm:write",))

    assert principal == Principal(
        subject="alice",
        client_id="crm-mcp",
        issuer=issuer,
        scopes=frozenset({"crm:read", "crm:write"}),
        audiences=(AUDIENCE, "account"),
        expires_at=token_claims["exp"],
    )
    assert principal.claims["jti"] == token_claims["jti"]
    assert principal.has_scopes("crm:read", "crm:write")
    assert not principal.has_scopes("crm:read", "tickets:read")
    with pytest.raises(TypeError):
        principal.claims["sub"] = "mallory"  # type: ignore[index]


async def test_insufficient_scope_names_required_and_missing(
    keys: Keys, issuer: str, validator: AccessTokenValidator
) -> None:
    token = mint(keys.rsa, claims(issuer, scope="crm:read"))
    with pytest.raises(InsufficientScopeError) as refused:
        await validator.validate(token, required_scopes=["crm:read", "crm:write", "tickets:read"])
    assert refused.value.required == ("crm:read", "crm:write", "tickets:read")
    assert refused.value.missing == ("crm:write", "tickets:read")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # minting with it warns
async def test_weak_rsa_keys_are_refused(
    issuer: str, auth_server: LoopbackAuthServer, validator: AccessTokenValidator
) -> None:
    weak = SigningKeyPair("weak-1", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=1024))  # noqa: S505 - weak on purpose
    auth_server.state.jwks = {"keys": [weak.public_jwk()]}
    with pytest.raises(InvalidTokenError, match="InvalidKeyError"):
        await validator.validate(mint(weak, claims(issuer)))


async def test_pss_token_verifies_with_an_rsa_key_published_without_alg(
    issuer: str, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    key = rsa_key("rsa-no-alg", algorithm="PS256")
    jwk = key.public_jwk()
    del jwk["alg"]
    auth_server.state.jwks = {"keys": [jwk, {**rsa_key("rsa-rs256-only").public_jwk()}]}
    config = ValidatorConfig(
        issuers=[issuer], audiences=[AUDIENCE], jwks_url=f"{issuer}/jwks", algorithms=("RS256", "PS256")
    )
    async with AccessTokenValidator(config, http_client=http_client) as validator:
        assert (await validator.validate(mint(key, claims(issuer)))).subject == "alice"
        assert (await validator.validate(mint(key, claims(issuer), algorithm="RS256"))).subject == "alice"
        # A key published for RS256 must not verify a PS256 token.
        pss_on_rs256_key = mint(key, claims(issuer), kid="rsa-rs256-only")
        with pytest.raises(InvalidTokenError, match="is for RS256"):
            await validator.validate(pss_on_rs256_key)


async def test_unexpected_library_errors_become_invalid_token(
    keys: Keys, issuer: str, validator: AccessTokenValidator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A mock, unavoidably: no real token makes the crypto backend fail this way; the point is the catch-all.
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom in crypto backend")

    monkeypatch.setattr(RSAAlgorithm, "verify", explode)
    with pytest.raises(InvalidTokenError, match="Unexpected RuntimeError") as refused:
        await validator.validate(mint(keys.rsa, claims(issuer)))
    assert isinstance(refused.value.__cause__, RuntimeError)


async def test_refusal_reason_is_logged_at_debug_without_the_token(
    keys: Keys, issuer: str, validator: AccessTokenValidator, caplog: pytest.LogCaptureFixture
) -> None:
    token = mint(keys.rsa, claims(issuer, aud="http://elsewhere"))
    with caplog.at_level("DEBUG", logger="oauth_tokens"), pytest.raises(InvalidTokenError):
        await validator.validate(token)
    refusals = [record for record in caplog.records if "refused" in record.getMessage()]
    assert refusals
    assert refusals[0].levelname == "DEBUG"
    assert "InvalidAudienceError" in refusals[0].getMessage()
    assert all(token.split(".")[2] not in record.getMessage() for record in caplog.records)


# Provider-shaped tokens: each provider spells scopes, client and audience its own way.


def _provider_config(issuers: list[str], audience: str, server: LoopbackAuthServer) -> ValidatorConfig:
    """None of these providers types its access tokens at+jwt (RFC 9068), so untyped ones are accepted."""
    return ValidatorConfig(
        issuers=issuers, audiences=[audience], jwks_url=f"{server.url}/jwks", accept_untyped_tokens=True
    )


async def test_scalekit_shaped_tokens(
    keys: Keys, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    environment, custom_domain = "https://acme.scalekit.dev", "https://auth.acme.example"
    resource = "https://crm-mcp.acme.example/mcp"
    config = _provider_config([environment, custom_domain], resource, auth_server)

    def scalekit_token(issuer: str) -> str:
        payload = claims(
            issuer, aud=[resource], sub="m2morg_123", client_id="m2morg_123", scope=None, scopes=["crm:read"]
        )
        return mint(keys.rsa, payload, typ=None)

    async with AccessTokenValidator(config, http_client=http_client) as validator:
        for issuer in (environment, custom_domain):
            principal = await validator.validate(scalekit_token(issuer), ["crm:read"])
            assert (principal.issuer, principal.client_id, principal.scopes) == (
                issuer,
                "m2morg_123",
                frozenset({"crm:read"}),
            )
        with pytest.raises(InvalidTokenError):
            await validator.validate(scalekit_token("https://other.scalekit.dev"))


async def test_keycloak_shaped_token(
    keys: Keys, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> None:
    issuer = "https://kc.acme.example/realms/acme"
    config = _provider_config([issuer], AUDIENCE, auth_server)
    payload = claims(
        issuer,
        aud=["account", AUDIENCE],
        client_id=None,
        azp="crm-mcp",
        typ="Bearer",
        scope="openid profile crm:read",
        preferred_username="alice",
    )
    async with AccessTokenValidator(config, http_client=http_client) as validator:
        principal = await validator.validate(mint(keys.rsa, payload, typ="JWT"), ["crm:read"])
    assert principal.client_id == "crm-mcp"
    assert principal.scopes == frozenset({"openid", "profile", "crm:read"})
    assert principal.audiences == ("account", AUDIENCE)


async def test_okta_shaped_token(keys: Keys, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient) -> None:
    issuer = "https://acme.okta.com/oauth2/default"
    config = _provider_config([issuer], "api://default", auth_server)
    payload = claims(
        issuer, aud="api://default", client_id=None, cid="0oa1crm", scope=None, scp=["crm:read", "crm:write"]
    )
    async with AccessTokenValidator(config, http_client=http_client) as validator:
        principal = await validator.validate(mint(keys.ec, payload, typ=None), ["crm:write"])
    assert principal.client_id == "0oa1crm"
    assert principal.scopes == frozenset({"crm:read", "crm:write"})


async def test_scp_as_string_and_client_id_precedence(keys: Keys, issuer: str, validator: AccessTokenValidator) -> None:
    payload = claims(issuer, scope="a", scp="b c", scopes=["d"], client_id="first", azp="second", cid="third")
    principal = await validator.validate(mint(keys.rsa, payload))
    assert principal.scopes == frozenset({"a", "b", "c", "d"})
    assert principal.client_id == "first"
    no_client = await validator.validate(mint(keys.rsa, claims(issuer, client_id=None)))
    assert no_client.client_id is None
