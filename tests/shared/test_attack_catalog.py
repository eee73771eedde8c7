"""Attack catalog: forged, broken and misdirected tokens, each refused with the exact error (and HTTP answer)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio
import httpx2
import pytest
from fastapi import Depends, FastAPI
from oauth_tokens import (
    AccessTokenValidator,
    InsufficientScopeError,
    InvalidTokenError,
    OAuthTokensError,
    Principal,
    SigningKeyUnavailableError,
    ValidatorConfig,
)
from oauth_tokens.fastapi import install_token_validation, require_scopes

from tests.shared.conftest import Keys
from tests.shared.loopback import LoopbackAuthServer
from tests.shared.tokens import (
    AUDIENCE,
    OTHER_AUDIENCE,
    b64url,
    b64url_json,
    claims,
    flip_signature_byte,
    hmac_signed,
    mint,
    replace_payload,
    self_signed_certificate,
    unsigned,
    with_segment,
)

pytestmark = pytest.mark.anyio

TokenBuilder = Callable[[Keys, str, str], str]  # (keys, issuer, server url) -> token


def _now() -> int:
    return int(time.time())


def _oversized(keys: Keys, issuer: str, url: str) -> str:
    return mint(keys.rsa, claims(issuer, padding="x" * 100_000))


REFUSED: dict[str, tuple[TokenBuilder, type[OAuthTokensError]]] = {
    "alg-none": (
        lambda k, iss, url: unsigned({"alg": "none", "kid": k.rsa.kid, "typ": "at+jwt"}, claims(iss)),
        InvalidTokenError,
    ),
    "alg-None-capitalised": (
        lambda k, iss, url: unsigned({"alg": "None", "kid": k.rsa.kid}, claims(iss)),
        InvalidTokenError,
    ),
    "hs256-signed-with-rsa-public-pem": (
        lambda k, iss, url: hmac_signed(
            {"alg": "HS256", "kid": k.rsa.kid, "typ": "at+jwt"}, claims(iss), k.rsa.public_pem()
        ),
        InvalidTokenError,
    ),
    "tampered-payload": (
        lambda k, iss, url: replace_payload(
            mint(k.rsa, claims(iss)), claims(iss, sub="bob", scope="crm:read crm:write admin")
        ),
        InvalidTokenError,
    ),
    "bad-signature": (lambda k, iss, url: flip_signature_byte(mint(k.rsa, claims(iss))), InvalidTokenError),
    "other-key-reusing-valid-kid": (
        lambda k, iss, url: mint(k.attacker, claims(iss), kid=k.rsa.kid),
        InvalidTokenError,
    ),
    "expired": (
        lambda k, iss, url: mint(k.rsa, claims(iss, exp=_now() - 120, iat=_now() - 600)),
        InvalidTokenError,
    ),
    "nbf-in-future": (lambda k, iss, url: mint(k.rsa, claims(iss, nbf=_now() + 300)), InvalidTokenError),
    "iat-in-future": (lambda k, iss, url: mint(k.rsa, claims(iss, iat=_now() + 300)), InvalidTokenError),
    "wrong-issuer": (lambda k, iss, url: mint(k.rsa, claims("https://evil.example")), InvalidTokenError),
    "issuer-with-trailing-slash": (lambda k, iss, url: mint(k.rsa, claims(iss + "/")), InvalidTokenError),
    "wrong-audience": (lambda k, iss, url: mint(k.rsa, claims(iss, aud=OTHER_AUDIENCE)), InvalidTokenError),
    "audience-list-without-ours": (
        lambda k, iss, url: mint(k.rsa, claims(iss, aud=[OTHER_AUDIENCE, "account"])),
        InvalidTokenError,
    ),
    "audience-prefix-of-ours": (
        lambda k, iss, url: mint(k.rsa, claims(iss, aud=AUDIENCE + "0")),
        InvalidTokenError,
    ),
    "empty-subject": (lambda k, iss, url: mint(k.rsa, claims(iss, sub="")), InvalidTokenError),
    "numeric-subject": (lambda k, iss, url: mint(k.rsa, claims(iss, sub=42)), InvalidTokenError),
    "scope-claim-not-string": (lambda k, iss, url: mint(k.rsa, claims(iss, scope=7)), InvalidTokenError),
    "unknown-kid": (
        lambda k, iss, url: mint(k.rsa, claims(iss), kid="no-such-kid"),
        SigningKeyUnavailableError,
    ),
    "no-kid": (lambda k, iss, url: mint(k.rsa, claims(iss), kid=None), InvalidTokenError),
    "kid-not-a-string": (
        lambda k, iss, url: unsigned({"alg": "RS256", "kid": 5}, claims(iss), b"x" * 256),
        InvalidTokenError,
    ),
    "key-published-for-encryption": (
        lambda k, iss, url: mint(k.encryption, claims(iss)),
        SigningKeyUnavailableError,
    ),
    "jku-to-attacker-jwks": (
        lambda k, iss, url: mint(k.attacker, claims(iss), jku=f"{url}/attacker/jwks"),
        SigningKeyUnavailableError,
    ),
    "jku-to-attacker-jwks-with-valid-kid": (
        lambda k, iss, url: mint(k.attacker, claims(iss), kid=k.rsa.kid, jku=f"{url}/attacker/jwks"),
        InvalidTokenError,
    ),
    "x5u-to-attacker-certificate": (
        lambda k, iss, url: mint(k.attacker, claims(iss), kid=k.rsa.kid, x5u=f"{url}/attacker/cert.pem"),
        InvalidTokenError,
    ),
    "embedded-jwk-of-attacker": (
        lambda k, iss, url: mint(k.attacker, claims(iss), kid=k.rsa.kid, jwk=k.attacker.public_jwk()),
        InvalidTokenError,
    ),
    "embedded-jwk-without-kid": (
        lambda k, iss, url: mint(k.attacker, claims(iss), kid=None, jwk=k.attacker.public_jwk()),
        InvalidTokenError,
    ),
    "x5c-of-attacker": (
        lambda k, iss, url: mint(k.attacker, claims(iss), kid=k.rsa.kid, x5c=[self_signed_certificate(k.attacker)]),
        InvalidTokenError,
    ),
    "alg-not-in-allowlist": (
        lambda k, iss, url: mint(k.rsa, claims(iss), algorithm="RS384"),
        InvalidTokenError,
    ),
    "es256-header-on-rsa-kid": (
        lambda k, iss, url: mint(k.ec, claims(iss), kid=k.rsa.kid),
        InvalidTokenError,
    ),
    "rs256-header-on-ec-kid": (
        lambda k, iss, url: mint(k.rsa, claims(iss), kid=k.ec.kid),
        InvalidTokenError,
    ),
    "unknown-crit-header": (
        lambda k, iss, url: mint(k.rsa, claims(iss), crit=["x_must_understand"], x_must_understand=1),
        InvalidTokenError,
    ),
    "malformed-base64-header": (
        lambda k, iss, url: with_segment(mint(k.rsa, claims(iss)), 0, "!!!!"),
        InvalidTokenError,
    ),
    "malformed-json-header": (
        lambda k, iss, url: with_segment(mint(k.rsa, claims(iss)), 0, b64url(b'{"alg":"RS256",')),
        InvalidTokenError,
    ),
    "header-is-json-array": (
        lambda k, iss, url: with_segment(mint(k.rsa, claims(iss)), 0, b64url_json(["RS256"])),
        InvalidTokenError,
    ),
    "payload-not-json": (
        lambda k, iss, url: with_segment(mint(k.rsa, claims(iss)), 1, b64url(b"not json")),
        InvalidTokenError,
    ),
    "two-segments": (lambda k, iss, url: mint(k.rsa, claims(iss)).rsplit(".", 1)[0], InvalidTokenError),
    "four-segments": (lambda k, iss, url: mint(k.rsa, claims(iss)) + ".AAAA", InvalidTokenError),
    "five-segments-jwe-shape": (lambda k, iss, url: "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", InvalidTokenError),
    "not-ascii": (lambda k, iss, url: mint(k.rsa, claims(iss)) + "é", InvalidTokenError),
    "empty": (lambda k, iss, url: "", InvalidTokenError),
    "oversized-100kb": (_oversized, InvalidTokenError),
    "typ-id-token": (lambda k, iss, url: mint(k.rsa, claims(iss), typ="id_token"), InvalidTokenError),
    "typ-id-token-jwt": (
        lambda k, iss, url: mint(k.rsa, claims(iss), typ="application/id_token+jwt"),
        InvalidTokenError,
    ),
    "typ-logout-token": (lambda k, iss, url: mint(k.rsa, claims(iss), typ="logout+jwt"), InvalidTokenError),
    "typ-dpop-proof": (lambda k, iss, url: mint(k.rsa, claims(iss), typ="dpop+jwt"), InvalidTokenError),
    # RFC 9068 §4: untyped tokens only where AUTH_ACCEPT_UNTYPED_TOKENS says so (test_token_type.py).
    "typ-JWT-by-default": (lambda k, iss, url: mint(k.rsa, claims(iss), typ="JWT"), InvalidTokenError),
    "typ-absent-by-default": (lambda k, iss, url: mint(k.rsa, claims(iss), typ=None), InvalidTokenError),
    "typ-not-a-string": (lambda k, iss, url: mint(k.rsa, claims(iss), typ=["at+jwt"]), InvalidTokenError),
    "scope-with-a-tab": (lambda k, iss, url: mint(k.rsa, claims(iss, scope="crm:read\tcrm:write")), InvalidTokenError),
    "scope-with-a-newline": (
        lambda k, iss, url: mint(k.rsa, claims(iss, scope="crm:read\ncrm:admin")),
        InvalidTokenError,
    ),
    "scopes-item-with-a-space": (
        lambda k, iss, url: mint(k.rsa, claims(iss, scope=None, scopes=["crm:read crm:admin"])),
        InvalidTokenError,
    ),
    **{
        f"missing-{claim}": (
            (lambda missing: lambda k, iss, url: mint(k.rsa, claims(iss, **{missing: None})))(claim),
            InvalidTokenError,
        )
        for claim in ("iss", "aud", "exp", "iat", "sub")
    },
}

ACCEPTED: dict[str, TokenBuilder] = {
    "rs256": lambda k, iss, url: mint(k.rsa, claims(iss)),
    "es256-with-ec-key": lambda k, iss, url: mint(k.ec, claims(iss)),
    "expired-within-leeway": lambda k, iss, url: mint(k.rsa, claims(iss, exp=_now() - 10, iat=_now() - 600)),
    "audience-list-containing-ours": lambda k, iss, url: mint(k.rsa, claims(iss, aud=["account", AUDIENCE])),
    "typ-at+jwt": lambda k, iss, url: mint(k.rsa, claims(iss), typ="at+jwt"),
    "typ-application/at+jwt": lambda k, iss, url: mint(k.rsa, claims(iss), typ="application/at+jwt"),
    "typ-AT+JWT-uppercase": lambda k, iss, url: mint(k.rsa, claims(iss), typ="AT+JWT"),
}


@pytest.fixture
async def api(validator: AccessTokenValidator) -> AsyncIterator[httpx2.AsyncClient]:
    """A tiny FastAPI resource server guarded by the adapter: GET /contacts needs crm:read."""
    app = FastAPI()
    install_token_validation(app, validator, realm="crm-api")

    @app.get("/contacts")
    async def contacts(principal: Annotated[Principal, Depends(require_scopes("crm:read"))]) -> dict[str, Any]:
        return {"subject": principal.subject}

    @app.get("/admin")
    async def admin(principal: Annotated[Principal, Depends(require_scopes("crm:admin"))]) -> dict[str, Any]:
        return {"subject": principal.subject}

    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://crm-api.test", verify=False) as client:
        yield client


@pytest.mark.parametrize(("builder", "expected"), list(REFUSED.values()), ids=list(REFUSED))
async def test_refused(
    builder: TokenBuilder,
    expected: type[OAuthTokensError],
    keys: Keys,
    issuer: str,
    auth_server: LoopbackAuthServer,
    validator: AccessTokenValidator,
    api: httpx2.AsyncClient,
) -> None:
    token = builder(keys, issuer, auth_server.url)

    with pytest.raises(OAuthTokensError) as refused:
        await validator.validate(token, required_scopes=["crm:read"])
    assert type(refused.value) is expected

    # Raw bytes, so even a non-ASCII token reaches the server as sent.
    response = await api.get("/contacts", headers=[(b"authorization", f"Bearer {token}".encode())])
    assert response.status_code == 401
    if token:
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
        assert response.json()["error"] == "invalid_token"
    else:  # "Bearer " with nothing after it is no token at all: RFC 6750 §3.1, no error code
        assert response.headers["www-authenticate"] == 'Bearer realm="crm-api"'
    # Keys come only from the configured JWKS: jku/x5u never make us fetch anything.
    assert auth_server.state.counts["attacker"] == 0


@pytest.mark.parametrize("builder", list(ACCEPTED.values()), ids=list(ACCEPTED))
async def test_accepted(
    builder: TokenBuilder,
    keys: Keys,
    issuer: str,
    auth_server: LoopbackAuthServer,
    validator: AccessTokenValidator,
    api: httpx2.AsyncClient,
) -> None:
    token = builder(keys, issuer, auth_server.url)

    principal = await validator.validate(token, required_scopes=["crm:read"])
    assert principal.subject == "alice"

    response = await api.get("/contacts", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"subject": "alice"}


async def test_missing_scope_is_403_naming_it(
    keys: Keys, issuer: str, validator: AccessTokenValidator, api: httpx2.AsyncClient
) -> None:
    token = mint(keys.rsa, claims(issuer, scope="crm:read"))

    with pytest.raises(InsufficientScopeError) as refused:
        await validator.validate(token, required_scopes=["crm:read", "crm:admin"])
    assert type(refused.value) is InsufficientScopeError
    assert refused.value.missing == ("crm:admin",)

    response = await api.get("/admin", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="crm:admin"' in challenge
    assert response.json()["error"] == "insufficient_scope"


async def test_oversized_token_is_refused_before_any_key_fetch(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, validator: AccessTokenValidator
) -> None:
    token = _oversized(keys, issuer, auth_server.url)
    assert len(token) > 100_000

    with pytest.raises(InvalidTokenError, match="over 8192 bytes"):
        await validator.validate(token)
    assert auth_server.state.counts["jwks"] == 0


async def test_flood_of_random_kids_fetches_jwks_a_bounded_number_of_times(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, validator: AccessTokenValidator
) -> None:
    forged = [mint(keys.attacker, claims(issuer), kid=uuid.uuid4().hex) for _ in range(100)]

    for token in forged:
        with pytest.raises(SigningKeyUnavailableError):
            await validator.validate(token)

    async def refuse(token: str) -> None:
        with pytest.raises(SigningKeyUnavailableError):
            await validator.validate(token)

    async with anyio.create_task_group() as group:  # the same flood, concurrently
        for _ in range(100):
            group.start_soon(refuse, mint(keys.attacker, claims(issuer), kid=uuid.uuid4().hex))

    assert 1 <= auth_server.state.counts["jwks"] <= 2
    # ...and real tokens still pass, without more fetches.
    await validator.validate(mint(keys.rsa, claims(issuer)))
    assert auth_server.state.counts["jwks"] <= 2


async def test_cached_keys_keep_working_when_the_jwks_endpoint_goes_down(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, validator_config: ValidatorConfig
) -> None:
    # TTL and cool-down of zero: every validation tries to refresh, so the outage is really hit.
    config = ValidatorConfig(
        issuers=validator_config.issuers,
        audiences=validator_config.audiences,
        jwks_url=validator_config.jwks_url,
        jwks_ttl_seconds=0,
        jwks_refetch_cooldown_seconds=0,
    )
    async with AccessTokenValidator(config) as validator:
        await validator.validate(mint(keys.rsa, claims(issuer)))
        auth_server.state.jwks_down = True

        principal = await validator.validate(mint(keys.rsa, claims(issuer)))

        assert principal.subject == "alice"
        assert auth_server.state.counts["jwks"] == 2  # the refresh was attempted, and failed
        with pytest.raises(SigningKeyUnavailableError):
            await validator.validate(mint(keys.rsa, claims(issuer), kid="rotated-in-during-outage"))
