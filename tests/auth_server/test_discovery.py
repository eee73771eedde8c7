"""Discovery: RFC 8414 metadata (checked by Authlib's validator too), the JWKS at jwks_uri, health."""

from __future__ import annotations

import httpx2
from authlib.oauth2 import rfc8414, rfc9207

from tests.auth_server.conftest import AuthTestEnv


def test_health(auth: AuthTestEnv, http: httpx2.Client) -> None:
    response = http.get(f"{auth.url}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_metadata_document(auth: AuthTestEnv, http: httpx2.Client) -> None:
    metadata = http.get(f"{auth.url}/.well-known/oauth-authorization-server").json()

    assert metadata["issuer"] == auth.issuer
    assert metadata["authorization_endpoint"] == f"{auth.issuer}/authorize"
    assert metadata["token_endpoint"] == f"{auth.issuer}/token"
    assert metadata["registration_endpoint"] == f"{auth.issuer}/register"
    assert metadata["jwks_uri"] == f"{auth.issuer}/jwks"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["response_types_supported"] == ["code"]
    assert set(metadata["grant_types_supported"]) == {
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    }
    assert "implicit" not in metadata["grant_types_supported"]
    assert "password" not in metadata["grant_types_supported"]
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {
        "private_key_jwt",
        "client_secret_basic",
        "client_secret_post",
        "none",
    }
    assert set(metadata["token_endpoint_auth_signing_alg_values_supported"]) == {
        "ES256",
        "ES384",
        "RS256",
        "PS256",
        "EdDSA",
    }
    assert set(metadata["scopes_supported"]) == {
        "crm:read",
        "crm:write",
        "tickets:read",
        "tickets:write",
        "weather:read",
    }
    assert metadata["authorization_response_iss_parameter_supported"] is True


def test_metadata_passes_authlibs_rfc8414_validation(auth: AuthTestEnv, http: httpx2.Client) -> None:
    document = http.get(f"{auth.url}/.well-known/oauth-authorization-server").json()
    metadata = rfc8414.AuthorizationServerMetadata(document)
    metadata.validate(metadata_classes=[rfc9207.AuthorizationServerMetadata])  # raises on a violation


def test_openid_configuration_is_the_same_document(auth: AuthTestEnv, http: httpx2.Client) -> None:
    oauth = http.get(f"{auth.url}/.well-known/oauth-authorization-server").json()
    openid = http.get(f"{auth.url}/.well-known/openid-configuration").json()
    assert openid == oauth


def test_the_issuer_does_not_follow_the_host_header(auth: AuthTestEnv, http: httpx2.Client) -> None:
    # A compose service reaches the server as auth-server:9000 and must still see the public issuer.
    metadata = http.get(
        f"{auth.url}/.well-known/oauth-authorization-server", headers={"Host": "auth-server:9000"}
    ).json()
    assert metadata["issuer"] == auth.issuer
    assert metadata["jwks_uri"] == f"{auth.issuer}/jwks"


def test_jwks_is_served_at_the_advertised_uri(auth: AuthTestEnv, http: httpx2.Client) -> None:
    jwks_uri = http.get(f"{auth.url}/.well-known/oauth-authorization-server").json()["jwks_uri"]
    keys = http.get(jwks_uri).json()["keys"]
    assert keys
    for key in keys:
        assert key["kty"] == "RSA"
        assert key["alg"] == "RS256"
        assert key["use"] == "sig"
        assert key["kid"]
        assert "d" not in key


def test_no_implicit_or_password_flows(auth: AuthTestEnv, http: httpx2.Client) -> None:
    response = http.post(
        auth.token_url,
        data={"grant_type": "password", "username": "alice", "password": auth.alice_password},
        auth=("crm-mcp-agent", auth.agent_secret),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_browser_clients_may_call_the_api_endpoints_cross_origin(auth: AuthTestEnv, http: httpx2.Client) -> None:
    origin = {"Origin": "http://localhost:6274"}  # e.g. MCP Inspector's web UI
    metadata = http.get(f"{auth.url}/.well-known/oauth-authorization-server", headers=origin)
    assert metadata.headers["access-control-allow-origin"] == "*"
    preflight = http.options(
        f"{auth.url}/token",
        headers={**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:6274"  # CORS_ALLOWED_ORIGINS
    login_page = http.get(f"{auth.url}/authorize", headers=origin)
    assert "access-control-allow-origin" not in login_page.headers
