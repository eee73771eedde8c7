"""Token endpoint: authenticate the client, then one function per grant type (RFC 6749, 7636, 8707, 8693)."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from oauth_tokens.database import DatabaseUnavailableError
from oauth_tokens.metrics import TOKEN_REQUESTS
from oauth_tokens.telemetry import record_auth

from auth_server.clients import Client
from auth_server.codes import check_pkce
from auth_server.config_sections import (
    GRANT_AUTHORIZATION_CODE,
    GRANT_CLIENT_CREDENTIALS,
    GRANT_JWT_BEARER,
    GRANT_REFRESH_TOKEN,
    GRANT_TOKEN_EXCHANGE,
)
from auth_server.dpop import bound_token_type
from auth_server.errors import NO_STORE_HEADERS, OAuthError
from auth_server.id_jag import ID_JAG_TOKEN_TYPE, issue_id_jag
from auth_server.jwt_bearer import jwt_bearer_grant
from auth_server.limits import client_address, read_body
from auth_server.policy import (
    allowed_scopes,
    audiences_of,
    exchangeable_subject,
    parse_scope,
    resource_by_indicator,
    select_resource,
    select_scopes,
)
from auth_server.state import AuthServer, server_of
from auth_server.tokens import IssuedAccessToken

logger = logging.getLogger(__name__)
router = APIRouter()

ACCESS_TOKEN_TYPE_URN = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a type name
_REPEATABLE = frozenset({"resource", "audience"})  # RFC 8707 §2, RFC 8693 §2.1


@dataclass(frozen=True)
class TokenRequest:
    """The form parameters: single-valued ones, plus the repeatable resource/audience lists."""

    params: dict[str, str]
    resources: list[str]
    audiences: list[str]
    dpop_jkt: str | None = None  # the key a valid DPoP proof showed (auth_server.dpop); binds what is issued

    def get(self, name: str) -> str | None:
        return self.params.get(name)

    def require(self, name: str) -> str:
        value = self.params.get(name)
        if value is None:
            raise OAuthError("invalid_request", f"The {name} parameter is required")
        return value


async def read_token_request(request: Request) -> TokenRequest:
    """The form of a token or revocation request (RFC 6749 §3.2, RFC 7009 §2.1)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "The body must be application/x-www-form-urlencoded")
    body = await read_body(request)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "The body is not valid form data") from None
    params: dict[str, str] = {}
    lists: dict[str, list[str]] = {name: [] for name in _REPEATABLE}
    for name, value in pairs:
        if value == "":  # RFC 6749 §3.1: a parameter without a value is treated as omitted
            continue
        if name in _REPEATABLE:
            lists[name].append(value)
        elif name in params:
            raise OAuthError("invalid_request", f"Parameter {name} is repeated")
        else:
            params[name] = value
    return TokenRequest(params, lists["resource"], lists["audience"])


def _response(issued: IssuedAccessToken, **extra: Any) -> dict[str, Any]:
    return {
        "access_token": issued.token,
        "token_type": bound_token_type(issued.jkt),
        "expires_in": issued.expires_in,
        "scope": " ".join(issued.scopes),
        **extra,
    }


async def _authorization_code(server: AuthServer, client: Client, request: TokenRequest) -> dict[str, Any]:
    digest, grant = await server.codes.redeem(request.require("code"), client.client_id)
    redirect_uri = request.get("redirect_uri")
    if (grant.redirect_uri_in_request or redirect_uri is not None) and redirect_uri != grant.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
    check_pkce(request.get("code_verifier"), grant.code_challenge)
    if grant.dpop_jkt is not None and grant.dpop_jkt != request.dpop_jkt:  # RFC 9449 §10
        raise OAuthError("invalid_grant", "The code is bound to the DPoP key named by dpop_jkt: prove that key")
    if len(request.resources) > 1:
        raise OAuthError("invalid_target", "Request a token for one resource at a time")
    if request.resources and resource_by_indicator(server.config, [grant.resource], request.resources[0]) is None:
        raise OAuthError("invalid_target", "The resource was not part of the authorization")
    issued = server.access_tokens.issue(
        subject=grant.subject,
        client_id=client.client_id,
        audiences=audiences_of(server.config, grant.resource),
        scopes=grant.scopes,
        jkt=request.dpop_jkt,
    )
    extra: dict[str, Any] = {}
    if GRANT_REFRESH_TOKEN in client.grant_types:
        expires_at = time.time() + server.config.lifetimes.refresh_token_seconds
        refresh, family_id = await server.refresh_tokens.issue(
            client_id=client.client_id,
            subject=grant.subject,
            resource=grant.resource,
            scopes=grant.scopes,
            expires_at=expires_at,
            jkt=None if client.is_confidential else request.dpop_jkt,
        )
        await server.codes.record_family(digest, family_id, expires_at)
        extra["refresh_token"] = refresh
    _log_issue("authorization_code", client, grant.subject, grant.resource)
    return _response(issued, **extra)


async def _refresh_token(server: AuthServer, client: Client, request: TokenRequest) -> dict[str, Any]:
    presented = request.require("refresh_token")
    record = await server.refresh_tokens.lookup(presented, client.client_id)
    if record.jkt is not None and record.jkt != request.dpop_jkt:  # RFC 9449 §5: a public client's binding
        raise OAuthError("invalid_grant", "The refresh token is bound to a DPoP key: prove that key")
    requested = parse_scope(request.get("scope"))
    scopes = record.scopes if requested is None else requested
    if not set(scopes) <= set(record.scopes):  # RFC 6749 §6: a refresh may narrow, never widen
        raise OAuthError("invalid_scope", "The requested scope exceeds the scope originally granted")
    if len(request.resources) > 1:
        raise OAuthError("invalid_target", "Request a token for one resource at a time")
    if request.resources and resource_by_indicator(server.config, [record.resource], request.resources[0]) is None:
        raise OAuthError("invalid_target", "The resource was not part of the original grant")
    rotated = await server.refresh_tokens.rotate(presented, record, scopes)
    issued = server.access_tokens.issue(
        subject=record.subject,
        client_id=client.client_id,
        audiences=audiences_of(server.config, record.resource),
        scopes=scopes,
        jkt=request.dpop_jkt,
    )
    _log_issue("refresh_token", client, record.subject, record.resource)
    return _response(issued, refresh_token=rotated)


def _client_credentials(server: AuthServer, client: Client, request: TokenRequest) -> dict[str, Any]:
    if not client.is_confidential:
        raise OAuthError("unauthorized_client", "Only confidential clients may use client_credentials")
    resource = select_resource(server.config, client, request.resources)
    scopes = select_scopes(request.get("scope"), allowed_scopes(server.config, client, resource))
    issued = server.access_tokens.issue(
        subject=client.client_id,
        client_id=client.client_id,
        audiences=audiences_of(server.config, resource),
        scopes=scopes,
        jkt=request.dpop_jkt,
    )
    _log_issue("client_credentials", client, client.client_id, resource)
    return _response(issued)


def _token_exchange(server: AuthServer, client: Client, request: TokenRequest) -> dict[str, Any]:
    if request.require("subject_token_type") != ACCESS_TOKEN_TYPE_URN:  # this server issues no ID tokens
        raise OAuthError("invalid_request", f"subject_token_type must be {ACCESS_TOKEN_TYPE_URN}")
    if request.get("requested_token_type") == ID_JAG_TOKEN_TYPE:  # pattern 5: an assertion for another AS
        return issue_id_jag(server, client, request)
    if request.get("requested_token_type") not in (None, ACCESS_TOKEN_TYPE_URN):
        raise OAuthError("invalid_request", f"requested_token_type must be {ACCESS_TOKEN_TYPE_URN}")
    if request.get("actor_token") is not None or request.get("actor_token_type") is not None:
        raise OAuthError("invalid_request", "actor_token is not supported: the client is the actor")
    subject = exchangeable_subject(server.config, server.access_tokens, client, request.require("subject_token"))
    # `audience` may name a resource by its identifier or its config name; `resource` by its identifier.
    names_to_identifiers = {name: server.config.resources[name].identifier for name in client.resources}
    targets = [*request.resources, *(names_to_identifiers.get(value, value) for value in request.audiences)]
    resource = select_resource(server.config, client, list(dict.fromkeys(targets)))
    allowed = allowed_scopes(server.config, client, resource)
    subject_scopes = str(subject.get("scope", "")).split()
    requested = parse_scope(request.get("scope"))
    if requested is None:
        scopes = tuple(scope for scope in allowed if scope in subject_scopes)
        if not scopes:
            raise OAuthError("invalid_scope", "The subject token carries no scope this client may pass on")
    else:
        scopes = select_scopes(request.get("scope"), allowed)
        lacking = [scope for scope in scopes if scope not in subject_scopes]
        if lacking:
            raise OAuthError("invalid_scope", f"The subject token does not carry scope: {' '.join(lacking)}")
    actor: dict[str, Any] = {"sub": client.client_id}
    if isinstance(subject.get("act"), dict):  # RFC 8693 §4.1: earlier actors nest inside the current one
        actor["act"] = subject["act"]
    issued = server.access_tokens.issue(
        subject=str(subject["sub"]),
        client_id=client.client_id,
        audiences=audiences_of(server.config, resource),
        scopes=scopes,
        actor=actor,
        not_after=int(subject["exp"]),
        jkt=request.dpop_jkt,
    )
    _log_issue("token_exchange", client, str(subject["sub"]), resource)
    return _response(issued, issued_token_type=ACCESS_TOKEN_TYPE_URN)


# A handler may be async (jwt-bearer fetches the IdP's keys).
GrantHandler = Callable[[AuthServer, Client, TokenRequest], dict[str, Any] | Awaitable[dict[str, Any]]]
GRANT_HANDLERS: dict[str, GrantHandler] = {
    GRANT_AUTHORIZATION_CODE: _authorization_code,
    GRANT_REFRESH_TOKEN: _refresh_token,
    GRANT_CLIENT_CREDENTIALS: _client_credentials,
    GRANT_TOKEN_EXCHANGE: _token_exchange,
    GRANT_JWT_BEARER: jwt_bearer_grant,
}


def _log_issue(grant: str, client: Client, subject: str, resource: str) -> None:
    logger.info("Issued token: grant=%s client=%s sub=%s resource=%s", grant, client.client_id, subject, resource)


@router.post("/token")
async def token(request: Request) -> JSONResponse:
    """The token endpoint, counting each request by grant type and outcome (ok, or its OAuth error)."""
    try:
        response = await _token(request)
    except OAuthError as error:
        _count(request, error.error)
        raise
    except DatabaseUnavailableError:  # answered 503 temporarily_unavailable by app.py
        _count(request, "temporarily_unavailable")
        raise
    _count(request, "ok")
    return response


def _count(request: Request, outcome: str) -> None:
    grant = getattr(request.state, "grant_type", None)
    grant = grant if grant in GRANT_HANDLERS else "other"  # the label never takes an unchecked value
    TOKEN_REQUESTS.labels("server", grant, outcome).inc()
    record_auth(grant_type=grant, token_outcome=outcome)


async def _token(request: Request) -> JSONResponse:
    server = server_of(request)
    await server.token_rate.check(client_address(request))
    token_request = await read_token_request(request)
    request.state.grant_type = token_request.get("grant_type")
    client = await server.clients.authenticate(
        request.headers.get("authorization"), token_request.params, address=client_address(request)
    )
    grant_type = token_request.require("grant_type")
    token_request = replace(token_request, dpop_jkt=await server.dpop.key_of(request))
    handler = GRANT_HANDLERS.get(grant_type)
    if handler is None:
        raise OAuthError("unsupported_grant_type", "Supported: " + ", ".join(GRANT_HANDLERS))
    if grant_type not in client.grant_types:
        raise OAuthError("unauthorized_client", "This client is not allowed to use this grant type")
    response = handler(server, client, token_request)
    if inspect.isawaitable(response):
        response = await response
    await server.clients.mark_used(client)  # a registration that got a token is no longer at risk of expiry
    return JSONResponse(response, headers=NO_STORE_HEADERS)
