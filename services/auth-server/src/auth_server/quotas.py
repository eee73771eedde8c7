"""Bounded tables that anonymous callers grow, with a share per client address and eviction that makes the
one who filled a table pay for it.

Used for dynamic registrations, sign-ins in progress, cached client metadata documents and failed-login
counts. Every entry has an owner: the client address (an IPv6 address counts as its /64, see
`owner_of_address`) whose request created it. The policy, the same for every table:

- **Per owner.** An owner holds at most `max_per_owner` entries: one more makes room among its own
  entries only (its cheapest, see below), so an address can push out nothing but itself. Only entries
  ranked no higher than the new one go for the share: an address whose entries are all worth more (used
  registrations, sign-ins past the login, which took a user to make) adds beyond its share, bounded by
  the table alone.
- **When full.** The entry that goes is the cheapest (lowest `rank`: an unused registration before a used
  one, a junk failed-login count before a long one); among the cheapest, one of the owner holding the most
  entries (the one being added included); among that owner's, the oldest. A flood from one or a few
  addresses is evicted before a real user's single entry, and a new entry from a fresh address always
  finds room. (A flood spread over as many addresses as the table holds entries can still push out
  anything but a None-ranked entry: these bounds are per address, not a defence against a botnet.)
- **Never evicted.** An entry ranked None (a locked-out username) stays until it expires: if nothing can
  go, `put` raises TableFull and the caller decides.
- **Expiry.** Expired entries are never returned, and are dropped first whenever room is needed.

Finding a victim scans the table (O(n), n at most `max_entries`), only when a table or a share is full.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# An IPv6 client usually holds a whole /64 (SLAAC, privacy addresses): counting per address would give
# one attacker 2**64 fresh shares.
_IPV6_SHARE_PREFIX = 64


def owner_of_address(address: str) -> str:
    """The owner key of a client address: an IPv4 address as is, an IPv6 address as its /64."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:  # "unknown" (no peer address)
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, _IPV6_SHARE_PREFIX), strict=False))
    return str(parsed)


class TableFull(Exception):
    """No entry may be evicted to make room (all the candidates are ranked None)."""


class OwnedTable(Generic[K, V]):
    """key -> value, each entry owned by a client address, under the policy in the module docstring."""

    def __init__(
        self,
        *,
        max_entries: int,
        max_per_owner: int,
        rank: Callable[[V], int | None],
        expired: Callable[[V, float], bool],
    ) -> None:
        self._max_entries = max_entries
        self._max_per_owner = max_per_owner
        self._rank = rank
        self._expired = expired
        self._entries: dict[K, tuple[str, V]] = {}  # oldest first
        self._by_owner: dict[str, dict[K, None]] = {}  # owner -> its keys, oldest first

    def owned_by(self, owner: str) -> int:
        return len(self._by_owner.get(owner, ()))

    def get(self, key: K, now: float) -> V | None:
        """The live entry under `key`; an expired one is dropped and None returned."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._expired(entry[1], now):
            self.pop(key)
            return None
        return entry[1]

    def pop(self, key: K) -> V | None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        owner, value = entry
        keys = self._by_owner[owner]
        del keys[key]
        if not keys:
            del self._by_owner[owner]
        return value

    def put(self, key: K, value: V, owner: str, now: float) -> list[V]:
        """Store `value` (a new key goes last); the entries evicted to make room. Raises TableFull."""
        if key in self._entries:
            self._entries[key] = (self._entries[key][0], value)
            return []
        evicted: list[V] = []
        if self.owned_by(owner) >= self._max_per_owner:
            self._drop_expired(now, list(self._by_owner[owner]))
            if self.owned_by(owner) >= self._max_per_owner:
                own = self._cheapest(list(self._by_owner[owner]), owner, up_to=self._rank(value))
                if own is not None:  # else every entry of its own is worth more: only the table's bound applies
                    evicted.append(self._evict(own))
        if len(self._entries) >= self._max_entries:
            self._drop_expired(now, list(self._entries))
            if len(self._entries) >= self._max_entries:
                evicted.append(self._evict(self._cheapest(list(self._entries), owner)))
        self._entries[key] = (owner, value)
        self._by_owner.setdefault(owner, {})[key] = None
        return evicted

    def _drop_expired(self, now: float, keys: list[K]) -> None:
        for key in keys:
            if self._expired(self._entries[key][1], now):
                self.pop(key)

    def _cheapest(self, keys: list[K], adding_owner: str, up_to: int | None = None) -> K | None:
        """Among `keys` (oldest first, ranked at most `up_to` if given): the lowest rank, then the owner with
        most entries (counting the one `adding_owner` is adding, so a flood pays first even while spread
        thin), then the oldest."""
        best: tuple[int, int] | None = None
        chosen: K | None = None
        for key in keys:
            owner, value = self._entries[key]
            rank = self._rank(value)
            if rank is None or (up_to is not None and rank > up_to):
                continue
            candidate = (rank, -len(self._by_owner[owner]) - (owner == adding_owner))
            if best is None or candidate < best:  # strictly less: the first (oldest) of equals wins
                best, chosen = candidate, key
        return chosen

    def _evict(self, key: K | None) -> V:
        if key is None:
            raise TableFull
        value = self._entries[key][1]
        self.pop(key)
        return value
