"""Discovery: RFC 8414 authorization server metadata (also at the OIDC well-known path) and the JWKS."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from auth_server.client_auth import ASSERTION_ALGORITHMS
from auth_server.config_sections import GRANT_JWT_BEARER
from auth_server.state import AuthServer, server_of
from auth_server.token import GRANT_HANDLERS

router = APIRouter()

# Short enough that a rotated key reaches validators quickly; they also refetch on an unknown kid.
_JWKS_CACHE = "public, max-age=60"
_METADATA_CACHE = "public, max-age=300"


def authorization_server_metadata(server: AuthServer) -> dict[str, Any]:
    """Every URL is built from the configured issuer, never from the request's Host header, so a service
    reaching this server by an internal name still sees (and validates against) the public issuer."""
    issuer = server.issuer
    metadata: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "revocation_endpoint": f"{issuer}/revoke",
        "jwks_uri": f"{issuer}/jwks",
        "scopes_supported": list(server.config.all_scopes()),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        # jwt-bearer (pattern 5) only where an identity provider is trusted to issue the assertions.
        "grant_types_supported": [
            grant for grant in GRANT_HANDLERS if grant != GRANT_JWT_BEARER or server.config.trusted_identity_providers
        ],
        "token_endpoint_auth_methods_supported": [
            "private_key_jwt",
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        # RFC 9449 §5.1: proofs accepted at the token endpoint (tokens bound with cnf.jkt).
        "dpop_signing_alg_values_supported": server.dpop.algorithms,
    }
    if server.config.registration.enabled:  # deprecated by MCP 2026-07-28 in favour of CIMD, kept for older clients
        metadata["registration_endpoint"] = f"{issuer}/register"
    if server.config.client_metadata_documents.enabled:
        metadata["client_id_metadata_document_supported"] = True
    return metadata


@router.get("/.well-known/oauth-authorization-server")
@router.get("/.well-known/openid-configuration")
async def metadata(request: Request) -> JSONResponse:
    return JSONResponse(authorization_server_metadata(server_of(request)), headers={"Cache-Control": _METADATA_CACHE})


@router.get("/jwks")
async def jwks(request: Request) -> JSONResponse:
    return JSONResponse(server_of(request).keystore.jwks(), headers={"Cache-Control": _JWKS_CACHE})
