"""Parse a compact JWS once and verify it with a key already resolved: each segment is decoded one time.

Why not `jwt.decode`: the validator must read the header (alg, kid) before it can pick a key, and
`jwt.decode` then decodes all three segments again, checking the base64url alphabet one character
at a time in Python. On a first-seen token that parsing cost more than the RSA check itself. Here
each segment is checked with one regular expression and decoded once; the signature is verified
by the PyJWT algorithm of the key the validator resolved (`PyJWK.Algorithm`, the same call
`jwt.decode` makes). The claims are checked afterwards by oauth_tokens.claims.

As strict as PyJWT: base64url only (at most two trailing '=', and only on a length that is a
multiple of four), canonical (a segment whose unused trailing bits are set is refused, so one
signature has one spelling), a JSON object for header and payload, `crit` extensions refused (none
is understood, RFC 7515 §4.1.11) and the unencoded payload option (RFC 7797 `b64`) refused.
The payload is decoded only after its signature has been verified.
"""

from __future__ import annotations

import json
import re
from base64 import urlsafe_b64decode
from dataclasses import dataclass
from typing import Any

from jwt import PyJWK
from jwt.exceptions import InvalidKeyError, InvalidSignatureError

from oauth_tokens.errors import InvalidTokenError

__all__ = ["CompactJWS", "parse_compact_jws", "verify_signature"]

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
# The characters a canonical segment may end with, by its length mod 4: the unused low bits must be 0.
_CANONICAL_LAST = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}
_JSON = json.JSONDecoder()


def _decode_segment(segment: str, name: str) -> bytes:
    stripped = segment.rstrip("=")
    padding = len(segment) - len(stripped)
    if (
        padding > 2
        or (padding and len(segment) % 4)
        or len(stripped) % 4 == 1
        or _BASE64URL.fullmatch(stripped) is None
    ):
        raise InvalidTokenError(f"Malformed token {name}: not base64url")
    canonical_last = _CANONICAL_LAST.get(len(stripped) % 4)
    if canonical_last is not None and stripped[-1] not in canonical_last:
        raise InvalidTokenError(f"Malformed token {name}: not canonical base64url")
    # Cannot fail: the alphabet and the length were checked above.
    return urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))


def _json_object(data: bytes, name: str) -> dict[str, Any]:
    try:
        value = _JSON.decode(data.decode())
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise InvalidTokenError(f"Malformed token {name}: {type(error).__name__}") from error
    if not isinstance(value, dict):
        raise InvalidTokenError(f"Malformed token {name}: not a JSON object")
    return value


@dataclass(frozen=True, slots=True)
class CompactJWS:
    """A compact JWS split and decoded, nothing verified yet: header, signing input, payload segment, signature."""

    header: dict[str, Any]
    signing_input: bytes
    payload_segment: str
    signature: bytes

    def payload(self) -> dict[str, Any]:
        """The payload's JSON object; InvalidTokenError if it is not one. Call it after `verify_signature`."""
        return _json_object(_decode_segment(self.payload_segment, "payload"), "payload")


def parse_compact_jws(token: str) -> CompactJWS:
    """`token` (ASCII, three segments: the validator checks both first) split and decoded; InvalidTokenError if not."""
    header_segment, payload_segment, signature_segment = token.split(".")
    header = _json_object(_decode_segment(header_segment, "header"), "header")
    if "crit" in header:
        raise InvalidTokenError("Token header has critical extensions, none of which is understood")
    if header.get("b64", True) is not True:
        raise InvalidTokenError("Token header asks for an unencoded payload (b64), never used for access tokens")
    if _BASE64URL.fullmatch(payload_segment.rstrip("=")) is None:
        raise InvalidTokenError("Malformed token payload: not base64url")
    return CompactJWS(
        header=header,
        signing_input=token.rpartition(".")[0].encode(),
        payload_segment=payload_segment,
        signature=_decode_segment(signature_segment, "signature"),
    )


def verify_signature(jws: CompactJWS, key: PyJWK) -> None:
    """Verify `jws`'s signature with `key` (bound to the token's alg); PyJWT's InvalidKeyError or InvalidSignatureError.

    A key below the algorithm's minimum size (RSA under 2048 bits) is refused, as with PyJWT's
    `enforce_minimum_key_length`.
    """
    algorithm = key.Algorithm
    too_weak = algorithm.check_key_length(key.key)
    if too_weak:
        raise InvalidKeyError(too_weak)
    if not algorithm.verify(jws.signing_input, key.key, jws.signature):
        raise InvalidSignatureError("Signature verification failed")
