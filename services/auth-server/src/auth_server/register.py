"""Dynamic client registration (RFC 7591): public PKCE clients with https or loopback redirect URIs."""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from auth_server.clients import Client
from auth_server.config_sections import DYNAMIC_CLIENT_ID_PREFIX, GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN
from auth_server.errors import NO_STORE_HEADERS, OAuthError
from auth_server.limits import client_address, read_body
from auth_server.policy import parse_scope
from auth_server.state import AuthServer, server_of
from auth_server.uris import check_redirect_uri

logger = logging.getLogger(__name__)
router = APIRouter()

_MAX_REDIRECT_URIS = 10


def _metadata_error(description: str) -> OAuthError:
    return OAuthError("invalid_client_metadata", description)


def _string_list(metadata: dict[str, Any], name: str, default: list[str]) -> list[str]:
    value = metadata.get(name, default)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _metadata_error(f"{name} must be an array of strings")
    return value


def _new_client(server: AuthServer, metadata: dict[str, Any]) -> Client:
    """Check the requested metadata against the registration policy; the client the server will register."""
    policy = server.config.registration
    redirect_uris = _string_list(metadata, "redirect_uris", [])
    if not redirect_uris or len(redirect_uris) > _MAX_REDIRECT_URIS:
        raise OAuthError("invalid_redirect_uri", f"Register 1 to {_MAX_REDIRECT_URIS} redirect_uris")
    for uri in redirect_uris:
        try:
            check_redirect_uri(uri)
        except ValueError as problem:
            raise OAuthError("invalid_redirect_uri", str(problem)) from None
    # Registered clients are always public. RFC 7591 §3.2.1 lets the server replace a requested
    # token_endpoint_auth_method: a client asking for client_secret_post (as the MCP SDK's example
    # client does) is registered as "none", which the response states and PKCE makes safe.
    if not isinstance(metadata.get("token_endpoint_auth_method", "none"), str):
        raise _metadata_error("token_endpoint_auth_method must be a string")
    grant_types = _string_list(metadata, "grant_types", [GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN])
    refused_grants = set(grant_types) - set(policy.grant_types)
    if refused_grants or GRANT_AUTHORIZATION_CODE not in grant_types:
        raise _metadata_error(f"grant_types may only be {', '.join(policy.grant_types)}")
    if set(_string_list(metadata, "response_types", ["code"])) != {"code"}:
        raise _metadata_error("response_types must be [code]")
    allowed_scopes = server.config.registration_scopes()
    requested_scope = metadata.get("scope")
    if requested_scope is not None and not isinstance(requested_scope, str):
        raise _metadata_error("scope must be a string")
    try:
        requested = parse_scope(requested_scope)
    except OAuthError:
        raise _metadata_error("scope is malformed") from None
    # A registration may list fewer scopes than the policy allows; scopes outside it are refused.
    if requested is not None and not set(requested) <= set(allowed_scopes):
        raise _metadata_error("scope includes scopes this server does not grant to registered clients")
    scopes = tuple(scope for scope in allowed_scopes if requested is None or scope in requested)
    name = metadata.get("client_name")
    client_id = f"{DYNAMIC_CLIENT_ID_PREFIX}{secrets.token_urlsafe(16)}"
    return Client(
        client_id=client_id,
        name=name[:100] if isinstance(name, str) and name.strip() else client_id,
        grant_types=frozenset(grant_types),
        resources=policy.resources,
        scopes=scopes,
        redirect_uris=tuple(redirect_uris),
        dynamically_registered=True,
    )


@router.post("/register", status_code=201)
async def register(request: Request) -> JSONResponse:
    server = server_of(request)
    if not server.config.registration.enabled:
        raise OAuthError("access_denied", "Dynamic client registration is disabled", status_code=403)
    await server.registration_rate.check(client_address(request))
    body = await read_body(request)
    try:
        metadata = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # deep nesting fits in 16 KiB
        raise _metadata_error("The body must be a JSON object") from None
    if not isinstance(metadata, dict):
        raise _metadata_error("The body must be a JSON object")
    client = _new_client(server, metadata)
    await server.clients.register(client, address=client_address(request))
    logger.info("Registered public client %s named %r", client.client_id, client.name)
    response: dict[str, Any] = {
        "client_id": client.client_id,
        "client_id_issued_at": int(time.time()),
        "client_name": client.name,
        "redirect_uris": list(client.redirect_uris),
        "grant_types": sorted(client.grant_types),
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": " ".join(client.scopes),
    }
    # Echo the informational metadata the client sent (RFC 7591 §3.2.1), limited to plain strings.
    for field in ("client_uri", "logo_uri", "software_id", "software_version", "application_type"):
        if isinstance(metadata.get(field), str):
            response[field] = metadata[field]
    return JSONResponse(response, status_code=201, headers=NO_STORE_HEADERS)
