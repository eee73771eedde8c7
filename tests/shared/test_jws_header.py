"""unverified_header: only the first segment is read, and anything but a base64url JSON object is a 401."""

from __future__ import annotations

import base64
import json

import pytest
from oauth_tokens import InvalidTokenError
from oauth_tokens.jws_header import unverified_header


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_the_header_object_is_returned_without_reading_the_rest() -> None:
    header = {"alg": "RS256", "kid": "k1", "typ": "at+jwt"}
    # The payload and signature are not base64url at all: only jwt.decode, later, looks at them.
    assert unverified_header(f"{_segment(json.dumps(header).encode())}.!!.??") == header


def test_trailing_padding_is_tolerated_as_pyjwt_does() -> None:
    encoded = base64.urlsafe_b64encode(b'{"alg": "RS256"}').decode()
    assert encoded.endswith("=")
    assert unverified_header(f"{encoded}.e30.sig") == {"alg": "RS256"}


@pytest.mark.parametrize(
    "segment",
    [
        "",  # nothing
        "eyJhbGciOiJSUzI1NiJ9+",  # '+' is base64, not base64url
        "e" * 5,  # a length no base64 has
        _segment(b"not json"),
        _segment(b'["a", "list"]'),
        _segment(b"\xff\xfe"),  # not UTF-8
        _segment(b"[" * 100_000),  # JSON nested past the recursion limit
    ],
)
def test_anything_but_a_json_object_is_an_invalid_token(segment: str) -> None:
    with pytest.raises(InvalidTokenError, match="Malformed token header"):
        unverified_header(f"{segment}.e30.sig")
