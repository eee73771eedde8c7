"""FastAPI adapter: RFC 6750 answers (status, WWW-Authenticate, JSON body) and the dependencies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx2
import pytest
from fastapi import Depends, FastAPI
from oauth_tokens import AccessTokenValidator, Principal
from oauth_tokens.fastapi import CurrentPrincipal, install_token_validation, require_scopes

from tests.shared.conftest import Keys
from tests.shared.loopback import LoopbackAuthServer
from tests.shared.tokens import claims, mint

pytestmark = pytest.mark.anyio

CrmReader = Annotated[Principal, Depends(require_scopes("crm:read"))]


def _app(validator: AccessTokenValidator, realm: str | None) -> FastAPI:
    app = FastAPI()
    install_token_validation(app, validator, realm=realm)

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, Any]:
        return {"subject": principal.subject, "scopes": sorted(principal.scopes)}

    @app.get("/contacts")
    async def contacts(principal: CrmReader) -> dict[str, Any]:
        return {"subject": principal.subject}

    @app.post("/contacts", dependencies=[Depends(require_scopes("crm:write", "crm:admin"))])
    async def create_contact() -> dict[str, Any]:
        return {"created": True}

    @app.get("/public")
    async def public() -> dict[str, Any]:
        return {"public": True}

    return app


@pytest.fixture
async def client(validator: AccessTokenValidator) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=_app(validator, realm="crm-api"))
    async with httpx2.AsyncClient(transport=transport, base_url="http://api.test", verify=False) as api:
        yield api


async def test_valid_token_reaches_the_route(keys: Keys, issuer: str, client: httpx2.AsyncClient) -> None:
    token = mint(keys.rsa, claims(issuer))
    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"subject": "alice", "scopes": ["crm:read", "crm:write"]}
    assert (await client.get("/contacts", headers={"Authorization": f"bearer {token}"})).status_code == 200


@pytest.mark.parametrize("authorization", [None, "", "Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer ", "Token abc"])
async def test_no_bearer_token_is_401_without_error_code(authorization: str | None, client: httpx2.AsyncClient) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.get("/contacts", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="crm-api"'
    assert response.json()["error"] == "unauthorized"


async def test_invalid_token_is_401_with_a_generic_description(
    keys: Keys, issuer: str, client: httpx2.AsyncClient
) -> None:
    token = mint(keys.rsa, claims(issuer, exp=1_000_000_000, iat=999_999_000))
    response = await client.get("/contacts", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer realm="crm-api", error="invalid_token", error_description="The access token is invalid or expired"'
    )
    assert response.json() == {
        "error": "invalid_token",
        "error_description": "The access token is invalid or expired",
    }
    assert response.headers["cache-control"] == "no-store"


async def test_unknown_kid_from_an_answering_jwks_is_401(keys: Keys, issuer: str, client: httpx2.AsyncClient) -> None:
    token = mint(keys.attacker, claims(issuer))
    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


async def test_unreachable_signing_keys_are_503_with_retry_after(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, client: httpx2.AsyncClient
) -> None:
    auth_server.state.jwks_down = True
    response = await client.get("/me", headers={"Authorization": f"Bearer {mint(keys.rsa, claims(issuer))}"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"  # the key cache tries again a second after a failure
    assert response.headers["cache-control"] == "no-store"
    assert "www-authenticate" not in response.headers  # nothing is wrong with the credentials
    assert response.json() == {
        "error": "temporarily_unavailable",
        "error_description": "The token signing keys cannot be fetched right now; retry later",
    }


async def test_insufficient_scope_is_403_naming_every_required_scope(
    keys: Keys, issuer: str, client: httpx2.AsyncClient
) -> None:
    token = mint(keys.rsa, claims(issuer, scope="crm:read crm:write"))
    response = await client.post("/contacts", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    description = "The access token lacks the required scope(s): crm:write crm:admin"
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="crm-api", error="insufficient_scope", error_description="{description}", '
        'scope="crm:write crm:admin"'
    )
    assert response.json() == {"error": "insufficient_scope", "error_description": description}


async def test_routes_without_the_dependency_stay_public(client: httpx2.AsyncClient) -> None:
    assert (await client.get("/public")).status_code == 200


async def test_without_realm_the_challenge_has_no_realm(
    validator: AccessTokenValidator, keys: Keys, issuer: str
) -> None:
    transport = httpx2.ASGITransport(app=_app(validator, realm=None))
    async with httpx2.AsyncClient(transport=transport, base_url="http://api.test", verify=False) as api:
        assert (await api.get("/me")).headers["www-authenticate"] == "Bearer"
        bad = await api.get("/me", headers={"Authorization": "Bearer not.a.jwt"})
        assert bad.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


async def test_dependency_without_install_fails_loudly() -> None:
    app = FastAPI()

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, Any]:
        return {"subject": principal.subject}

    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx2.AsyncClient(transport=transport, base_url="http://api.test", verify=False) as api:
        with pytest.raises(RuntimeError, match="install_token_validation"):
            await api.get("/me", headers={"Authorization": "Bearer x.y.z"})


async def test_openapi_documents_the_bearer_scheme(validator: AccessTokenValidator) -> None:
    schema = _app(validator, realm="crm-api").openapi()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
