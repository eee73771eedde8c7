"""Pattern 3 with a DPoP-bound caller token: crm-mcp cannot forward it, and the tool error says why."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from crm_mcp.downstream import DownstreamError
from crm_mcp.token_cascade_crm_api import caller_authorization
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken


@contextmanager
def _as_caller(claims: dict[str, object]) -> Iterator[None]:
    token = AccessToken(token="header.payload.signature", client_id="c", scopes=["crm:read"], claims=claims)
    reset = auth_context_var.set(AuthenticatedUser(token))
    try:
        yield
    finally:
        auth_context_var.reset(reset)


def test_a_bound_caller_token_is_not_forwarded() -> None:
    with _as_caller({"sub": "alice", "cnf": {"jkt": "x" * 43}}), pytest.raises(DownstreamError) as refused:
        caller_authorization()
    message = str(refused.value)
    assert "DPoP-bound" in message
    assert "CRM_API_AUTH_MODE=exchange" in message
    assert "header.payload.signature" not in message


def test_an_unbound_caller_token_is_forwarded_as_before() -> None:
    with _as_caller({"sub": "alice"}):
        assert caller_authorization() == {"Authorization": "Bearer header.payload.signature"}
