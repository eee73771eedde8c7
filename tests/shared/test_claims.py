"""check_claims: the registered-claim checks the validator runs after the signature, each with PyJWT's error class."""

from __future__ import annotations

from typing import Any

import pytest
from jwt.exceptions import PyJWTError
from oauth_tokens.claims import check_claims

NOW = 1_800_000_000
ISSUER = "https://issuer.example"
AUDIENCE = "https://api.example"


def _claims(**overrides: Any) -> dict[str, Any]:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": NOW - 60, "exp": NOW + 300}
    return {name: value for name, value in {**claims, **overrides}.items() if value is not ...}


def _check(claims: dict[str, Any]) -> None:
    check_claims(claims, issuers=(ISSUER,), audiences=(AUDIENCE,), leeway_seconds=30, now=NOW)


@pytest.mark.parametrize(
    "claims",
    [
        _claims(),
        _claims(exp=NOW - 10),  # expired, within the leeway
        _claims(nbf=NOW + 10, iat=NOW + 10),  # not yet valid, within the leeway
        _claims(aud=["other", AUDIENCE]),
        _claims(exp=NOW + 300.5, jti="id-1"),
    ],
)
def test_valid_claims_pass(claims: dict[str, Any]) -> None:
    _check(claims)


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        (_claims(sub=...), "MissingRequiredClaimError"),
        (_claims(iat=None), "MissingRequiredClaimError"),
        (_claims(exp=NOW - 31), "ExpiredSignatureError"),
        (_claims(nbf=NOW + 31), "ImmatureSignatureError"),
        (_claims(iat=NOW + 31), "ImmatureSignatureError"),
        (_claims(exp=str(NOW + 300)), "DecodeError"),  # a numeric string: PyJWT took it, RFC 7519 says number
        (_claims(exp=True), "DecodeError"),
        (_claims(nbf="soon"), "DecodeError"),
        (_claims(iat=float("nan")), "InvalidIssuedAtError"),
        (_claims(iss=ISSUER + "/"), "InvalidIssuerError"),
        (_claims(iss=[ISSUER]), "InvalidIssuerError"),
        (_claims(aud="https://api.example.evil"), "InvalidAudienceError"),
        (_claims(aud=[AUDIENCE, 7]), "InvalidAudienceError"),
        (_claims(aud={"aud": AUDIENCE}), "InvalidAudienceError"),
        (_claims(aud=[]), "MissingRequiredClaimError"),
        (_claims(sub=42), "InvalidSubjectError"),
        (_claims(jti=7), "InvalidJTIError"),
    ],
)
def test_each_failing_claim_raises_pyjwts_error(claims: dict[str, Any], error: str) -> None:
    with pytest.raises(PyJWTError) as refused:
        _check(claims)
    assert type(refused.value).__name__ == error
