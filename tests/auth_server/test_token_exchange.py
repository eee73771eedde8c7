"""RFC 8693 token exchange through Authlib: crm-mcp-agent exchanges a user's crm-mcp token for a token
for another audience, with `act` naming it; every refusal the RFC and the policy call for."""

from __future__ import annotations

import time
from typing import Any

import httpx2
import jwt
import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.auth_server.conftest import AuthTestEnv
from tests.auth_server.flows import user_tokens
from tests.auth_server.tokens import claims_of, validate

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


@pytest.fixture(scope="module")
def alice_token(auth: AuthTestEnv) -> str:
    """A user token for crm-mcp, as crm-mcp receives it from an MCP client."""
    return str(user_tokens(auth, "alice", scope="crm:read tickets:read tickets:write")["access_token"])


def _exchange(auth: AuthTestEnv, subject_token: str, **params: str) -> dict[str, Any]:
    session = OAuth2Session("crm-mcp-agent", auth.agent_secret)
    token = session.fetch_token(
        auth.token_url,
        grant_type=TOKEN_EXCHANGE,
        subject_token=subject_token,
        subject_token_type=ACCESS_TOKEN_TYPE,
        **params,
    )
    return dict(token)


@pytest.mark.anyio
async def test_authlib_token_exchange_for_tickets_mcp(auth: AuthTestEnv, alice_token: str) -> None:
    exchanged = _exchange(auth, alice_token, resource=auth.tickets_mcp_resource)

    assert exchanged["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert exchanged["token_type"].lower() == "bearer"
    assert "refresh_token" not in exchanged
    # Default scope: what the subject token carries that the agent may hold for tickets-mcp.
    assert exchanged["scope"] == "tickets:read tickets:write"
    claims = claims_of(exchanged["access_token"])
    assert claims["sub"] == "alice"
    assert claims["act"] == {"sub": "crm-mcp-agent"}
    assert claims["client_id"] == "crm-mcp-agent"
    assert claims["aud"] == auth.tickets_mcp_resource  # no crm-api audience on a tickets-mcp token
    assert claims["exp"] <= claims_of(alice_token)["exp"]  # never outlives the subject token
    principal = await validate(auth, exchanged["access_token"], auth.tickets_mcp_resource, "tickets:read")
    assert principal.subject == "alice"


def test_exchange_for_crm_api_with_an_explicit_scope(auth: AuthTestEnv, alice_token: str) -> None:
    exchanged = _exchange(auth, alice_token, audience="crm-api", scope="crm:read")
    claims = claims_of(exchanged["access_token"])
    assert claims["aud"] == auth.crm_api_audience
    assert claims["scope"] == "crm:read"
    assert claims["act"] == {"sub": "crm-mcp-agent"}


def _error_of(auth: AuthTestEnv, subject_token: str, **params: str) -> str:
    with pytest.raises(OAuthError) as raised:
        _exchange(auth, subject_token, **params)
    return str(raised.value.error)


def test_scopes_the_subject_token_lacks_are_invalid_scope(auth: AuthTestEnv, alice_token: str) -> None:
    # The agent may hold tickets:read, but this token of alice's carries crm:read only: never upgraded.
    token = str(user_tokens(auth, "alice", scope="crm:read")["access_token"])
    assert _error_of(auth, token, resource=auth.tickets_mcp_resource, scope="tickets:read") == "invalid_scope"
    assert _error_of(auth, token, resource=auth.tickets_mcp_resource) == "invalid_scope"
    # Nor a scope the agent may hold on crm-api (crm:write) that this token of alice's does not carry.
    assert _error_of(auth, alice_token, audience="crm-api", scope="crm:write") == "invalid_scope"


def test_an_audience_the_agent_may_not_have_is_invalid_target(auth: AuthTestEnv, alice_token: str) -> None:
    assert _error_of(auth, alice_token, resource=auth.crm_mcp_resource) == "invalid_target"
    assert _error_of(auth, alice_token, resource="https://elsewhere.example/") == "invalid_target"
    assert _error_of(auth, alice_token) == "invalid_target"  # two resources registered: must choose


def test_subject_tokens_not_sent_to_the_agent_are_refused(auth: AuthTestEnv, alice_token: str) -> None:
    # A token whose audience is tickets-mcp (not crm-mcp, which the agent runs as) cannot be exchanged.
    tickets_token = _exchange(auth, alice_token, resource=auth.tickets_mcp_resource)["access_token"]
    assert _error_of(auth, tickets_token, resource=auth.crm_api_audience) == "invalid_request"
    session = OAuth2Session("crm-mcp-agent", auth.agent_secret)
    own = session.fetch_token(auth.token_url, grant_type="client_credentials", resource=auth.crm_api_audience)
    assert _error_of(auth, own["access_token"], resource=auth.tickets_mcp_resource) == "invalid_request"


def test_forged_and_foreign_subject_tokens_are_invalid_request(auth: AuthTestEnv, alice_token: str) -> None:
    claims = claims_of(alice_token)
    stranger_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header = jwt.get_unverified_header(alice_token)
    forged = jwt.encode(claims, stranger_key, algorithm="RS256", headers={"kid": header["kid"], "typ": "at+jwt"})
    assert _error_of(auth, forged, resource=auth.tickets_mcp_resource) == "invalid_request"
    expired_claims = {**claims, "exp": int(time.time()) - 60}
    forged_expired = jwt.encode(expired_claims, stranger_key, algorithm="RS256", headers={"typ": "at+jwt"})
    assert _error_of(auth, forged_expired, resource=auth.tickets_mcp_resource) == "invalid_request"
    assert _error_of(auth, "not-a-token", resource=auth.tickets_mcp_resource) == "invalid_request"


def _raw_exchange(http: httpx2.Client, auth: AuthTestEnv, credentials: tuple[str, str], **data: str) -> Any:
    form = {"grant_type": TOKEN_EXCHANGE, "subject_token_type": ACCESS_TOKEN_TYPE, **data}
    return http.post(auth.token_url, data=form, auth=credentials)


def test_wrong_token_types_are_invalid_request(auth: AuthTestEnv, http: httpx2.Client, alice_token: str) -> None:
    agent = ("crm-mcp-agent", auth.agent_secret)
    refresh_type = "urn:ietf:params:oauth:token-type:refresh_token"
    for data in (
        {"subject_token_type": refresh_type},
        {"requested_token_type": refresh_type},
        {"actor_token": alice_token, "actor_token_type": ACCESS_TOKEN_TYPE},
    ):
        response = _raw_exchange(http, auth, agent, subject_token=alice_token, resource=auth.crm_api_audience, **data)
        assert response.status_code == 400, data
        assert response.json()["error"] == "invalid_request", data


def test_clients_without_the_exchange_grant_are_unauthorized(
    auth: AuthTestEnv, http: httpx2.Client, alice_token: str
) -> None:
    reporting = ("test-reporting-job", auth.reporting_secret)
    response = _raw_exchange(http, auth, reporting, subject_token=alice_token, resource=auth.crm_api_audience)
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    with pytest.raises(OAuthError) as raised:
        OAuth2Session("test-web-app", auth.web_secret).fetch_token(
            auth.token_url,
            grant_type=TOKEN_EXCHANGE,
            subject_token=alice_token,
            subject_token_type=ACCESS_TOKEN_TYPE,
            resource=auth.crm_api_audience,
        )
    assert raised.value.error == "unauthorized_client"
    public = http.post(
        auth.token_url,
        data={
            "grant_type": TOKEN_EXCHANGE,
            "client_id": "test-native-app",
            "subject_token": alice_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
        },
    )
    assert public.json()["error"] == "unauthorized_client"


def test_a_wrong_agent_secret_is_invalid_client(auth: AuthTestEnv, http: httpx2.Client, alice_token: str) -> None:
    response = _raw_exchange(http, auth, ("crm-mcp-agent", "wrong"), subject_token=alice_token)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
