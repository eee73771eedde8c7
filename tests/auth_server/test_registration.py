"""Dynamic client registration (RFC 7591): public PKCE clients only, https or loopback redirect URIs,
and only the registration policy's resources and scopes."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from tests.auth_server.conftest import AuthTestEnv
from tests.auth_server.tokens import claims_of

CRM_MCP_SCOPES = {"crm:read", "crm:write", "tickets:read", "tickets:write", "weather:read"}


def _register(http: httpx2.Client, auth: AuthTestEnv, **metadata: Any) -> httpx2.Response:
    body = {"redirect_uris": ["http://localhost:33418/callback"], **metadata}
    return http.post(f"{auth.url}/register", json=body)


def test_a_public_client_registers(auth: AuthTestEnv, http: httpx2.Client) -> None:
    response = _register(http, auth, client_name="Inspector", token_endpoint_auth_method="none")
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    client = response.json()
    assert client["client_id"]
    assert "client_secret" not in client
    assert client["token_endpoint_auth_method"] == "none"
    assert client["redirect_uris"] == ["http://localhost:33418/callback"]
    assert set(client["grant_types"]) == {"authorization_code", "refresh_token"}
    assert set(client["scope"].split()) == CRM_MCP_SCOPES
    assert client["client_name"] == "Inspector"
    assert isinstance(client["client_id_issued_at"], int)


@pytest.mark.parametrize("requested", [None, "client_secret_post", "client_secret_basic"])
def test_every_registration_is_a_public_client(auth: AuthTestEnv, http: httpx2.Client, requested: str | None) -> None:
    # RFC 7591 §3.2.1: the server may replace requested metadata; the response says what was registered.
    metadata = {} if requested is None else {"token_endpoint_auth_method": requested}
    client = _register(http, auth, **metadata).json()
    assert client["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in client


def test_a_registration_may_ask_for_fewer_scopes(auth: AuthTestEnv, http: httpx2.Client) -> None:
    client = _register(http, auth, scope="crm:read").json()
    assert client["scope"] == "crm:read"
    # And then cannot get more than it registered for.
    response = http.get(
        f"{auth.url}/authorize",
        params={
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": "http://localhost:33418/callback",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
            "scope": "crm:write",
        },
    )
    assert response.status_code == 302
    assert "error=invalid_scope" in response.headers["location"]


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({"redirect_uris": ["http://evil.example.com/callback"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://app.example.com/cb#fragment"]}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"redirect_uris": "http://localhost/cb"}, "invalid_client_metadata"),
        ({"grant_types": ["client_credentials"]}, "invalid_client_metadata"),
        ({"grant_types": ["authorization_code", "implicit"]}, "invalid_client_metadata"),
        ({"response_types": ["token"]}, "invalid_client_metadata"),
        ({"scope": "crm:read admin"}, "invalid_client_metadata"),
    ],
)
def test_registrations_outside_the_policy_are_refused(
    auth: AuthTestEnv, http: httpx2.Client, metadata: dict[str, Any], error: str
) -> None:
    response = _register(http, auth, **metadata)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error


@pytest.mark.parametrize(
    "body",
    [
        b'{"redirect_uris": ',  # malformed
        b"[" * 8000 + b"]" * 8000,  # deeply nested, within the body limit
        b'{"client_name": "\xff"}',  # not UTF-8
        b'["a JSON array"]',
    ],
    ids=["malformed", "deeply-nested", "not-utf-8", "not-an-object"],
)
def test_a_body_that_is_not_a_json_object_is_a_400(auth: AuthTestEnv, http: httpx2.Client, body: bytes) -> None:
    response = http.post(f"{auth.url}/register", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"


def test_https_redirect_uris_are_accepted(auth: AuthTestEnv, http: httpx2.Client) -> None:
    response = _register(http, auth, redirect_uris=["https://inspector.example/oauth/callback"])
    assert response.status_code == 201


def test_a_registered_client_cannot_use_confidential_grants(auth: AuthTestEnv, http: httpx2.Client) -> None:
    client = _register(http, auth).json()
    response = http.post(auth.token_url, data={"grant_type": "client_credentials", "client_id": client["client_id"]})
    assert response.json()["error"] == "unauthorized_client"


def test_pre_registered_and_registered_clients_coexist(auth: AuthTestEnv, http: httpx2.Client) -> None:
    client = _register(http, auth).json()
    assert client["client_id"] not in ("crm-mcp-agent", "test-native-app")
    token = http.post(
        auth.token_url,
        data={"grant_type": "client_credentials", "resource": auth.crm_api_audience},
        auth=("crm-mcp-agent", auth.agent_secret),
    ).json()
    assert claims_of(token["access_token"])["client_id"] == "crm-mcp-agent"
