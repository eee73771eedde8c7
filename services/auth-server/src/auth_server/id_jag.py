"""Pattern 5, the IdP half: issue an ID-JAG (Identity Assertion JWT Authorization Grant, SEP-990,
draft-ietf-oauth-identity-assertion-authz-grant) by RFC 8693 token exchange.

A client that holds a user's access token from this server asks, with
`requested_token_type=urn:ietf:params:oauth:token-type:id-jag`, for an assertion it can present at ANOTHER
authorization server (`audience`, that server's issuer) for one of its resources (`resource`). The subject
token is the user's access token (subject_token_type access_token), checked as for any exchange
(`exchangeable_subject`): this server issues no OIDC ID tokens, and the client acting for the user (crm-mcp)
holds the user's access token, not an ID token. Admin policy (`[[id_jag.audiences]]` in the config) decides
which clients get ID-JAGs for which audience, resources and scopes, and names the client_id each client has
there; anything else is an OAuth error.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import jwt

from auth_server.clients import Client
from auth_server.config_sections import IdJagAudience
from auth_server.errors import OAuthError
from auth_server.keys import SIGNING_ALGORITHM
from auth_server.policy import exchangeable_subject, parse_scope
from auth_server.uris import same_resource

if TYPE_CHECKING:
    from auth_server.state import AuthServer
    from auth_server.token import TokenRequest

logger = logging.getLogger(__name__)

ID_JAG_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id-jag"  # noqa: S105 - a token type name
ID_JAG_TYP = "oauth-id-jag+jwt"  # the JOSE `typ` that tells an ID-JAG from every other JWT


def _audience(server: AuthServer, client: Client, request: TokenRequest) -> IdJagAudience:
    """The one configured audience the request names, if the admin policy lets this client have it."""
    if len(request.audiences) != 1:
        raise OAuthError("invalid_request", "Name exactly one audience: the authorization server's issuer")
    wanted = request.audiences[0]
    audience = next((a for a in server.config.id_jag.audiences if same_resource(a.issuer, wanted)), None)
    if audience is None:
        raise OAuthError("invalid_target", "This identity provider issues no ID-JAGs for that audience")
    if client.client_id not in audience.clients:
        logger.info("ID-JAG for %s refused: client %s is not allowed by policy", audience.issuer, client.client_id)
        raise OAuthError("invalid_target", "Policy does not allow this client ID-JAGs for that audience")
    return audience


def _resource(audience: IdJagAudience, request: TokenRequest) -> str:
    if len(request.resources) > 1:
        raise OAuthError("invalid_target", "Request an ID-JAG for one resource at a time")
    if not request.resources:
        if len(audience.resources) == 1:
            return audience.resources[0]
        raise OAuthError("invalid_target", "The resource parameter is required for this audience")
    resource = next((r for r in audience.resources if same_resource(r, request.resources[0])), None)
    if resource is None:
        raise OAuthError("invalid_target", "Policy does not allow ID-JAGs for that resource")
    return resource


def _scopes(audience: IdJagAudience, request: TokenRequest) -> tuple[str, ...]:
    requested = parse_scope(request.get("scope"))
    if requested is None:
        return audience.scopes
    refused = [scope for scope in requested if scope not in audience.scopes]
    if refused:
        raise OAuthError("invalid_scope", f"Policy does not allow ID-JAGs with scope: {' '.join(refused)}")
    return requested


def issue_id_jag(server: AuthServer, client: Client, request: TokenRequest) -> dict[str, Any]:
    """The token-exchange answer carrying a signed ID-JAG (`token_type` N_A: it is a grant, not a token)."""
    subject = exchangeable_subject(server.config, server.access_tokens, client, request.require("subject_token"))
    audience = _audience(server, client, request)
    resource = _resource(audience, request)
    scopes = _scopes(audience, request)
    now = int(time.time())
    # Never outlives the user's token it was exchanged for.
    expires_at = min(now + server.config.id_jag.lifetime_seconds, int(subject["exp"]))
    claims = {
        "iss": server.issuer,
        "sub": str(subject["sub"]),
        "aud": audience.issuer,
        "client_id": audience.clients[client.client_id],  # the client's id at the audience (SEP-990 §6.1)
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": expires_at,
        "resource": resource,
        "scope": " ".join(scopes),
    }
    key = server.keystore.signing_key()
    assertion = jwt.encode(
        claims, key.private_key, algorithm=SIGNING_ALGORITHM, headers={"kid": key.kid, "typ": ID_JAG_TYP}
    )
    logger.info(
        "Issued ID-JAG: client=%s sub=%s aud=%s resource=%s", client.client_id, claims["sub"], audience.issuer, resource
    )
    return {
        "access_token": assertion,
        "issued_token_type": ID_JAG_TOKEN_TYPE,
        "token_type": "N_A",  # RFC 8693 §2.2.1: not an access token
        "expires_in": max(expires_at - now, 0),
        "scope": " ".join(scopes),
    }
