"""Read a compact JWS's protected header without touching its payload or signature.

The validator needs `alg` and `kid` before it can pick a key. `jwt.get_unverified_header` decodes
all three segments (with a per-character alphabet check each) only to return the header, and
`jwt.decode` then decodes them all again: on a first-seen token that was a third of the time the
validator spent outside the signature check. Here only the first segment is decoded; `jwt.decode`
still parses the whole token with all of PyJWT's checks afterwards, so nothing is checked less.
"""

from __future__ import annotations

import binascii
import json
import re
from base64 import urlsafe_b64decode
from typing import Any

from oauth_tokens.errors import InvalidTokenError

__all__ = ["unverified_header"]

# base64url without padding (RFC 7515 §2), tolerating the trailing '=' some issuers add, as PyJWT does.
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_JSON = json.JSONDecoder()


def unverified_header(token: str) -> dict[str, Any]:
    """The JSON object in `token`'s first segment; InvalidTokenError if it is not one. Nothing is verified."""
    segment = token.partition(".")[0]
    if _SEGMENT.fullmatch(segment) is None:
        raise InvalidTokenError("Malformed token header: not base64url")
    stripped = segment.rstrip("=")
    if len(stripped) % 4 == 1:
        raise InvalidTokenError("Malformed token header: bad base64url length")
    try:
        header = _JSON.decode(urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4)).decode())
    except (ValueError, binascii.Error, RecursionError) as error:
        raise InvalidTokenError(f"Malformed token header: {type(error).__name__}") from error
    if not isinstance(header, dict):
        raise InvalidTokenError("Malformed token header: not a JSON object")
    return header
