"""Complete OAuth flows driven by Authlib's client (third-party code) and the headless browser."""

from __future__ import annotations

from typing import Any

from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from tests.auth_server.browser import Browser
from tests.auth_server.conftest import NATIVE_REDIRECT, AuthTestEnv


def native_app(scope: str | None = None) -> OAuth2Session:
    """Authlib session for the pre-registered public client (PKCE S256, no secret)."""
    return OAuth2Session(
        "test-native-app",
        redirect_uri=NATIVE_REDIRECT,
        scope=scope,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )


def authorize_url(auth: AuthTestEnv, session: OAuth2Session, verifier: str, **params: str) -> tuple[str, str]:
    """(authorization URL, state) for the crm-mcp resource unless `params` says otherwise."""
    params.setdefault("resource", auth.crm_mcp_resource)
    url, state = session.create_authorization_url(f"{auth.url}/authorize", code_verifier=verifier, **params)
    return str(url), str(state)


def code_for(
    auth: AuthTestEnv, username: str = "alice", scope: str | None = None, **params: str
) -> tuple[OAuth2Session, str, str, str]:
    """Sign in and approve; returns (session, callback URL, code verifier, state)."""
    session = native_app(scope)
    verifier = generate_token(64)
    url, state = authorize_url(auth, session, verifier, **params)
    password = {"alice": auth.alice_password, "bob": auth.bob_password}[username]
    browser = Browser()
    try:
        callback = browser.authorize(url, username, password)
    finally:
        browser.close()
    return session, callback, verifier, state


def user_tokens(auth: AuthTestEnv, username: str = "alice", scope: str | None = None) -> dict[str, Any]:
    """Access + refresh token for `username` via the authorization code flow with PKCE."""
    session, callback, verifier, state = code_for(auth, username, scope)
    token = session.fetch_token(
        auth.token_url,
        authorization_response=callback,
        code_verifier=verifier,
        state=state,  # Authlib checks the returned state against it
        resource=auth.crm_mcp_resource,
    )
    return dict(token)
