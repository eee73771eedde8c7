"""Client-credentials tokens as an httpx2.Auth: cached, refreshed early, single-flight, retried on 401.

A token request has one total deadline (`timeout_seconds`, connect and every read); concurrent
callers share one request and its outcome, and a failed request is remembered for
`failure_backoff_seconds` (1 s), so callers against a token endpoint that hangs all end within one
deadline with the same TokenEndpointError, which names the token endpoint.

401 policy: a 401 from the resource may mean the token was revoked or the keys rotated, so the
token is dropped and the request retried once with a fresh one -- but only when the token that
was refused is at least `retry_after_401_min_age_seconds` (10 s) old. A 401 to a younger token is
returned as is, without a second request: a fresh token would most likely be refused too (wrong
audience, resource misconfigured), and a resource that always answers 401 must not turn every call
into a token request. So such a resource costs at most one token request per cool-down, not one
per call. 0 restores "always retry once".

Replicas: with `shared_tokens` (`oauth_tokens.shared_state.flight.SharedTokens`, REDIS_URL set), a token
missing here is looked up in Redis first and requested under a Redis lock, so every replica of a
service shares one token per (token endpoint, client, scope, resource) and its lifetime; a 401 that
drops the token here drops it in Redis too. Without it (or while Redis is down), per process as above.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx2

from oauth_tokens.client_assertion import ClientAssertionSigner
from oauth_tokens.dpop_client import DPoPKey, DPoPNonceStore, add_proof, nonce_challenge
from oauth_tokens.metrics import TOKEN_CACHE
from oauth_tokens.single_flight import SingleFlight
from oauth_tokens.telemetry import record_auth
from oauth_tokens.token_endpoint import AuthMethod, TokenEndpoint

if TYPE_CHECKING:  # redis is an extra ([redis]); only services that share tokens install it
    from oauth_tokens.shared_state.flight import SharedTokens

__all__ = ["CachedToken", "ClientCredentialsAuth", "TokenCache", "TokenCacheKey"]

logger = logging.getLogger(__name__)

TokenCacheKey = tuple[str, str, str | None, str | None]  # (token_url, client_id, scope, resource)


@dataclass(frozen=True)
class CachedToken:
    """An access token with the (monotonic) times at which it was obtained and is to be refreshed."""

    access_token: str = field(repr=False)
    obtained_at: float
    refresh_at: float


class TokenCache:
    """In-memory access tokens per (token_url, client_id, scope, resource); share one between instances.

    Holds one SingleFlight per key, so concurrent callers needing the same token make one request
    and share its outcome; a failed request is remembered for `failure_backoff_seconds`.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, failure_backoff_seconds: float = 1.0) -> None:
        self.clock = clock
        self.failure_backoff_seconds = failure_backoff_seconds
        self._tokens: dict[TokenCacheKey, CachedToken] = {}
        self._flights: dict[TokenCacheKey, SingleFlight[str]] = {}

    def fresh(self, key: TokenCacheKey) -> str | None:
        """The cached token for `key` unless it is due for refresh."""
        cached = self._tokens.get(key)
        if cached is None or self.clock() >= cached.refresh_at:
            return None
        return cached.access_token

    def store(self, key: TokenCacheKey, access_token: str, lifetime: float, margin: float) -> None:
        """Cache a token to refresh `margin` seconds early, yet use it for at least half its `lifetime`."""
        now = self.clock()
        refresh_after = max(lifetime - margin, lifetime / 2)
        self._tokens[key] = CachedToken(access_token, now, now + refresh_after)

    def store_for(self, key: TokenCacheKey, access_token: str, usable_seconds: float) -> None:
        """Cache a token to refresh `usable_seconds` from now (one another replica shared, its time left)."""
        now = self.clock()
        self._tokens[key] = CachedToken(access_token, now, now + usable_seconds)

    def age(self, key: TokenCacheKey, access_token: str) -> float | None:
        """Seconds since `access_token` was stored for `key`; None if it is no longer the cached token."""
        cached = self._tokens.get(key)
        if cached is None or cached.access_token != access_token:
            return None
        return self.clock() - cached.obtained_at

    def invalidate(self, key: TokenCacheKey, access_token: str | None = None) -> None:
        """Drop the token for `key` (only if it is still `access_token`, when given: a newer one stays)."""
        cached = self._tokens.get(key)
        if cached is not None and (access_token is None or cached.access_token == access_token):
            del self._tokens[key]

    def flight(self, key: TokenCacheKey) -> SingleFlight[str]:
        """The single flight that requests the token for `key`."""
        if key not in self._flights:
            self._flights[key] = SingleFlight(failure_backoff_seconds=self.failure_backoff_seconds, clock=self.clock)
        return self._flights[key]


def _record_cache(result: str) -> None:
    TOKEN_CACHE.labels("client_credentials", result).inc()
    record_auth(token_cache=result)


class ClientCredentialsAuth(httpx2.Auth):
    """Adds `Authorization: Bearer <client-credentials token>` to each request of an httpx2.AsyncClient."""

    requires_request_body = True  # the body must be replayable for the one retry after a 401

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | None = None,
        *,
        assertion_signer: ClientAssertionSigner | None = None,
        scope: str | None = None,
        resource: str | None = None,
        auth_method: AuthMethod | None = None,
        refresh_margin_seconds: float = 30,
        default_lifetime_seconds: float = 60,
        timeout_seconds: float = 5.0,
        cache: TokenCache | None = None,
        retry_after_401_min_age_seconds: float = 10,
        discover_token_url: Callable[[], Awaitable[str]] | None = None,
        dpop_key: DPoPKey | None = None,
        shared_tokens: SharedTokens | None = None,
    ) -> None:
        """`client_secret` or `assertion_signer` authenticates the client (see TokenEndpoint, which checks that
        `auth_method` agrees). `token_url` may be empty when `discover_token_url` finds it
        (TokenEndpointDiscovery.token_endpoint). With `dpop_key` the token is DPoP-bound to it (RFC 9449) and
        each request carries `Authorization: DPoP` and a fresh proof; the token is still one per lifetime.
        `shared_tokens`: one token for every replica (module docstring)."""
        if retry_after_401_min_age_seconds < 0:
            raise ValueError("retry_after_401_min_age_seconds must not be negative")
        self._endpoint = TokenEndpoint(
            token_url,
            client_id,
            client_secret,
            assertion_signer=assertion_signer,
            auth_method=auth_method,
            timeout_seconds=timeout_seconds,
            default_lifetime_seconds=default_lifetime_seconds,
            discover_token_url=discover_token_url,
            pattern="client_credentials",
            dpop_key=dpop_key,
        )
        self.dpop_key = dpop_key
        self._nonces = DPoPNonceStore()
        self.token_url = token_url
        self.client_id = client_id
        self.scope = scope or None
        self.resource = resource or None
        self.refresh_margin_seconds = refresh_margin_seconds
        self.cache = cache if cache is not None else TokenCache()
        self.retry_after_401_min_age_seconds = retry_after_401_min_age_seconds
        self.shared_tokens = shared_tokens

    def __repr__(self) -> str:
        return (
            f"ClientCredentialsAuth(token_url={self.token_url!r}, client_id={self.client_id!r}, "
            f"scope={self.scope!r}, resource={self.resource!r})"
        )

    @property
    def cache_key(self) -> TokenCacheKey:
        # A DPoP-bound token is usable only with its key: the key's thumbprint is part of where it is kept.
        token_url = self.token_url if self.dpop_key is None else f"{self.token_url}#dpop={self.dpop_key.thumbprint}"
        return (token_url, self.client_id, self.scope, self.resource)

    async def get_token(self) -> str:
        """A valid access token: from the cache, or from one token request shared by concurrent callers.

        TokenEndpointError when the request fails, for every caller sharing it and for a second after.
        """
        if not self.token_url:
            self.token_url = await self._endpoint.url()
        token = self.cache.fresh(self.cache_key)
        if token is not None:
            _record_cache("hit")
            return token
        _record_cache("miss")
        return await self.cache.flight(self.cache_key).run(self._fetch_and_store)

    async def _fetch_and_store(self) -> str:
        token = self.cache.fresh(self.cache_key)  # another instance sharing the cache may have fetched it
        if token is None and self.shared_tokens is not None:
            token, usable = await self.shared_tokens.token("client_credentials", self.cache_key, self._request_usable)
            self.cache.store_for(self.cache_key, token, usable)
        elif token is None:
            token, lifetime = await self._request_token()
            self.cache.store(self.cache_key, token, lifetime, self.refresh_margin_seconds)
        return token

    async def _request_usable(self) -> tuple[str, float]:
        """A new token and how long to use it (refresh `refresh_margin_seconds` early, after half its life)."""
        token, lifetime = await self._request_token()
        return token, max(lifetime - self.refresh_margin_seconds, lifetime / 2)

    def invalidate(self, access_token: str | None = None) -> None:
        """Forget the cached token (if given, only while it is still that token)."""
        self.cache.invalidate(self.cache_key, access_token)

    async def aclose(self) -> None:
        """Close the HTTP client used for the token endpoint."""
        await self._endpoint.aclose()

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        raise RuntimeError("ClientCredentialsAuth needs httpx2.AsyncClient; it has no synchronous flow")

    def _authorize(self, request: httpx2.Request, token: str) -> None:
        if self.dpop_key is None:
            request.headers["Authorization"] = f"Bearer {token}"
            return
        request.headers["Authorization"] = f"DPoP {token}"
        add_proof(request, self.dpop_key, self._nonces)  # a fresh proof on every request, retries included

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        token = await self.get_token()
        self._authorize(request, token)
        response = yield request
        if (
            self.dpop_key is not None
            and nonce_challenge(response)
            and self._nonces.remember(str(request.url), response)
        ):
            self._authorize(request, token)  # the resource asked for its nonce: one retry with it
            response = yield request
        if response.status_code != 401:
            return
        age = self.cache.age(self.cache_key, token)  # None: another caller already dropped or replaced it
        if age is not None and age < self.retry_after_401_min_age_seconds:
            logger.info("Resource %s answered 401 to a token %.0f s old; not retrying", request.url.host, age)
            return
        logger.info("Resource %s answered 401; retrying once with a new token", request.url.host)
        self.invalidate(token)
        if self.shared_tokens is not None:
            await self.shared_tokens.discard("client_credentials", self.cache_key, token)
        token = await self.get_token()
        self._authorize(request, token)
        yield request

    async def _request_token(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        if self.resource:
            form["resource"] = self.resource  # RFC 8707: bind the token to this resource
        answer = await self._endpoint.request(form)
        return answer.access_token, answer.lifetime
