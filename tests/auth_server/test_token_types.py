"""Every access token the auth-server issues is typed at+jwt (RFC 9068 §2.1), whatever the grant.

The services accept only that type by default, so a grant issuing anything else would break them.
"""

from __future__ import annotations

import pytest
from authlib.integrations.requests_client import OAuth2Session

from tests.auth_server.conftest import AuthTestEnv
from tests.auth_server.flows import native_app, user_tokens
from tests.auth_server.test_token_exchange import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE
from tests.auth_server.tokens import header_of, validate


def _issued_tokens(auth: AuthTestEnv) -> dict[str, tuple[str, str]]:
    """grant -> (access token, its audience), one of each kind."""
    code = user_tokens(auth, "alice", scope="crm:read tickets:read")
    refreshed = native_app().refresh_token(auth.token_url, refresh_token=code["refresh_token"])
    agent = OAuth2Session("crm-mcp-agent", auth.agent_secret)
    machine = agent.fetch_token(
        auth.token_url, grant_type="client_credentials", resource=auth.tickets_mcp_resource, scope="tickets:read"
    )
    exchanged = agent.fetch_token(
        auth.token_url,
        grant_type=TOKEN_EXCHANGE,
        subject_token=code["access_token"],
        subject_token_type=ACCESS_TOKEN_TYPE,
        resource=auth.tickets_mcp_resource,
    )
    return {
        "authorization_code": (code["access_token"], auth.crm_mcp_resource),
        "refresh_token": (refreshed["access_token"], auth.crm_mcp_resource),
        "client_credentials": (machine["access_token"], auth.tickets_mcp_resource),
        "token_exchange": (exchanged["access_token"], auth.tickets_mcp_resource),
    }


@pytest.mark.anyio
async def test_every_grant_issues_at_jwt_tokens_the_strict_validator_accepts(auth: AuthTestEnv) -> None:
    issued = _issued_tokens(auth)
    assert {grant: header_of(token)["typ"] for grant, (token, _) in issued.items()} == dict.fromkeys(issued, "at+jwt")
    for token, audience in issued.values():
        assert (await validate(auth, token, audience)).issuer == auth.url
