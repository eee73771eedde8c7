"""The registered-claim checks of an access token (RFC 9068 §4, RFC 7519 §4.1), after its signature is verified.

The same checks, in the same order and with the same PyJWT exception classes and messages, as
`jwt.decode(..., audience=..., issuer=..., leeway=..., options={"require": [...]})`, which the
validator used before it parsed tokens itself (oauth_tokens.compact_jws says why). One difference
is deliberate: a time claim must be a JSON number; PyJWT also took a numeric string.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection
from typing import Any, Final

from jwt.exceptions import (
    DecodeError,
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAudienceError,
    InvalidIssuedAtError,
    InvalidIssuerError,
    InvalidJTIError,
    InvalidSubjectError,
    MissingRequiredClaimError,
)

__all__ = ["REQUIRED_CLAIMS", "check_claims"]

REQUIRED_CLAIMS: Final = ("iss", "aud", "exp", "iat", "sub")


def _numeric_date(claims: dict[str, Any], name: str) -> float | None:
    """The claim as seconds since the epoch; None if absent. A finite number (not a bool), else an error."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        if name == "iat":
            raise InvalidIssuedAtError("Issued At claim (iat) must be an integer.")
        label = {"exp": "Expiration Time claim (exp)", "nbf": "Not Before claim (nbf)"}[name]
        raise DecodeError(f"{label} must be an integer.")
    return float(value)


def check_claims(
    claims: dict[str, Any],
    *,
    issuers: Collection[str],
    audiences: Collection[str],
    leeway_seconds: float,
    now: float | None = None,
) -> None:
    """Raise PyJWT's error for the first claim that fails: required, iat, nbf, exp, iss, aud, sub, jti."""
    for name in REQUIRED_CLAIMS:
        if claims.get(name) is None:
            raise MissingRequiredClaimError(name)
    now = time.time() if now is None else now
    issued_at, not_before, expires_at = (_numeric_date(claims, name) for name in ("iat", "nbf", "exp"))
    if issued_at is not None and issued_at > now + leeway_seconds:
        raise ImmatureSignatureError("The token is not yet valid (iat)")
    if not_before is not None and not_before > now + leeway_seconds:
        raise ImmatureSignatureError("The token is not yet valid (nbf)")
    if expires_at is not None and expires_at <= now - leeway_seconds:
        raise ExpiredSignatureError("Signature has expired")
    issuer = claims["iss"]
    if not isinstance(issuer, str):
        raise InvalidIssuerError("Payload Issuer (iss) must be a string")
    if issuer not in issuers:
        raise InvalidIssuerError("Invalid issuer")
    audience = claims["aud"]
    token_audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(token_audiences, list) or not all(isinstance(item, str) for item in token_audiences):
        raise InvalidAudienceError("Invalid claim format in token")
    if not token_audiences:
        raise MissingRequiredClaimError("aud")
    if not any(item in audiences for item in token_audiences):
        raise InvalidAudienceError("Audience doesn't match")
    if not isinstance(claims["sub"], str):
        raise InvalidSubjectError("Subject must be a string")
    if "jti" in claims and not isinstance(claims["jti"], str):
        raise InvalidJTIError("JWT ID must be a string")
