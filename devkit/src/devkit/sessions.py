"""MCP sessions as this project's clients open them: the official SDK's `Client` over Streamable HTTP.

- `mcp_session(url, token=…)`: every request carries `Authorization: Bearer <token>`;
  `mcp_session(url, user=…, password=…)`: the user signs in through the real OAuth flow (`oauth_session`);
  `mcp_session(url, auth=…)`: any httpx2 auth (crm-mcp's own client credentials, a DPoP wrapper).
- `oauth_session(url, user, password)`: the SDK's OAuth client (discovery, registration, PKCE login in
  devkit.headless_login), optionally DPoP-bound; yields the session and the tokens it obtained.

Used by `make demo`, the bench and the tests alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from oauth_tokens.dpop_client import DPoPKey, DPoPOverAuth

from devkit.headless_login import MemoryTokenStorage, user_oauth

# What a caller may do to the HTTP client before the session uses it (e.g. oauth_tokens.telemetry.trace_http).
Instrument = Callable[[httpx2.AsyncClient], httpx2.AsyncClient]


@asynccontextmanager
async def mcp_session(
    url: str,
    *,
    token: str | None = None,
    user: str | None = None,
    password: str | None = None,
    scope: str | None = None,
    auth: httpx2.Auth | None = None,
    http_timeout: float = 30.0,
    instrument: Instrument | None = None,
    **client_options: Any,
) -> AsyncIterator[Client]:
    """An initialised MCP session at `url`, authenticated by at most one of `token` (Bearer), `user` (with
    `password`, asking for `scope`: the real OAuth flow) or `auth`; none for an anonymous one.

    `client_options` go to the SDK's `Client` (e.g. `elicitation_callback`, `mode="legacy"`)."""
    if sum(given is not None for given in (token, user, auth)) > 1:
        raise ValueError("mcp_session takes one of token, user or auth")
    if user is not None:
        if password is None:
            raise ValueError("mcp_session(user=…) needs the user's password")
        async with oauth_session(
            url, user, password, scope=scope, http_timeout=http_timeout, instrument=instrument, **client_options
        ) as session:
            yield session.client
        return
    headers = {"Authorization": f"Bearer {token}"} if token is not None else None
    http = httpx2.AsyncClient(auth=auth, headers=headers, timeout=http_timeout)
    async with (
        instrument(http) if instrument else http as http_client,
        Client(streamable_http_client(url, http_client=http_client), **client_options) as client,
    ):
        yield client


@dataclass
class OAuthSession:
    """A signed-in MCP session and the tokens the SDK's OAuth client holds for it (refreshed, stepped up)."""

    client: Client
    storage: MemoryTokenStorage

    @property
    def access_token(self) -> str:
        """The access token the session uses now."""
        if self.storage.tokens is None:
            raise RuntimeError("the OAuth login produced no token")
        return self.storage.tokens.access_token


@asynccontextmanager
async def oauth_session(
    url: str,
    user: str,
    password: str,
    *,
    scope: str | None = None,
    dpop_key: DPoPKey | None = None,
    http_timeout: float = 30.0,
    instrument: Instrument | None = None,
    **client_options: Any,
) -> AsyncIterator[OAuthSession]:
    """`user` signed in to the MCP server at `url` through the real OAuth flow (headless, as a person would),
    asking for `scope` (else all the server advertises); with `dpop_key`, every token is bound to that key."""
    provider, storage = user_oauth(url, user, password, scope=scope)
    auth: httpx2.Auth = provider if dpop_key is None else DPoPOverAuth(provider, dpop_key)
    async with mcp_session(
        url, auth=auth, http_timeout=http_timeout, instrument=instrument, **client_options
    ) as client:
        yield OAuthSession(client, storage)
