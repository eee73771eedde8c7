"""client_credentials through Authlib (client_secret_basic and client_secret_post), RFC 9068 tokens,
RFC 8707 audiences, and the token endpoint's errors (RFC 6749 §5.2)."""

from __future__ import annotations

import time

import httpx2
import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from oauth_tokens import InvalidTokenError

from tests.auth_server.conftest import AuthTestEnv
from tests.auth_server.tokens import claims_of, header_of, validate, validate_with_authlib


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
@pytest.mark.anyio
async def test_authlib_client_credentials(auth: AuthTestEnv, http: httpx2.Client, method: str) -> None:
    session = OAuth2Session("crm-mcp-agent", auth.agent_secret, token_endpoint_auth_method=method)
    token = session.fetch_token(auth.token_url, grant_type="client_credentials", resource=auth.tickets_mcp_resource)

    assert token["token_type"].lower() == "bearer"
    assert token["expires_in"] == 600
    assert token["scope"] == "tickets:read tickets:write"  # default: all the client's scopes for it
    assert "refresh_token" not in token
    access_token = token["access_token"]
    assert header_of(access_token)["typ"] == "at+jwt"
    assert header_of(access_token)["alg"] == "RS256"
    claims = claims_of(access_token)
    assert claims["iss"] == auth.issuer
    assert claims["sub"] == "crm-mcp-agent"
    assert claims["client_id"] == "crm-mcp-agent"
    assert claims["aud"] == auth.tickets_mcp_resource
    assert claims["exp"] - claims["iat"] == 600
    assert abs(claims["iat"] - time.time()) < 30
    assert claims["jti"]
    principal = await validate(auth, access_token, auth.tickets_mcp_resource, "tickets:read")
    assert principal.subject == "crm-mcp-agent"
    assert principal.scopes == frozenset({"tickets:read", "tickets:write"})
    jwks = http.get(f"{auth.url}/jwks").json()
    assert validate_with_authlib(auth, access_token, auth.tickets_mcp_resource, jwks)["sub"] == "crm-mcp-agent"


@pytest.mark.anyio
async def test_the_resource_selects_the_audience(auth: AuthTestEnv) -> None:
    session = OAuth2Session("crm-mcp-agent", auth.agent_secret)
    token = session.fetch_token(auth.token_url, grant_type="client_credentials", resource=auth.crm_api_audience)
    claims = claims_of(token["access_token"])
    assert claims["aud"] == auth.crm_api_audience
    assert claims["scope"] == "crm:read crm:write"  # crm-api refuses such a token anyway: it names no user
    await validate(auth, token["access_token"], auth.crm_api_audience, "crm:read")
    with pytest.raises(InvalidTokenError):
        await validate(auth, token["access_token"], auth.tickets_mcp_resource)


def test_a_trailing_slash_on_the_resource_names_the_same_resource(auth: AuthTestEnv) -> None:
    session = OAuth2Session("crm-mcp-agent", auth.agent_secret)
    token = session.fetch_token(auth.token_url, grant_type="client_credentials", resource=auth.crm_api_audience + "/")
    assert claims_of(token["access_token"])["aud"] == auth.crm_api_audience


def test_exactly_the_requested_scope_is_granted(auth: AuthTestEnv) -> None:
    session = OAuth2Session("crm-mcp-agent", auth.agent_secret, scope="tickets:read")
    token = session.fetch_token(auth.token_url, grant_type="client_credentials", resource=auth.tickets_mcp_resource)
    assert token["scope"] == "tickets:read"
    assert claims_of(token["access_token"])["scope"] == "tickets:read"


def test_token_responses_are_not_cached(auth: AuthTestEnv, http: httpx2.Client) -> None:
    response = http.post(
        auth.token_url,
        data={"grant_type": "client_credentials", "resource": auth.tickets_mcp_resource},
        auth=("crm-mcp-agent", auth.agent_secret),
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


def _post(
    http: httpx2.Client, server: AuthTestEnv, data: dict[str, str], credentials: tuple[str, str] | None = None
) -> httpx2.Response:
    if credentials is None:
        return http.post(server.token_url, data=data)
    return http.post(server.token_url, data=data, auth=credentials)


def _assert_error(response: httpx2.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_description"]
    assert response.headers["cache-control"] == "no-store"


def test_wrong_secret_basic_is_invalid_client_401_with_challenge(auth: AuthTestEnv, http: httpx2.Client) -> None:
    wrong = _post(http, auth, {"grant_type": "client_credentials"}, credentials=("crm-mcp-agent", "wrong-secret"))
    _assert_error(wrong, 401, "invalid_client")
    assert wrong.headers["www-authenticate"].startswith("Basic ")
    unknown = _post(http, auth, {"grant_type": "client_credentials"}, credentials=("no-such-client", "wrong-secret"))
    _assert_error(unknown, 401, "invalid_client")
    assert unknown.json() == wrong.json()  # an unknown client looks exactly like a wrong secret


def test_wrong_secret_post_is_invalid_client(auth: AuthTestEnv, http: httpx2.Client) -> None:
    data = {"grant_type": "client_credentials", "client_id": "crm-mcp-agent", "client_secret": "nope"}
    _assert_error(_post(http, auth, data), 401, "invalid_client")


def test_authlib_sees_invalid_client(auth: AuthTestEnv) -> None:
    session = OAuth2Session("crm-mcp-agent", "not-the-secret")
    with pytest.raises(OAuthError) as raised:
        session.fetch_token(auth.token_url, grant_type="client_credentials", resource=auth.tickets_mcp_resource)
    assert raised.value.error == "invalid_client"


def test_no_client_authentication_is_invalid_client(auth: AuthTestEnv, http: httpx2.Client) -> None:
    _assert_error(_post(http, auth, {"grant_type": "client_credentials"}), 401, "invalid_client")
    # A confidential client must authenticate: its client_id alone is not enough.
    data = {"grant_type": "client_credentials", "client_id": "crm-mcp-agent"}
    _assert_error(_post(http, auth, data), 401, "invalid_client")


def test_two_authentication_methods_at_once_are_invalid_request(auth: AuthTestEnv, http: httpx2.Client) -> None:
    data = {"grant_type": "client_credentials", "client_secret": auth.agent_secret}
    _assert_error(_post(http, auth, data, credentials=("crm-mcp-agent", auth.agent_secret)), 400, "invalid_request")


def test_scope_beyond_registration_is_invalid_scope(auth: AuthTestEnv, http: httpx2.Client) -> None:
    credentials = ("crm-mcp-agent", auth.agent_secret)
    # weather:read exists (on crm-mcp), but not for crm-mcp-agent on crm-api: refused, not narrowed.
    data = {"grant_type": "client_credentials", "resource": auth.crm_api_audience, "scope": "crm:read weather:read"}
    _assert_error(_post(http, auth, data, credentials=credentials), 400, "invalid_scope")
    data = {"grant_type": "client_credentials", "resource": auth.tickets_mcp_resource, "scope": "crm:read"}
    _assert_error(_post(http, auth, data, credentials=credentials), 400, "invalid_scope")


def test_resource_beyond_registration_is_invalid_target(auth: AuthTestEnv, http: httpx2.Client) -> None:
    credentials = ("crm-mcp-agent", auth.agent_secret)
    for resource in (auth.crm_mcp_resource, "https://elsewhere.example/api", "not a uri"):
        data = {"grant_type": "client_credentials", "resource": resource}
        _assert_error(_post(http, auth, data, credentials=credentials), 400, "invalid_target")
    # Registered for two resources, so it must say which one.
    _assert_error(
        _post(http, auth, {"grant_type": "client_credentials"}, credentials=credentials), 400, "invalid_target"
    )


def test_a_client_with_one_resource_gets_it_by_default(auth: AuthTestEnv) -> None:
    session = OAuth2Session("test-reporting-job", auth.reporting_secret)
    token = session.fetch_token(auth.token_url, grant_type="client_credentials")
    assert claims_of(token["access_token"])["aud"] == auth.crm_api_audience


def test_a_grant_the_client_is_not_registered_for_is_unauthorized_client(
    auth: AuthTestEnv, http: httpx2.Client
) -> None:
    data = {"grant_type": "refresh_token", "refresh_token": "whatever"}
    _assert_error(_post(http, auth, data, credentials=("crm-mcp-agent", auth.agent_secret)), 400, "unauthorized_client")
    # A public client cannot use client_credentials.
    data = {"grant_type": "client_credentials", "client_id": "test-native-app"}
    _assert_error(_post(http, auth, data), 400, "unauthorized_client")


def test_request_format_errors_are_invalid_request(auth: AuthTestEnv, http: httpx2.Client) -> None:
    credentials = ("crm-mcp-agent", auth.agent_secret)
    _assert_error(_post(http, auth, {}, credentials=credentials), 400, "invalid_request")  # no grant_type
    repeated = http.post(
        auth.token_url,
        content="grant_type=client_credentials&scope=tickets:read&scope=tickets:write",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=credentials,
    )
    _assert_error(repeated, 400, "invalid_request")
    as_json = http.post(auth.token_url, json={"grant_type": "client_credentials"}, auth=credentials)
    _assert_error(as_json, 400, "invalid_request")


@pytest.mark.parametrize("grant_type", ["password", "implicit", "urn:example:made-up"])
def test_unknown_and_removed_grants_are_unsupported(auth: AuthTestEnv, http: httpx2.Client, grant_type: str) -> None:
    data = {"grant_type": grant_type}
    _assert_error(
        _post(http, auth, data, credentials=("crm-mcp-agent", auth.agent_secret)), 400, "unsupported_grant_type"
    )
