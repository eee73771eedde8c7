"""Async cache of an authorization server's signing keys (JWKS), safe against kid floods and outages.

Cache policy:
- The key set is fetched on first use and then kept for `ttl_seconds`; after that the next
  validation refreshes it.
- A kid missing from a fresh set triggers a refetch (keys rotate), but after a successful fetch
  the next attempt of any kind waits `refetch_cooldown_seconds` (JWKS_REFETCH_COOLDOWN_SECONDS): a
  flood of tokens with random kids costs at most one JWKS request per cool-down, and unknown kids
  in between are refused at once. The authorization server publishes a rotated-in key at least
  that long before it signs with it (auth_server.keys refuses less), so no genuine kid is refused.
- After a failed fetch the next attempt waits only `failure_backoff_seconds` (1 s), doubling with
  each further failure up to `failure_backoff_max_seconds` (4 s): a validator recovers within a
  few seconds of its key source coming back, and a key source that stays down is tried every 4 s.
- A fetch (discovery included) has one total deadline of `timeout_seconds`.
- Concurrent callers that need a fetch share one request (single flight): waiters re-check
  the cache once the fetch in progress has finished instead of fetching again.
- When a fetch fails (endpoint down, bad answer), the keys already cached keep working
  (stale-while-error) for up to `max_stale_seconds`; the failure is logged at WARNING.
- A kid that cannot be found raises SigningKeyUnavailableError when the last fetch succeeded
  (the endpoint answered without that kid: the token is bad), and its subclass
  KeySourceUnavailableError when the last fetch failed or no usable key set is left (the key
  source is down: the token may be fine, the caller should retry later); it carries the seconds
  until the next attempt, for a Retry-After.
- A successful fetch replaces the whole set, so a key removed by the server stops working; then
  `on_refresh` (if given) gets the new set's kids, e.g. to drop what was verified with a removed key.
- Only verification keys are kept: `use` absent or "sig", `key_ops` absent or with "verify",
  a kid, an asymmetric kty, no private part, and an `alg` (if given) that is allowed.
- The jwks_uri is either configured or discovered (RFC 8414) on first fetch and remembered. It is
  fetched through `client` (fetch_json: no redirects, bounded size), or by `fetch` when given (a
  caller with its own fetch rules, e.g. an SSRF guard for a URL an untrusted party chose).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
from jwt import PyJWK
from jwt.exceptions import PyJWKError, PyJWTError

from oauth_tokens.deadline import deadline
from oauth_tokens.discovery import fetch_json
from oauth_tokens.errors import (
    DeadlineExceededError,
    KeySourceError,
    KeySourceUnavailableError,
    SigningKeyUnavailableError,
)
from oauth_tokens.metrics import JWKS_FETCHES
from oauth_tokens.telemetry import record_auth

__all__ = ["ALGORITHM_KEY_TYPES", "JWKS_REFETCH_COOLDOWN_SECONDS", "JWKSCache", "SigningKey"]

logger = logging.getLogger(__name__)

# Which JWK kty can verify which JWS alg (asymmetric only: HS* and "none" are never accepted).
ALGORITHM_KEY_TYPES: Mapping[str, str] = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
    "ES256K": "EC",
    "EdDSA": "OKP",
}
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")
# Validators refetch for an unknown kid at most this often; key rotation publishes ahead by at least this.
JWKS_REFETCH_COOLDOWN_SECONDS = 30


@dataclass
class SigningKey:
    """One public verification key from the JWKS, with its PyJWK per algorithm built on demand."""

    kid: str
    key_type: str
    algorithm: str | None
    jwk_data: dict[str, Any]
    _by_algorithm: dict[str, PyJWK] = field(default_factory=dict, repr=False)

    def for_algorithm(self, algorithm: str) -> PyJWK:
        """The key bound to `algorithm` (PyJWT refuses a token whose alg differs from the key's)."""
        if algorithm not in self._by_algorithm:
            self._by_algorithm[algorithm] = PyJWK(self.jwk_data, algorithm=algorithm)
        return self._by_algorithm[algorithm]


def _parse_key(jwk_data: Any, allowed_algorithms: Collection[str]) -> SigningKey | None:
    """A SigningKey, or None (with the reason logged at DEBUG) for keys this cache must not use."""
    if not isinstance(jwk_data, dict):
        return None
    kid, kty, alg = jwk_data.get("kid"), jwk_data.get("kty"), jwk_data.get("alg")
    key_ops = jwk_data.get("key_ops")
    reason = None
    if not isinstance(kid, str) or not kid:
        reason = "no kid"
    elif jwk_data.get("use", "sig") != "sig":
        reason = f"use is {jwk_data.get('use')!r}"
    elif key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        reason = "key_ops without verify"
    elif kty not in set(ALGORITHM_KEY_TYPES.values()):
        reason = f"kty {kty!r} is not an allowed asymmetric type"
    elif any(member in jwk_data for member in _PRIVATE_MEMBERS):
        reason = "it contains private key material"
    elif alg is not None and alg not in allowed_algorithms:
        reason = f"alg {alg!r} is not allowed"
    if reason is not None:
        logger.debug("Ignoring JWKS key %r: %s", kid, reason)
        return None
    try:
        parsed = PyJWK(jwk_data)
    except (PyJWKError, PyJWTError, ValueError, TypeError) as error:
        logger.debug("Ignoring JWKS key %r: %s", kid, type(error).__name__)
        return None
    key = SigningKey(kid=str(kid), key_type=str(kty), algorithm=alg, jwk_data=jwk_data)
    key._by_algorithm[parsed.algorithm_name] = parsed
    return key


class JWKSCache:
    """Signing keys by kid, fetched from a JWKS URL (given, or discovered on first use)."""

    def __init__(
        self,
        jwks_uri: str | Callable[[], Awaitable[str]],
        client: httpx2.AsyncClient | None,
        *,
        fetch: Callable[[str], Awaitable[dict[str, Any]]] | None = None,
        allowed_algorithms: Collection[str],
        ttl_seconds: float = 300,
        refetch_cooldown_seconds: float = JWKS_REFETCH_COOLDOWN_SECONDS,
        max_stale_seconds: float = 24 * 3600,
        timeout_seconds: float = 5.0,
        failure_backoff_seconds: float = 1.0,
        failure_backoff_max_seconds: float = 4.0,
        clock: Callable[[], float] = time.monotonic,
        on_refresh: Callable[[frozenset[str]], None] | None = None,
    ) -> None:
        self._jwks_uri = jwks_uri if isinstance(jwks_uri, str) else None
        self._resolve_jwks_uri = None if isinstance(jwks_uri, str) else jwks_uri
        if client is None and fetch is None:
            raise ValueError("JWKSCache needs an HTTP client or a fetch function")
        self._client = client
        self._fetch_document = fetch
        self._allowed_algorithms = frozenset(allowed_algorithms)
        self._ttl = ttl_seconds
        self._cooldown = refetch_cooldown_seconds
        self._max_stale = max_stale_seconds
        self._timeout = timeout_seconds
        self._backoff = failure_backoff_seconds
        self._backoff_max = failure_backoff_max_seconds
        self._clock = clock
        self._on_refresh = on_refresh
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch attempt, successful or not
        self._fetch_count = 0  # completed attempts; lets waiters see that a fetch happened meanwhile
        self._last_fetch_failed = False
        self._failures = 0  # consecutive failed fetches: how far the retry has backed off
        self._lock = anyio.Lock()

    @property
    def fetch_count(self) -> int:
        """How many JWKS fetches were attempted (for metrics and tests)."""
        return self._fetch_count

    async def get_signing_key(self, kid: str) -> SigningKey:
        """The key for `kid`; SigningKeyUnavailableError when no trusted key has that kid.

        KeySourceUnavailableError (a SigningKeyUnavailableError) when the key source is the reason.
        """
        key = self._keys.get(kid)
        fetched_at = self._fetched_at
        if key is not None and fetched_at is not None and self._clock() - fetched_at < self._ttl:
            return key  # a known kid within the TTL: the common case, decided before the checks below
        # While a fetch is in flight, a caller missing its kid waits for that fetch's result.
        if self._needs_fetch(kid) or (self._lock.locked() and kid not in self._keys):
            seen_fetches = self._fetch_count
            async with self._lock:
                # Another caller may have fetched while this one waited: use its result.
                if self._fetch_count == seen_fetches and self._needs_fetch(kid):
                    await self._fetch()
        key = self._usable_keys().get(kid)
        if key is not None:
            return key
        if self._last_fetch_failed or self._keys_expired():
            raise KeySourceUnavailableError(
                f"No signing key with kid {kid!r}: the JWKS could not be fetched", self._seconds_to_next_attempt()
            )
        raise SigningKeyUnavailableError(f"No trusted signing key with kid {kid!r}")

    def _needs_fetch(self, kid: str) -> bool:
        if self._fetched_at is None or kid not in self._keys:
            return self._may_fetch()
        return self._clock() - self._fetched_at >= self._ttl and self._may_fetch()

    def _may_fetch(self) -> bool:
        return self._seconds_to_next_attempt() <= 0

    def _retry_interval(self) -> float:
        """The cool-down after a success; after failures a doubling back-off, never above the cool-down."""
        if self._failures == 0:
            return self._cooldown
        backoff = self._backoff * 2.0 ** min(self._failures - 1, 16)
        return min(backoff, self._backoff_max, self._cooldown)

    def _seconds_to_next_attempt(self) -> float:
        if self._attempted_at is None:
            return 0.0
        return max(0.0, self._attempted_at + self._retry_interval() - self._clock())

    def _keys_expired(self) -> bool:
        """True before the first successful fetch, and once the keys are past `max_stale_seconds`."""
        return self._fetched_at is None or self._clock() - self._fetched_at > self._ttl + self._max_stale

    def _usable_keys(self) -> dict[str, SigningKey]:
        return {} if self._keys_expired() else self._keys

    async def _fetch(self) -> None:
        self._attempted_at = self._clock()
        self._last_fetch_failed = True  # until it succeeds, whatever it raises
        self._failures += 1
        try:
            # One deadline for discovery and the JWKS together: a hanging server costs one, not three.
            with deadline(self._timeout, "the key source"):
                keys = await self._download()
        except (KeySourceError, DeadlineExceededError) as error:
            retry_in = math.ceil(self._retry_interval())
            logger.warning(
                "JWKS fetch failed, keeping %d cached key(s), next attempt in %d s: %s",
                len(self._keys),
                retry_in,
                error,
            )
            JWKS_FETCHES.labels("failed").inc()
            record_auth(jwks_fetch="failed")
            return
        finally:
            self._fetch_count += 1
        self._keys = keys
        self._fetched_at = self._clock()
        self._last_fetch_failed = False
        self._failures = 0
        if self._on_refresh is not None:
            self._on_refresh(frozenset(keys))
        JWKS_FETCHES.labels("ok").inc()
        record_auth(jwks_fetch="ok")

    async def _download(self) -> dict[str, SigningKey]:
        jwks_uri = await self._jwks_uri_to_fetch()
        if self._fetch_document is not None:
            document = await self._fetch_document(jwks_uri)
        else:
            assert self._client is not None  # checked in __init__
            document = await fetch_json(self._client, jwks_uri, timeout_seconds=self._timeout)
        keys = self._parse(document)
        logger.debug("Fetched JWKS from %s: %d usable key(s)", jwks_uri, len(keys))
        return keys

    async def _jwks_uri_to_fetch(self) -> str:
        if self._jwks_uri is None:
            assert self._resolve_jwks_uri is not None
            self._jwks_uri = await self._resolve_jwks_uri()
        return self._jwks_uri

    def _parse(self, document: dict[str, Any]) -> dict[str, SigningKey]:
        raw_keys = document.get("keys")
        if not isinstance(raw_keys, list):
            raise KeySourceError("JWKS document has no 'keys' list")
        keys: dict[str, SigningKey] = {}
        for jwk_data in raw_keys:
            key = _parse_key(jwk_data, self._allowed_algorithms)
            if key is None:
                continue
            if key.kid in keys:
                logger.warning("JWKS has several keys with kid %r; using the first", key.kid)
                continue
            keys[key.kid] = key
        return keys
