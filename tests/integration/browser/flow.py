"""The OAuth side of a browser-based client: its registration, its authorization URL (PKCE S256), its code exchange.

The browser does what a user does (sign in, decide); these helpers do what the client's own code does.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from devkit.topology import Topology


@dataclass(frozen=True)
class BrowserClient:
    """A client registered dynamically (RFC 7591), as MCP Inspector registers itself."""

    client_id: str
    redirect_uri: str


@dataclass(frozen=True)
class Authorization:
    url: str
    state: str
    verifier: str


def register(topology: Topology, redirect_uri: str) -> BrowserClient:
    response = httpx2.post(
        f"{topology.env['AUTH_ISSUER']}/register",
        json={
            "client_name": "Browser test client",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        },
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return BrowserClient(client_id=response.json()["client_id"], redirect_uri=redirect_uri)


def authorization(topology: Topology, client: BrowserClient, scope: str) -> Authorization:
    """A fresh authorization request for crm-mcp: its URL, and the state and PKCE verifier behind it."""
    state, verifier = generate_token(24), generate_token(64)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uri,
            "scope": scope,
            "state": state,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
            "resource": topology.crm_mcp_url,
        }
    )
    return Authorization(url=f"{topology.env['AUTH_ISSUER']}/authorize?{query}", state=state, verifier=verifier)


def query_of(url: str) -> dict[str, str]:
    """The query parameters of the URL the browser was sent back to, one value each."""
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def exchange(topology: Topology, client: BrowserClient, request: Authorization, code: str) -> str:
    """The access token for `code`, as the client's own code would get it (the code is real: this proves it)."""
    response = httpx2.post(
        topology.env["AUTH_TOKEN_URL"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": client.redirect_uri,
            "client_id": client.client_id,
            "code_verifier": request.verifier,
            "resource": topology.crm_mcp_url,
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])
