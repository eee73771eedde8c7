"""Test keys and token minting: real RSA/EC keys generated at test time, tokens signed with PyJWT or by hand."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "http://localhost:8003"
OTHER_AUDIENCE = "http://localhost:9999"


@dataclass(frozen=True)
class SigningKeyPair:
    """A private key, its kid, and its public JWK as a JWKS would publish it."""

    kid: str
    algorithm: str
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    def public_jwk(self, **extra: Any) -> dict[str, Any]:
        public_key = self.private_key.public_key()
        if isinstance(public_key, rsa.RSAPublicKey):
            jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(public_key))
        else:
            jwk = json.loads(ECAlgorithm.to_jwk(public_key))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.algorithm, **extra}

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def rsa_key(kid: str, algorithm: str = "RS256") -> SigningKeyPair:
    return SigningKeyPair(kid, algorithm, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str) -> SigningKeyPair:
    return SigningKeyPair(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def claims(issuer: str, **overrides: Any) -> dict[str, Any]:
    """Valid RFC 9068 claims for `issuer`; an override of None removes that claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": issuer,
        "sub": "alice",
        "aud": AUDIENCE,
        "exp": now + 300,
        "iat": now,
        "jti": f"jti-{now}",
        "client_id": "crm-mcp",
        "scope": "crm:read crm:write",
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def mint(
    key: SigningKeyPair,
    payload: dict[str, Any],
    *,
    algorithm: str | None = None,
    kid: str | None = "<key>",
    typ: str | None = "at+jwt",
    **headers: Any,
) -> str:
    """A token signed by `key`; kid defaults to the key's own, None leaves it out."""
    header: dict[str, Any] = dict(headers)
    if kid is not None:
        header["kid"] = key.kid if kid == "<key>" else kid
    if typ is not None:
        header["typ"] = typ
    return jwt.encode(payload, key.private_key, algorithm=algorithm or key.algorithm, headers=header)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWS assembled by hand (for tokens PyJWT refuses to produce)."""
    return f"{b64url_json(header)}.{b64url_json(payload)}.{b64url(signature)}"


def hmac_signed(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """An HS256 token with `secret` as HMAC key (e.g. an RSA public key's PEM: algorithm confusion)."""
    signing_input = f"{b64url_json(header)}.{b64url_json(payload)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def replace_payload(token: str, payload: dict[str, Any]) -> str:
    """`token` with its payload swapped and the original signature kept."""
    header, _, signature = token.split(".")
    return f"{header}.{b64url_json(payload)}.{signature}"


def self_signed_certificate(key: SigningKeyPair) -> str:
    """A base64 DER certificate for `key` (what an x5c header would carry)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key.private_key, hashes.SHA256())
    )
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()


def flip_signature_byte(token: str) -> str:
    """`token` with one signature bit flipped (still valid base64url)."""
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{header}.{payload}.{b64url(bytes(raw))}"


def with_segment(token: str, index: int, segment: str) -> str:
    """`token` with segment `index` (0 header, 1 payload, 2 signature) replaced."""
    parts = token.split(".")
    parts[index] = segment
    return ".".join(parts)
