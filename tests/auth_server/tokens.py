"""Helpers for token assertions shared by the tests: decode without trust, validate with trust."""

from __future__ import annotations

import warnings
from typing import Any

import jwt
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from oauth_tokens import AccessTokenValidator, Principal, ValidatorConfig

from tests.auth_server.conftest import AuthTestEnv


def claims_of(token: str) -> dict[str, Any]:
    """The claims, unverified (for asserting what the server put in; trust comes from `validate`)."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def header_of(token: str) -> dict[str, Any]:
    return dict(jwt.get_unverified_header(token))


async def validate(auth: AuthTestEnv, token: str, audience: str, *scopes: str) -> Principal:
    """Validate with the project's shared validator, discovering the JWKS from the issuer."""
    config = ValidatorConfig(issuers=[auth.issuer], audiences=[audience], discovery_url=auth.url)
    async with AccessTokenValidator(config) as validator:
        return await validator.validate(token, scopes)


class _AuthlibValidator(JWTBearerTokenValidator):  # type: ignore[misc]  # Authlib is untyped
    def __init__(self, issuer: str, resource_server: str, jwks: dict[str, Any]) -> None:
        super().__init__(issuer=issuer, resource_server=resource_server)
        self._jwks = jwks

    def get_jwks(self) -> dict[str, Any]:
        return self._jwks


def validate_with_authlib(auth: AuthTestEnv, token: str, audience: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """Validate as RFC 9068 with Authlib's resource-server validator (third-party code); returns claims."""
    validator = _AuthlibValidator(auth.issuer, audience, jwks)
    with warnings.catch_warnings():  # Authlib 1.9 warns about its own internal JWKS import helper
        warnings.simplefilter("ignore", DeprecationWarning)
        claims = validator.authenticate_token(token)
    validator.validate_token(claims, scopes=None, request=None)
    return dict(claims)
