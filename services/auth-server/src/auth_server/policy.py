"""Which resource (RFC 8707) and scopes a request gets: exactly what was asked, if the client may have it."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from auth_server.clients import Client
from auth_server.config import AuthServerConfig
from auth_server.errors import OAuthError
from auth_server.tokens import AccessTokenIssuer
from auth_server.uris import check_resource_indicator, same_resource

logger = logging.getLogger(__name__)

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def audiences_of(config: AuthServerConfig, resource_name: str) -> tuple[str, ...]:
    """The `aud` of a token for the resource: its identifier, then the audiences in its trust boundary."""
    resource = config.resources[resource_name]
    return (resource.identifier, *resource.extra_audiences)


def resource_by_indicator(config: AuthServerConfig, names: Iterable[str], indicator: str) -> str | None:
    """The name of the resource among `names` whose identifier is `indicator` (or whose name it is)."""
    for name in names:
        if same_resource(config.resources[name].identifier, indicator):
            return name
    return None


def select_resource(config: AuthServerConfig, client: Client, requested: Sequence[str]) -> str:
    """The one resource this request is for; invalid_target if it is not one the client is registered for.

    Without a `resource` parameter: the client's only resource, if it has exactly one.
    """
    if len(requested) > 1:
        raise OAuthError("invalid_target", "Request a token for one resource at a time")
    if not requested:
        if len(client.resources) == 1:
            return client.resources[0]
        raise OAuthError("invalid_target", "The resource parameter is required for this client")
    try:
        check_resource_indicator(requested[0])
    except ValueError:
        raise OAuthError("invalid_target", "The resource must be an absolute URI without a fragment") from None
    name = resource_by_indicator(config, client.resources, requested[0])
    if name is None:
        raise OAuthError("invalid_target", "The client is not allowed tokens for the requested resource")
    return name


def allowed_scopes(config: AuthServerConfig, client: Client, resource_name: str) -> tuple[str, ...]:
    """Scopes the client may hold for the resource: the resource's scopes the client is registered for."""
    return tuple(scope for scope in config.resources[resource_name].scopes if scope in client.scopes)


def parse_scope(scope: str | None) -> tuple[str, ...] | None:
    """The scope parameter as a tuple (None if absent); invalid_scope if it is malformed."""
    if scope is None:
        return None
    tokens = tuple(dict.fromkeys(scope.split(" ")))
    if not scope or not all(_SCOPE_TOKEN.fullmatch(token) for token in tokens):
        raise OAuthError("invalid_scope", "The scope parameter is malformed")
    return tokens


def select_scopes(requested: str | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """Exactly the requested scopes if all are allowed; every allowed scope if none were requested.

    Asking for a scope outside `allowed` is invalid_scope: never silently narrowed or widened.
    """
    tokens = parse_scope(requested)
    if tokens is None:
        if not allowed:
            raise OAuthError("invalid_scope", "No scope is available to this client for this resource")
        return allowed
    refused = [token for token in tokens if token not in allowed]
    if refused:
        raise OAuthError("invalid_scope", f"Scope not allowed for this client and resource: {' '.join(refused)}")
    return tokens


def exchangeable_subject(
    config: AuthServerConfig, access_tokens: AccessTokenIssuer, client: Client, subject_token: str
) -> dict[str, Any]:
    """The claims of a user's access token `client` may exchange (RFC 8693, and SEP-990's ID-JAG request).

    RFC 8693 MUST: an unacceptable subject token is invalid_request. Acceptable here means this server
    signed it, it is unexpired, and it was issued for a resource this client runs as
    (`exchange_subject_resources`), so a client cannot exchange tokens that were never sent to it.
    """
    try:
        subject = access_tokens.verify_own(subject_token)
    except ValueError as problem:
        logger.info("Token exchange by %s refused: subject token %s", client.client_id, problem)
        raise OAuthError("invalid_request", "The subject_token is invalid") from None
    subject_audiences = subject["aud"] if isinstance(subject["aud"], list) else [subject["aud"]]
    if not any(
        resource_by_indicator(config, client.exchange_subject_resources, audience) for audience in subject_audiences
    ):
        raise OAuthError("invalid_request", "This client may not exchange tokens issued for that audience")
    return subject
