"""oauth_tokens.dpop unit checks: RFC 7638 thumbprint, htu normalisation, nonces, header cache, fail-closed jti."""

from __future__ import annotations

import pytest
from devkit.clock import ManualClock
from oauth_tokens.dpop import (
    DPoPNonceRequiredError,
    DPoPNonces,
    DPoPPolicy,
    DPoPProofError,
    DPoPUnavailableError,
    jwk_thumbprint,
    nonce_keys,
    normalized_htu,
)
from oauth_tokens.dpop_client import DPoPKey
from oauth_tokens.errors import SettingsError
from oauth_tokens.replay_cache import ReplayCacheFull
from oauth_tokens.settings import DPoPSettings, load_settings

pytestmark = pytest.mark.anyio

URL = "https://api.example.com/customers"

# RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
RFC7638_KEY = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCi"
    "FV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZH"
    "zu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awap"
    "JzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}


def test_the_thumbprint_is_rfc_7638s() -> None:
    assert jwk_thumbprint(RFC7638_KEY) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("HTTPS://API.Example.com:443/customers?q=1#x", "https://api.example.com/customers"),
        ("http://127.0.0.1:80", "http://127.0.0.1/"),
        ("http://127.0.0.1:8003/mcp", "http://127.0.0.1:8003/mcp"),
    ],
)
def test_htu_is_compared_without_query_fragment_case_or_default_port(url: str, normal: str) -> None:
    assert normalized_htu(url) == normal


def test_a_nonce_is_valid_for_its_lifetime_under_any_of_its_keys() -> None:
    clock = ManualClock(1_000_000.0)
    old = DPoPNonces([b"k" * 32], lifetime_seconds=60, clock=clock)
    rotated = DPoPNonces([b"n" * 32, b"k" * 32], lifetime_seconds=60, clock=clock)
    nonce = old.issue()
    assert rotated.valid(nonce)
    assert not DPoPNonces([b"n" * 32], clock=clock).valid(nonce)
    clock.now += 61
    assert not rotated.valid(nonce)


async def test_a_cached_header_does_not_spare_the_signature_or_claims() -> None:
    key = DPoPKey()
    policy = DPoPPolicy()
    assert (await policy.verify(key.proof("GET", URL), method="GET", url=URL)).jkt == key.thumbprint
    header, payload, signature = key.proof("GET", URL).split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    with pytest.raises(DPoPProofError):
        await policy.verify(forged, method="GET", url=URL)
    with pytest.raises(DPoPProofError):
        await policy.verify(key.proof("POST", URL), method="GET", url=URL)


async def test_a_nonce_policy_asks_for_its_nonce() -> None:
    key = DPoPKey()
    nonces = DPoPNonces()
    policy = DPoPPolicy(nonces=nonces)
    with pytest.raises(DPoPNonceRequiredError):
        await policy.verify(key.proof("GET", URL), method="GET", url=URL)
    await policy.verify(key.proof("GET", URL, nonce=nonces.issue()), method="GET", url=URL)


class _BrokenCache:
    async def first_use(self, key: str, expires_at: float) -> bool:
        raise ReplayCacheFull


async def test_a_replay_cache_that_cannot_record_the_jti_fails_closed() -> None:
    policy = DPoPPolicy(replay_cache=_BrokenCache())
    with pytest.raises(DPoPUnavailableError):
        await policy.verify(DPoPKey().proof("GET", URL), method="GET", url=URL)


def test_none_and_hmac_algorithms_cannot_be_configured() -> None:
    for algorithm in ("none", "HS256"):
        with pytest.raises(ValueError, match="asymmetric"):
            DPoPPolicy(algorithms=(algorithm,))


def test_replicas_configured_alike_accept_each_others_nonces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two replicas of a resource server, with one AUTH_DPOP_NONCE_KEYS: one's nonce is good at the other."""
    monkeypatch.setenv("AUTH_DPOP_NONCE", "true")
    monkeypatch.setenv("AUTH_DPOP_NONCE_KEYS", "a" * 32)
    first, second = load_settings(DPoPSettings).dpop_policy().nonces, load_settings(DPoPSettings).dpop_policy().nonces
    assert first is not None
    assert second is not None
    assert second.valid(first.issue())
    monkeypatch.setenv("AUTH_DPOP_NONCE_KEYS", f"{'b' * 32},{'a' * 32}")  # rotated: the old key still verifies
    rotated = load_settings(DPoPSettings).dpop_policy().nonces
    assert rotated is not None
    assert rotated.valid(first.issue())
    assert not first.valid(rotated.issue())  # the new key signs
    monkeypatch.setenv("AUTH_DPOP_NONCE_KEYS", "")
    alone = load_settings(DPoPSettings).dpop_policy().nonces  # no keys: one per process, as before
    assert alone is not None
    assert not alone.valid(first.issue())
    assert not (load_settings(DPoPSettings).dpop_policy().nonces or alone).valid(alone.issue())


def test_nonce_keys_are_derived_not_the_secret_itself_and_must_be_long(monkeypatch: pytest.MonkeyPatch) -> None:
    (key,) = nonce_keys(["s" * 32])
    assert key != b"s" * 32
    assert len(key) == 32
    assert nonce_keys(["s" * 32, ""]) == (key,)
    monkeypatch.setenv("AUTH_DPOP_NONCE_KEYS", "short")
    with pytest.raises(SettingsError, match="AUTH_DPOP_NONCE_KEYS") as refused:
        load_settings(DPoPSettings)
    assert "short" not in str(refused.value)
