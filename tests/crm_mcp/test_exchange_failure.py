"""What a failed token exchange tells the MCP client: one tool error per kind of failure, never a secret.

The failures themselves are produced for real elsewhere (tests/shared/test_token_exchange.py against a
loopback token endpoint, tests/integration/test_token_exchange.py against the real auth-server); this
checks the wording for each OAuth error code, including ones the local auth-server never sends.
"""

from __future__ import annotations

import pytest
from crm_mcp.downstream import DownstreamError
from crm_mcp.token_exchange_crm_api import exchange_failure
from oauth_tokens import TokenEndpointError


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (TokenEndpointError("invalid_grant", "expired", 400), "(invalid_grant: expired). It has probably expired"),
        (TokenEndpointError("invalid_request", "The subject_token is invalid", 400), "sign in again"),
        (TokenEndpointError("invalid_scope", None, 400), "Your sign-in does not allow this at crm-api (invalid_scope)"),
        (
            TokenEndpointError("temporarily_unavailable", "The token endpoint timed out"),
            "Could not reach the authorization server to call crm-api (temporarily_unavailable: The token "
            "endpoint timed out); try again.",
        ),
        (TokenEndpointError("invalid_client", None, 401), "crm-mcp could not exchange your sign-in"),
    ],
)
def test_each_failure_is_a_tool_error_saying_what_to_do(error: TokenEndpointError, says: str) -> None:
    failure = exchange_failure(error)
    assert isinstance(failure, DownstreamError)
    assert says in str(failure)
