"""authorization_code + PKCE through Authlib and a headless browser: RFC 9207 iss, state, exact redirect
URIs, single-use codes, and every way the authorization and token requests can be refused."""

from __future__ import annotations

import httpx2
import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from tests.auth_server.browser import Browser, query_of
from tests.auth_server.conftest import NATIVE_REDIRECT, WEB_REDIRECT, AuthTestEnv
from tests.auth_server.flows import authorize_url, code_for, native_app, user_tokens
from tests.auth_server.tokens import claims_of, validate


@pytest.mark.anyio
async def test_authlib_public_client_with_pkce(auth: AuthTestEnv) -> None:
    session, callback, verifier, state = code_for(auth, "alice", scope="crm:read tickets:read")

    assert callback.startswith(NATIVE_REDIRECT + "?")
    response = query_of(callback)
    assert response["iss"] == auth.issuer  # RFC 9207
    assert response["state"] == state
    token = session.fetch_token(
        auth.token_url,
        authorization_response=callback,
        code_verifier=verifier,
        state=state,
        resource=auth.crm_mcp_resource,
    )
    assert token["scope"] == "crm:read tickets:read"
    assert token["refresh_token"]
    claims = claims_of(token["access_token"])
    assert claims["sub"] == "alice"
    assert claims["client_id"] == "test-native-app"
    # The crm-mcp resource carries crm-api's audience: one trust boundary, for the cascade pattern.
    assert claims["aud"] == [auth.crm_mcp_resource, auth.crm_api_audience]
    principal = await validate(auth, token["access_token"], auth.crm_mcp_resource, "crm:read")
    assert principal.subject == "alice"
    assert (await validate(auth, token["access_token"], auth.crm_api_audience)).subject == "alice"


def test_scope_omitted_means_every_scope_the_client_has_for_the_resource(auth: AuthTestEnv) -> None:
    token = user_tokens(auth, "bob")
    assert set(token["scope"].split()) == {"crm:read", "crm:write", "tickets:read", "tickets:write", "weather:read"}
    assert claims_of(token["access_token"])["sub"] == "bob"


def test_authlib_confidential_client(auth: AuthTestEnv) -> None:
    session = OAuth2Session(
        "test-web-app", auth.web_secret, redirect_uri=WEB_REDIRECT, code_challenge_method="S256", scope="crm:read"
    )
    verifier = generate_token(64)
    url, state = authorize_url(auth, session, verifier)
    browser = Browser()
    callback = browser.authorize(url, "alice", auth.alice_password)
    browser.close()
    token = session.fetch_token(auth.token_url, authorization_response=callback, code_verifier=verifier, state=state)
    assert claims_of(token["access_token"])["client_id"] == "test-web-app"
    assert "refresh_token" not in token  # not registered for refresh_token


def test_a_redirect_uri_keeps_its_query(auth: AuthTestEnv) -> None:
    redirect = "http://localhost:53682/callback?app=native"
    _, callback, _, _ = code_for(auth, redirect_uri=redirect)
    assert callback.startswith(redirect + "&")
    assert query_of(callback)["app"] == "native"


def _token_request(http: httpx2.Client, auth: AuthTestEnv, **data: str) -> httpx2.Response:
    form = {"grant_type": "authorization_code", "client_id": "test-native-app", "redirect_uri": NATIVE_REDIRECT}
    return http.post(auth.token_url, data={**form, **data})


def _assert_error(response: httpx2.Response, error: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


def test_pkce_mismatch_is_invalid_grant_and_burns_the_code(auth: AuthTestEnv, http: httpx2.Client) -> None:
    _, callback, verifier, _ = code_for(auth)
    code = query_of(callback)["code"]
    _assert_error(_token_request(http, auth, code=code, code_verifier=generate_token(64)), "invalid_grant")
    _assert_error(_token_request(http, auth, code=code, code_verifier=verifier), "invalid_grant")


def test_a_missing_code_verifier_is_invalid_request(auth: AuthTestEnv, http: httpx2.Client) -> None:
    _, callback, _, _ = code_for(auth)
    _assert_error(_token_request(http, auth, code=query_of(callback)["code"]), "invalid_request")


def test_a_code_is_single_use_and_a_replay_revokes_its_refresh_token(auth: AuthTestEnv, http: httpx2.Client) -> None:
    _, callback, verifier, _ = code_for(auth)
    code = query_of(callback)["code"]
    first = _token_request(http, auth, code=code, code_verifier=verifier)
    assert first.status_code == 200, first.text
    _assert_error(_token_request(http, auth, code=code, code_verifier=verifier), "invalid_grant")
    refresh = {"grant_type": "refresh_token", "client_id": "test-native-app"}
    revoked = http.post(auth.token_url, data={**refresh, "refresh_token": first.json()["refresh_token"]})
    _assert_error(revoked, "invalid_grant")


def test_a_different_redirect_uri_at_the_token_endpoint_is_invalid_grant(
    auth: AuthTestEnv, http: httpx2.Client
) -> None:
    _, callback, verifier, _ = code_for(auth)
    other = "http://localhost:53682/callback?app=native"  # registered too, but not the one authorized
    response = _token_request(http, auth, code=query_of(callback)["code"], code_verifier=verifier, redirect_uri=other)
    _assert_error(response, "invalid_grant")


def test_another_clients_code_is_invalid_grant(auth: AuthTestEnv, http: httpx2.Client) -> None:
    _, callback, verifier, _ = code_for(auth)
    response = http.post(
        auth.token_url,
        data={"grant_type": "authorization_code", "code": query_of(callback)["code"], "code_verifier": verifier},
        auth=("test-web-app", auth.web_secret),
    )
    _assert_error(response, "invalid_grant")


def test_a_resource_other_than_the_authorized_one_is_invalid_target(auth: AuthTestEnv, http: httpx2.Client) -> None:
    _, callback, verifier, _ = code_for(auth)
    response = _token_request(
        http, auth, code=query_of(callback)["code"], code_verifier=verifier, resource=auth.tickets_mcp_resource
    )
    _assert_error(response, "invalid_target")


def test_authlib_reports_a_reused_code(auth: AuthTestEnv) -> None:
    session, callback, verifier, _ = code_for(auth)
    session.fetch_token(auth.token_url, authorization_response=callback, code_verifier=verifier)
    with pytest.raises(OAuthError) as raised:
        native_app().fetch_token(auth.token_url, authorization_response=callback, code_verifier=verifier)
    assert raised.value.error == "invalid_grant"


def _authorize_params(auth: AuthTestEnv, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": "test-native-app",
        "redirect_uri": NATIVE_REDIRECT,
        "state": "state-123",
        "code_challenge": create_s256_code_challenge(generate_token(64)),
        "code_challenge_method": "S256",
        "resource": auth.crm_mcp_resource,
    }
    params.update(overrides)
    return {name: value for name, value in params.items() if value is not None}


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),
        ({"scope": "crm:read crm:admin"}, "invalid_scope"),
        ({"resource": "https://tickets.example/mcp"}, "invalid_target"),
    ],
)
def test_refused_authorization_requests_go_back_with_state_and_iss(
    auth: AuthTestEnv, http: httpx2.Client, overrides: dict[str, str | None], error: str
) -> None:
    response = http.get(f"{auth.url}/authorize", params=_authorize_params(auth, **overrides))
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(NATIVE_REDIRECT + "?")
    params = query_of(location)
    assert params["error"] == error
    assert params["state"] == "state-123"
    assert params["iss"] == auth.issuer
    assert "code" not in params


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "no-such-client"},
        {"client_id": None},
        {"redirect_uri": "http://127.0.0.1:53682/other"},
        {"redirect_uri": "https://attacker.example/callback"},
        {"redirect_uri": NATIVE_REDIRECT + "/"},  # exact match only
    ],
)
def test_unknown_clients_and_redirect_uris_are_never_redirected_to(
    auth: AuthTestEnv, http: httpx2.Client, overrides: dict[str, str | None]
) -> None:
    response = http.get(f"{auth.url}/authorize", params=_authorize_params(auth, **overrides))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


def test_denying_consent_returns_access_denied(auth: AuthTestEnv) -> None:
    session = native_app()
    url, state = authorize_url(auth, session, generate_token(64))
    browser = Browser()
    callback = browser.authorize(url, "bob", auth.bob_password, decision="deny")
    browser.close()
    params = query_of(callback)
    assert params["error"] == "access_denied"
    assert params["state"] == state
    assert params["iss"] == auth.issuer
    assert "code" not in params
