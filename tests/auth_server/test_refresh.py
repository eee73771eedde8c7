"""refresh_token through Authlib: rotation on every use, reuse refused (and the grant revoked), scopes
may narrow but never widen, and a refresh token only works for the client it was issued to."""

from __future__ import annotations

import httpx2
import pytest
from authlib.integrations.base_client.errors import OAuthError

from tests.auth_server.conftest import AuthTestEnv
from tests.auth_server.flows import native_app, user_tokens
from tests.auth_server.tokens import claims_of, validate


@pytest.mark.anyio
async def test_authlib_refresh_rotates_the_refresh_token(auth: AuthTestEnv) -> None:
    first = user_tokens(auth, "alice", scope="crm:read crm:write")
    session = native_app()

    second = session.refresh_token(auth.token_url, refresh_token=first["refresh_token"])

    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == "crm:read crm:write"
    claims = claims_of(second["access_token"])
    assert (claims["sub"], claims["client_id"]) == ("alice", "test-native-app")
    assert claims["aud"] == [auth.crm_mcp_resource, auth.crm_api_audience]
    await validate(auth, second["access_token"], auth.crm_mcp_resource, "crm:write")
    third = session.refresh_token(auth.token_url, refresh_token=second["refresh_token"])
    assert third["refresh_token"] not in (first["refresh_token"], second["refresh_token"])


def test_a_reused_refresh_token_is_refused_and_revokes_the_grant(auth: AuthTestEnv) -> None:
    first = user_tokens(auth, "bob")
    session = native_app()
    second = session.refresh_token(auth.token_url, refresh_token=first["refresh_token"])

    with pytest.raises(OAuthError) as reused:
        session.refresh_token(auth.token_url, refresh_token=first["refresh_token"])
    assert reused.value.error == "invalid_grant"
    # The replay means a copy leaked: the legitimate successor is revoked too.
    with pytest.raises(OAuthError) as revoked:
        session.refresh_token(auth.token_url, refresh_token=second["refresh_token"])
    assert revoked.value.error == "invalid_grant"


def test_a_refresh_may_narrow_the_scope(auth: AuthTestEnv) -> None:
    first = user_tokens(auth, "alice", scope="crm:read tickets:read")
    narrowed = native_app().refresh_token(auth.token_url, refresh_token=first["refresh_token"], scope="crm:read")
    assert narrowed["scope"] == "crm:read"
    assert claims_of(narrowed["access_token"])["scope"] == "crm:read"


def _refresh(http: httpx2.Client, auth: AuthTestEnv, refresh_token: str, **data: str) -> httpx2.Response:
    form = {"grant_type": "refresh_token", "client_id": "test-native-app", "refresh_token": refresh_token}
    return http.post(auth.token_url, data={**form, **data})


def test_a_refresh_may_not_widen_the_scope(auth: AuthTestEnv, http: httpx2.Client) -> None:
    first = user_tokens(auth, "alice", scope="crm:read")
    response = _refresh(http, auth, first["refresh_token"], scope="crm:read crm:write")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    # The refused request did not use up the refresh token.
    assert _refresh(http, auth, first["refresh_token"]).status_code == 200


def test_a_refresh_for_another_resource_is_invalid_target(auth: AuthTestEnv, http: httpx2.Client) -> None:
    first = user_tokens(auth, "alice")
    response = _refresh(http, auth, first["refresh_token"], resource=auth.tickets_mcp_resource)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"


def test_a_refresh_token_is_bound_to_its_client(auth: AuthTestEnv, http: httpx2.Client) -> None:
    first = user_tokens(auth, "alice")
    response = http.post(
        auth.token_url,
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=("test-web-app", auth.web_secret),  # registered without refresh_token: refused before lookup
    )
    assert response.json()["error"] == "unauthorized_client"
    registration = http.post(
        f"{auth.url}/register",
        json={"redirect_uris": ["http://localhost:54000/callback"], "token_endpoint_auth_method": "none"},
    ).json()
    stolen = http.post(
        auth.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": registration["client_id"],
        },
    )
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"


def test_an_unknown_refresh_token_is_invalid_grant(auth: AuthTestEnv, http: httpx2.Client) -> None:
    response = _refresh(http, auth, "not-a-refresh-token")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_revoking_a_refresh_token_ends_the_grant_only_for_its_own_client(
    auth: AuthTestEnv, http: httpx2.Client
) -> None:
    """RFC 7009: the owner revokes (200, grant gone); another client's attempt is a no-op (still 200)."""
    first = user_tokens(auth, "alice")
    revoke_url = auth.token_url.replace("/token", "/revoke")
    assert http.get(f"{auth.url}/.well-known/oauth-authorization-server").json()["revocation_endpoint"] == revoke_url

    stranger = http.post(revoke_url, data={"token": first["refresh_token"]}, auth=("test-web-app", auth.web_secret))
    assert stranger.status_code == 200
    second = _refresh(http, auth, first["refresh_token"])
    assert second.status_code == 200, second.text

    revoked = http.post(revoke_url, data={"token": second.json()["refresh_token"], "client_id": "test-native-app"})
    assert revoked.status_code == 200
    assert revoked.headers["cache-control"] == "no-store"
    after = _refresh(http, auth, second.json()["refresh_token"])
    assert after.status_code == 400
    assert after.json()["error"] == "invalid_grant"
    unknown = http.post(revoke_url, data={"token": "not-a-token", "client_id": "test-native-app"})
    assert unknown.status_code == 200
    unauthenticated = http.post(revoke_url, data={"token": "not-a-token", "client_id": "no-such-client"})
    assert unauthenticated.status_code == 401
