"""RFC 8693 token exchange for a service that calls a downstream as its caller: cached, single flight, bounded.

A resource server that received a user's access token (the subject token) authenticates at the token
endpoint as itself and asks for a token for ONE downstream (`resource`) and only the scopes one call
needs. The answer names the same user (`sub`), the downstream alone as audience, and the service as
actor (`act`); the received token itself never leaves the service.

Cache: keyed by (SHA-256 of the subject token, resource, scope); the subject token is never a key,
never logged. An entry is used until `refresh_margin_seconds` before the EARLIER of the exchanged
token's expiry (`expires_in`) and the subject token's (`exp`), so no cached token outlives the one it
was exchanged for. At most `max_entries` entries; the least recently used goes first. Concurrent
callers with the same key share one request (single flight), and its failure.

Replicas: with `shared_tokens` (`oauth_tokens.shared_state.flight.SharedTokens`, REDIS_URL set), a miss
here is looked up in Redis and exchanged under a Redis lock, so all replicas make one exchange per key
per usable lifetime; the token is stored sealed (AES-GCM) and only while it may be used. Without it, or
while Redis is down, one exchange per key per process.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from oauth_tokens.client_assertion import ClientAssertionSigner
from oauth_tokens.dpop_client import DPoPKey
from oauth_tokens.errors import TokenEndpointError
from oauth_tokens.metrics import TOKEN_CACHE
from oauth_tokens.single_flight import KeyedSingleFlight
from oauth_tokens.token_endpoint import AuthMethod, TokenEndpoint

if TYPE_CHECKING:  # redis is an extra ([redis]); only services that share tokens install it
    from oauth_tokens.shared_state.flight import SharedTokens

__all__ = ["ExchangeKey", "ExchangedTokenCache", "TokenExchange"]

logger = logging.getLogger(__name__)

GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a grant name
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a token type name

ExchangeKey = tuple[str, str, str]  # (SHA-256 hex of the subject token, resource, scope)


def fingerprint(token: str) -> str:
    """What the cache keys on instead of the token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Entry:
    access_token: str = field(repr=False)
    use_until: float  # on the cache's (monotonic) clock


class ExchangedTokenCache:
    """Exchanged tokens by ExchangeKey, least recently used first out beyond `max_entries`."""

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[ExchangeKey, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def fresh(self, key: ExchangeKey) -> str | None:
        """The cached token for `key` while it may still be used; an expired one is dropped."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self.clock() >= entry.use_until:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.access_token

    def store(self, key: ExchangeKey, access_token: str, usable_seconds: float) -> None:
        """Keep `access_token` for `usable_seconds`; beyond `max_entries`, drop the expired, then the oldest."""
        now = self.clock()
        self._entries[key] = _Entry(access_token, now + usable_seconds)
        self._entries.move_to_end(key)
        if len(self._entries) > self.max_entries:
            for stale in [k for k, entry in self._entries.items() if now >= entry.use_until]:
                del self._entries[stale]
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def pop(self, key: ExchangeKey) -> bool:
        """Forget `key`'s token; False if none was kept."""
        return self._entries.pop(key, None) is not None

    def clear(self) -> None:
        self._entries.clear()


class TokenExchange:
    """Exchanges subject tokens for downstream tokens as one confidential client (see the module docstring)."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | None = None,
        *,
        assertion_signer: ClientAssertionSigner | None = None,
        auth_method: AuthMethod | None = None,
        refresh_margin_seconds: float = 10,
        default_lifetime_seconds: float = 60,
        timeout_seconds: float = 5.0,
        cache: ExchangedTokenCache | None = None,
        wall_clock: Callable[[], float] = time.time,
        discover_token_url: Callable[[], Awaitable[str]] | None = None,
        dpop_key: DPoPKey | None = None,
        shared_tokens: SharedTokens | None = None,
    ) -> None:
        """`client_secret` or `assertion_signer` authenticates the client (see TokenEndpoint, which checks that
        `auth_method` agrees). `token_url` may be empty when `discover_token_url` finds it
        (TokenEndpointDiscovery.token_endpoint). With `dpop_key`, exchanged tokens are DPoP-bound to it: send
        them as `Authorization: DPoP` with a fresh proof (oauth_tokens.dpop_client.DPoPProofAuth).
        `shared_tokens`: one exchange for every replica."""
        self._endpoint = TokenEndpoint(
            token_url,
            client_id,
            client_secret,
            assertion_signer=assertion_signer,
            auth_method=auth_method,
            timeout_seconds=timeout_seconds,
            default_lifetime_seconds=default_lifetime_seconds,
            discover_token_url=discover_token_url,
            pattern="token_exchange",
            dpop_key=dpop_key,
        )
        self.dpop_key = dpop_key
        self.client_id = client_id
        self.refresh_margin_seconds = refresh_margin_seconds
        self.cache = cache if cache is not None else ExchangedTokenCache()
        self.shared_tokens = shared_tokens
        self._wall_clock = wall_clock  # the subject token's `exp` is wall-clock time
        # One exchange in flight per key, shared by its concurrent callers (failures are not kept).
        self._flights: KeyedSingleFlight[ExchangeKey, str] = KeyedSingleFlight()

    def __repr__(self) -> str:
        return f"TokenExchange(token_url={self._endpoint.token_url!r}, client_id={self.client_id!r})"

    async def token_for(
        self, subject_token: str, *, resource: str, scope: str, subject_expires_at: float | None = None
    ) -> str:
        """A token for `resource` with exactly `scope`, on behalf of `subject_token`'s user.

        `subject_expires_at` is the subject token's `exp` (Unix time), when the caller has validated it.
        Raises TokenEndpointError (the OAuth error code; never a token or the client secret in it).
        """
        key = (fingerprint(subject_token), resource, scope)
        if (cached := self.cache.fresh(key)) is not None:
            TOKEN_CACHE.labels("exchange", "hit").inc()
            return cached
        TOKEN_CACHE.labels("exchange", "miss").inc()

        async def exchange_once() -> str:
            if (fetched := self.cache.fresh(key)) is not None:  # a flight that just ended stored it
                return fetched
            if self.shared_tokens is not None:
                # A DPoP-bound token works only with this replica's key: its thumbprint is part of the shared key.
                binding = () if self.dpop_key is None else (f"dpop={self.dpop_key.thumbprint}",)
                token, usable = await self.shared_tokens.token(
                    "token_exchange",
                    (*key, *binding),
                    lambda: self._exchange(subject_token, resource, scope, subject_expires_at),
                )
            else:
                token, usable = await self._exchange(subject_token, resource, scope, subject_expires_at)
            if usable > 0:  # else too close to expiry to keep: used for this call only
                self.cache.store(key, token, usable)
            return token

        return await self._flights.run(key, exchange_once)

    async def aclose(self) -> None:
        """Close the HTTP client used for the token endpoint."""
        await self._endpoint.aclose()

    async def _exchange(
        self, subject_token: str, resource: str, scope: str, subject_expires_at: float | None
    ) -> tuple[str, float]:
        """A new exchanged token and the seconds it may be used (may be 0 or less: not to be kept)."""
        form = {
            "grant_type": GRANT_TOKEN_EXCHANGE,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "resource": resource,
            "scope": scope,
        }
        answer = await self._endpoint.request(form, secrets=(subject_token,))
        issued_type = answer.body.get("issued_token_type", ACCESS_TOKEN_TYPE)
        if issued_type != ACCESS_TOKEN_TYPE:
            raise TokenEndpointError("invalid_response", "The token exchange did not issue an access token", 200)
        lifetime = answer.lifetime
        if subject_expires_at is not None:
            lifetime = min(lifetime, subject_expires_at - self._wall_clock())
        logger.debug("Exchanged a subject token for resource %s, scope %s", resource, scope)
        return answer.access_token, lifetime - self.refresh_margin_seconds
