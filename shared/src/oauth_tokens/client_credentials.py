"""Client-credentials tokens as an httpx2.Auth: cached, refreshed early, single-flight, retried on 401.

401 policy: a 401 from the resource may mean the token was revoked or the keys rotated, so the
token is dropped and the request retried once with a fresh one -- but only when the token that
was refused is at least `retry_after_401_min_age_seconds` (10 s) old. A 401 to a younger token is
returned as is, without a second request: a fresh token would most likely be refused too (wrong
audience, resource misconfigured), and a resource that always answers 401 must not turn every call
into a token request. So such a resource costs at most one token request per cool-down, not one
per call. 0 restores "always retry once".
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import anyio
import httpx2

from oauth_tokens.errors import TokenEndpointError
from oauth_tokens.metrics import TOKEN_CACHE, TOKEN_REQUESTS
from oauth_tokens.telemetry import record_auth, trace_http

__all__ = ["CachedToken", "ClientCredentialsAuth", "TokenCache", "TokenCacheKey"]

logger = logging.getLogger(__name__)

TokenCacheKey = tuple[str, str, str | None, str | None]  # (token_url, client_id, scope, resource)
AuthMethod = Literal["client_secret_basic", "client_secret_post"]
_MAX_DESCRIPTION_CHARS = 200


@dataclass(frozen=True)
class CachedToken:
    """An access token with the (monotonic) times at which it was obtained and is to be refreshed."""

    access_token: str = field(repr=False)
    obtained_at: float
    refresh_at: float


class TokenCache:
    """In-memory access tokens per (token_url, client_id, scope, resource); share one between instances.

    Holds one lock per key, so concurrent callers needing the same token make one request.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._tokens: dict[TokenCacheKey, CachedToken] = {}
        self._locks: dict[TokenCacheKey, anyio.Lock] = {}

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

    def lock(self, key: TokenCacheKey) -> anyio.Lock:
        """The single-flight lock for `key`."""
        return self._locks.setdefault(key, anyio.Lock())


def _record_cache(result: str) -> None:
    TOKEN_CACHE.labels("client_credentials", result).inc()
    record_auth(token_cache=result)


def _basic_credentials(client_id: str, client_secret: str) -> str:
    """RFC 6749 §2.3.1: form-urlencode id and secret, then Basic-encode `id:secret`.

    Spaces become %20 rather than '+': servers that percent-decode without '+' handling
    (authlib's extract_basic_authorization, for one) then read the same value as form decoders.
    """
    pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


class ClientCredentialsAuth(httpx2.Auth):
    """Adds `Authorization: Bearer <client-credentials token>` to each request of an httpx2.AsyncClient."""

    requires_request_body = True  # the body must be replayable for the one retry after a 401

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        resource: str | None = None,
        auth_method: AuthMethod = "client_secret_basic",
        refresh_margin_seconds: float = 30,
        default_lifetime_seconds: float = 60,
        timeout_seconds: float = 5.0,
        cache: TokenCache | None = None,
        retry_after_401_min_age_seconds: float = 10,
    ) -> None:
        if auth_method not in ("client_secret_basic", "client_secret_post"):
            raise ValueError(f"Unsupported auth_method {auth_method!r}")
        if not client_id or not client_secret:
            raise ValueError("client_id and client_secret must be non-empty")
        if retry_after_401_min_age_seconds < 0:
            raise ValueError("retry_after_401_min_age_seconds must not be negative")
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope or None
        self.resource = resource or None
        self.auth_method = auth_method
        self.refresh_margin_seconds = refresh_margin_seconds
        self.default_lifetime_seconds = default_lifetime_seconds
        self.timeout_seconds = timeout_seconds
        self.cache = cache if cache is not None else TokenCache()
        self.retry_after_401_min_age_seconds = retry_after_401_min_age_seconds
        self._token_client: httpx2.AsyncClient | None = None

    def __repr__(self) -> str:
        return (
            f"ClientCredentialsAuth(token_url={self.token_url!r}, client_id={self.client_id!r}, "
            f"scope={self.scope!r}, resource={self.resource!r})"
        )

    @property
    def cache_key(self) -> TokenCacheKey:
        return (self.token_url, self.client_id, self.scope, self.resource)

    async def get_token(self) -> str:
        """A valid access token: from the cache, or from one token request shared by concurrent callers."""
        token = self.cache.fresh(self.cache_key)
        if token is not None:
            _record_cache("hit")
            return token
        async with self.cache.lock(self.cache_key):
            token = self.cache.fresh(self.cache_key)  # someone else may have fetched it meanwhile
            _record_cache("miss" if token is None else "hit")
            if token is None:
                token, lifetime = await self._request_token()
                self.cache.store(self.cache_key, token, lifetime, self.refresh_margin_seconds)
            return token

    def invalidate(self, access_token: str | None = None) -> None:
        """Forget the cached token (if given, only while it is still that token)."""
        self.cache.invalidate(self.cache_key, access_token)

    async def aclose(self) -> None:
        """Close the HTTP client used for the token endpoint."""
        if self._token_client is not None:
            await self._token_client.aclose()
            self._token_client = None

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        raise RuntimeError("ClientCredentialsAuth needs httpx2.AsyncClient; it has no synchronous flow")

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        token = await self.get_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        age = self.cache.age(self.cache_key, token)  # None: another caller already dropped or replaced it
        if age is not None and age < self.retry_after_401_min_age_seconds:
            logger.info("Resource %s answered 401 to a token %.0f s old; not retrying", request.url.host, age)
            return
        logger.info("Resource %s answered 401; retrying once with a new token", request.url.host)
        self.invalidate(token)
        token = await self.get_token()
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def _client(self) -> httpx2.AsyncClient:
        if self._token_client is None:
            self._token_client = trace_http(
                httpx2.AsyncClient(timeout=self.timeout_seconds, follow_redirects=False),
                pattern="client_credentials",
                credential="client_secret",
            )
        return self._token_client

    async def _request_token(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        if self.resource:
            form["resource"] = self.resource  # RFC 8707: bind the token to this resource
        headers = {"Accept": "application/json"}
        if self.auth_method == "client_secret_basic":
            headers["Authorization"] = _basic_credentials(self.client_id, self._client_secret)
        else:
            form.update(client_id=self.client_id, client_secret=self._client_secret)
        try:
            response = await self._client().post(
                self.token_url,
                data=form,
                headers=headers,
                timeout=self.timeout_seconds,
                follow_redirects=False,
            )
        except httpx2.TimeoutException as error:
            TOKEN_REQUESTS.labels("client", "client_credentials", "temporarily_unavailable").inc()
            raise TokenEndpointError("temporarily_unavailable", "The token endpoint timed out") from error
        except httpx2.TransportError as error:
            TOKEN_REQUESTS.labels("client", "client_credentials", "temporarily_unavailable").inc()
            description = f"The token endpoint is unreachable ({type(error).__name__})"
            raise TokenEndpointError("temporarily_unavailable", description) from error
        body = self._json_body(response)
        if not response.is_success:
            refusal = self._endpoint_error(response.status_code, body)
            TOKEN_REQUESTS.labels("client", "client_credentials", refusal.error).inc()
            raise refusal
        TOKEN_REQUESTS.labels("client", "client_credentials", "ok").inc()
        return self._token_from(body)

    @staticmethod
    def _json_body(response: httpx2.Response) -> dict[str, Any] | None:
        try:
            body = json.loads(response.content)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _endpoint_error(self, status_code: int, body: dict[str, Any] | None) -> TokenEndpointError:
        error = body.get("error") if body else None
        if not isinstance(error, str) or not error:
            error = "server_error" if status_code >= 500 else "invalid_response"
        description = body.get("error_description") if body else None
        if isinstance(description, str):
            # Never trust a server not to echo what it was sent.
            description = description.replace(self._client_secret, "[REDACTED]")[:_MAX_DESCRIPTION_CHARS]
        else:
            description = None
        logger.warning("Token request for client %r refused: %s (HTTP %d)", self.client_id, error, status_code)
        return TokenEndpointError(error[:64], description, status_code)

    def _token_from(self, body: dict[str, Any] | None) -> tuple[str, float]:
        if body is None:
            raise TokenEndpointError("invalid_response", "The token response is not a JSON object", 200)
        access_token = body.get("access_token")
        token_type = body.get("token_type", "Bearer")
        if not isinstance(access_token, str) or not access_token:
            raise TokenEndpointError("invalid_response", "The token response has no access_token", 200)
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise TokenEndpointError("invalid_response", "The token response is not a Bearer token", 200)
        return access_token, self._lifetime(body.get("expires_in"))

    def _lifetime(self, expires_in: Any) -> float:
        """`expires_in` in seconds; when absent or nonsense, the short default_lifetime_seconds."""
        if isinstance(expires_in, str) and expires_in.isdigit():
            expires_in = int(expires_in)
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
            return float(expires_in)
        return self.default_lifetime_seconds
