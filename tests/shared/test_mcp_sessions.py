"""The session caps of `oauth_tokens.mcp_sessions` on a real MCP server over HTTP, with real tokens for
several users: a full table ends the largest holder's idle session, never a quiet user's; a user whose
sessions are all busy is refused alone; the settings refuse a per-user cap above the total.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx2
import pytest
from devkit.processes import free_port
from mcp.server.mcpserver import MCPServer
from oauth_tokens import AccessTokenValidator, ValidatorConfig
from oauth_tokens.mcp import JWTTokenVerifier, resource_server_auth, transport_security
from oauth_tokens.mcp_sessions import McpSessionSettings, limit_sessions_per_user
from pydantic import ValidationError

from tests.shared.conftest import Keys
from tests.shared.loopback import LoopbackAuthServer
from tests.shared.test_mcp_adapter import _serve
from tests.shared.test_mcp_hardening import INITIALIZE, MCP_HEADERS
from tests.shared.tokens import claims, mint

pytestmark = pytest.mark.anyio

PING = {"jsonrpc": "2.0", "id": 2, "method": "ping"}


class Users:
    """Bearer headers per user name (the token's `sub`) for the server at `url`."""

    def __init__(self, keys: Keys, issuer: str, url: str) -> None:
        self.keys, self.issuer, self.url = keys, issuer, url

    def headers(self, user: str, session_id: str | None = None) -> dict[str, str]:
        token = mint(self.keys.rsa, claims(self.issuer, aud=self.url, sub=user))
        extra = {"Mcp-Session-Id": session_id, "MCP-Protocol-Version": "2025-11-25"} if session_id else {}
        return {**MCP_HEADERS, "Authorization": f"Bearer {token}", **extra}

    async def open(self, http: httpx2.AsyncClient, user: str) -> httpx2.Response:
        return await http.post(self.url, json=INITIALIZE, headers=self.headers(user))

    async def alive(self, http: httpx2.AsyncClient, user: str, session_id: str) -> bool:
        answer = await http.post(self.url, json=PING, headers=self.headers(user, session_id))
        assert answer.status_code in (200, 404), answer.text
        return answer.status_code == 200


@pytest.fixture
async def users(
    keys: Keys, issuer: str, auth_server: LoopbackAuthServer, http_client: httpx2.AsyncClient
) -> AsyncIterator[Users]:
    """An MCP server capped at 2 sessions per user and 4 in all."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    config = ValidatorConfig(issuers=[issuer], audiences=[url], jwks_url=f"{issuer}/jwks")
    validator = AccessTokenValidator(config, http_client=http_client)
    server = MCPServer(
        "capped", token_verifier=JWTTokenVerifier(validator, url), auth=resource_server_auth(issuer, url)
    )
    settings = McpSessionSettings(mcp_max_sessions=4, mcp_max_sessions_per_user=2)
    app = server.streamable_http_app(transport_security=transport_security(), max_sessions=settings.mcp_max_sessions)
    limit_sessions_per_user(app, server.session_manager, settings)
    async with _serve(app, port):
        yield Users(keys, issuer, url)


async def test_a_full_table_ends_the_largest_holders_idle_session_not_a_quiet_users(users: Users) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        opened = {}
        for user in ("mallory", "mallory", "alice", "bob"):
            answer = await users.open(http, user)
            assert answer.status_code == 200
            opened.setdefault(user, []).append(answer.headers["mcp-session-id"])
        # The table (4) is full; carol's session ends one of mallory's, the user holding the most.
        carol = await users.open(http, "carol")

        assert carol.status_code == 200
        assert await users.alive(http, "alice", opened["alice"][0])
        assert await users.alive(http, "bob", opened["bob"][0])
        assert [await users.alive(http, "mallory", s) for s in opened["mallory"]] == [False, True]


async def test_a_user_whose_sessions_are_all_busy_is_refused_alone(users: Users) -> None:
    async with httpx2.AsyncClient(timeout=10) as http, AsyncExitStack() as streams:
        for _ in range(2):
            session_id = (await users.open(http, "mallory")).headers["mcp-session-id"]
            # An open GET stream keeps a session busy (in flight), so it is not evicted.
            stream = http.stream("GET", users.url, headers=users.headers("mallory", session_id))
            assert (await streams.enter_async_context(stream)).status_code == 200
        refused = await users.open(http, "mallory")
        alice = await users.open(http, "alice")
        await streams.aclose()

    assert refused.status_code == 429
    assert refused.json()["error"]["message"] == "Too many open sessions for this user"
    assert alice.status_code == 200


def test_a_per_user_cap_above_the_total_is_refused_at_start_up() -> None:
    with pytest.raises(ValidationError, match="must not exceed MCP_MAX_SESSIONS"):
        McpSessionSettings(mcp_max_sessions=4, mcp_max_sessions_per_user=5)
