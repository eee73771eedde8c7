"""parse_compact_jws: canonical base64url segments (padding as PyJWT allows), header and payload JSON objects."""

from __future__ import annotations

import base64
import json

import pytest
from oauth_tokens import InvalidTokenError
from oauth_tokens.compact_jws import parse_compact_jws


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


HEADER = _segment(json.dumps({"alg": "RS256", "kid": "k1", "typ": "at+jwt"}).encode())
PAYLOAD = _segment(b'{"sub": "alice"}')
SIGNATURE = _segment(b"\x01\x02\x03")


def test_segments_are_decoded_once_and_the_payload_on_demand() -> None:
    jws = parse_compact_jws(f"{HEADER}.{PAYLOAD}.{SIGNATURE}")
    assert jws.header == {"alg": "RS256", "kid": "k1", "typ": "at+jwt"}
    assert jws.signing_input == f"{HEADER}.{PAYLOAD}".encode()
    assert jws.signature == b"\x01\x02\x03"
    assert jws.payload() == {"sub": "alice"}


def test_trailing_padding_is_tolerated_as_pyjwt_does() -> None:
    encoded = base64.urlsafe_b64encode(b'{"alg": "RS256"}').decode()
    assert encoded.endswith("=")
    assert parse_compact_jws(f"{encoded}.{PAYLOAD}.{SIGNATURE}").header == {"alg": "RS256"}


@pytest.mark.parametrize(
    "segment",
    [
        "",  # nothing
        "eyJhbGciOiJSUzI1NiJ9+",  # '+' is base64, not base64url
        "e" * 5,  # a length no base64 has
        "e30===",  # more padding than base64 ever has
        _segment(b"{}") + "==",  # padding on a length that is not a multiple of four
        _segment(b"not json"),
        _segment(b'["a", "list"]'),
        _segment(b"\xff\xfe"),  # not UTF-8
        _segment(b"[" * 100_000),  # JSON nested past the recursion limit
    ],
)
def test_anything_but_a_base64url_json_object_header_is_an_invalid_token(segment: str) -> None:
    with pytest.raises(InvalidTokenError, match="Malformed token header"):
        parse_compact_jws(f"{segment}.{PAYLOAD}.{SIGNATURE}")


def test_a_signature_with_its_unused_bits_set_is_refused() -> None:
    # "AQ" and "AR" decode to the same byte; only the canonical spelling is accepted (one signature, one token).
    assert parse_compact_jws(f"{HEADER}.{PAYLOAD}.AQ").signature == b"\x01"
    with pytest.raises(InvalidTokenError, match="not canonical"):
        parse_compact_jws(f"{HEADER}.{PAYLOAD}.AR")


@pytest.mark.parametrize("payload", ["!!!!", "e30+"])
def test_a_payload_segment_outside_base64url_is_refused_before_any_key_lookup(payload: str) -> None:
    with pytest.raises(InvalidTokenError, match="Malformed token payload"):
        parse_compact_jws(f"{HEADER}.{payload}.{SIGNATURE}")


@pytest.mark.parametrize("payload", [_segment(b"not json"), _segment(b"[1]")])
def test_a_payload_that_is_not_a_json_object_is_refused_when_read(payload: str) -> None:
    jws = parse_compact_jws(f"{HEADER}.{payload}.{SIGNATURE}")
    with pytest.raises(InvalidTokenError, match="Malformed token payload"):
        jws.payload()


@pytest.mark.parametrize(
    ("extra", "reason"),
    [({"crit": ["b64"], "b64": True}, "critical extensions"), ({"b64": False}, "unencoded payload")],
)
def test_crit_and_unencoded_payloads_are_refused(extra: dict[str, object], reason: str) -> None:
    header = _segment(json.dumps({"alg": "RS256", "kid": "k1", **extra}).encode())
    with pytest.raises(InvalidTokenError, match=reason):
        parse_compact_jws(f"{header}.{PAYLOAD}.{SIGNATURE}")
