"""Verified-token cache: a token seen and fully validated before is accepted again with a hash and a lookup.

Why: an MCP client sends the same bearer token on every request of its session, and a full check
(signature, then claims) costs far more than a dictionary lookup. Envoy's jwt_authn filter caches
verified JWTs for the same reason; this cache follows the same rules and adds a key-removal sweep.

Cache policy:
- Only tokens that passed every check are stored, so a flood of bad tokens never evicts a good one.
- The key is the SHA-256 digest of the whole token, never the token itself: a dump of the cache
  (or of the process's memory around it) holds no bearer credential, and a token differing in any
  byte (a tampered payload, a swapped signature) has another digest, so it misses and is checked
  in full. The value is the resulting Principal (its claims are not a credential).
- At most `max_size` entries, least recently used evicted first; `max_size=0` turns the cache off.
- An entry lives until the earlier of the token's `exp` and `max_age_seconds` after it was stored.
  The short maximum age bounds how long a decision outlives a change the cache cannot see (the
  issuer dropping a key while no refresh happens, a configuration change in a long-lived process).
- `exp` and `nbf` are checked again on every hit (wall clock): an expired entry is dropped and the
  token goes through the full check, which decides with its leeway and gives the usual error.
- Scopes are not part of the cache: the validator compares the required scopes on every call.
- When the JWKS is refreshed, entries signed by a key that is no longer in the set are dropped
  (`retain_keys`, the JWKS cache's refresh hook), so a removed key stops working at the next refresh.
  The validator also asks the JWKS cache for the entry's key on every hit (a dictionary lookup while
  the keys are fresh), so a workload of cache hits alone still refreshes the keys on schedule, and a
  kid now published with other key material makes the token go through the full check again.
- One cache per validator, in memory: replicas do not share it, and a restart empties it.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NewType

from oauth_tokens.principal import Principal

__all__ = ["CachedToken", "TokenDigest", "VerifiedTokenCache", "token_digest"]

# The only key the cache takes: computed once per validation, for the lookup and the store.
TokenDigest = NewType("TokenDigest", bytes)


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs a microsecond more per new token
class CachedToken:
    """What is kept of a verified token: its Principal, the key it was verified with, and its time bounds."""

    principal: Principal
    kid: str
    jwk: Mapping[str, Any]  # the public key as published: a kid republished with another key must not hit
    not_before: float  # wall clock: the token's nbf minus the leeway (-inf without nbf)
    expires_at: float  # wall clock: the token's exp
    stored_until: float  # monotonic clock: when it was stored plus the maximum age


def token_digest(token: str) -> TokenDigest:
    """The cache key of `token`: its SHA-256 digest (32 bytes, no token material)."""
    return TokenDigest(hashlib.sha256(token.encode()).digest())


class VerifiedTokenCache:
    """Principals of verified tokens by token digest, bounded in size and age (policy in the module docstring)."""

    def __init__(
        self,
        max_size: int,
        max_age_seconds: float,
        *,
        leeway_seconds: float = 0,
        wall_clock: Callable[[], float] = time.time,
        monotonic_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_size < 0 or max_age_seconds <= 0:
            raise ValueError("max_size must be 0 or more and max_age_seconds positive")
        self.max_size = max_size
        self.max_age_seconds = max_age_seconds
        self._leeway = leeway_seconds
        self._wall_clock = wall_clock
        self._monotonic_clock = monotonic_clock
        self._entries: OrderedDict[TokenDigest, CachedToken] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[TokenDigest]:
        """The stored keys (digests), least recently used first: what a dump of the cache shows."""
        return list(self._entries)

    def get(self, key: TokenDigest) -> CachedToken | None:
        """What is stored for the token of digest `key` while it is within nbf/exp and the maximum age; else None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self._wall_clock()
        if not entry.not_before <= now < entry.expires_at or self._monotonic_clock() >= entry.stored_until:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: TokenDigest, kid: str, jwk: Mapping[str, Any], principal: Principal) -> None:
        """Store the Principal of the token of digest `key`, verified with key `jwk` (id `kid`); evicts LRU."""
        if self.max_size == 0:
            return
        not_before = principal.claims.get("nbf")
        if key in self._entries:
            self._entries.move_to_end(key)
        self._entries[key] = CachedToken(
            principal=principal,
            kid=kid,
            jwk=jwk,
            not_before=float(not_before) - self._leeway if isinstance(not_before, int | float) else -math.inf,
            expires_at=float(principal.expires_at),
            stored_until=self._monotonic_clock() + self.max_age_seconds,
        )
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def retain_keys(self, kids: Collection[str]) -> None:
        """Drop every entry verified with a key not in `kids` (called with the key ids of each refreshed JWKS)."""
        for key in [key for key, entry in self._entries.items() if entry.kid not in kids]:
            del self._entries[key]

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()
