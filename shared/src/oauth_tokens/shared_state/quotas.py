"""`RedisOwnedIndex`: the ownership and eviction index of a bounded table every replica shares.

The auth-server bounds the tables anonymous callers grow (registrations, sign-ins in progress) with
`auth_server.quotas.OwnedTable`: each entry has an owner (a client address), an owner holds at most
`max_per_owner` entries, the table at most `max_entries`, and making room evicts the cheapest entry (lowest
rank; among those, one of the owner holding the most; among those, the oldest), never one ranked None.
This index applies the same policy in Redis, atomically (one Lua script per call), over entries whose
data live elsewhere (e.g. a database row): `put` returns the keys the caller must delete to make room,
so N replicas share one bound, not N. It keeps per entry only its owner, rank, age order and expiry.

Cost as in OwnedTable: a put is O(1) unless an owner's share or the table is full, then O(n) over the
table (n at most `max_entries`), inside Redis. All keys of one index live under one prefix on one
Redis (no cluster slot spreading). When Redis cannot be reached, calls raise SharedStateUnavailable;
the caller decides (a registration or sign-in is then bounded by the process's own table).
"""

from __future__ import annotations

import json
import math
from typing import Any

from oauth_tokens.shared_state.connection import SharedState

__all__ = ["OwnedIndexFull", "RedisOwnedIndex"]

# KEYS: 1 entries hash (key -> JSON {o, r, s, e}), 2 owner counts hash, 3 age sequence.
# ARGV: key, owner, rank ("" = None), expires_at (-1 = never), now, max_entries, max_per_owner.
# Returns the evicted keys, or {"!full"} when nothing may be evicted.
_PUT = """
local key, owner, now = ARGV[1], ARGV[2], tonumber(ARGV[5])
local rank = ARGV[3] ~= '' and tonumber(ARGV[3]) or nil
local expires_at = tonumber(ARGV[4])
local max_entries, max_per_owner = tonumber(ARGV[6]), tonumber(ARGV[7])
local function owned(o) return tonumber(redis.call('HGET', KEYS[2], o) or '0') end
local function remove(k, o)
  redis.call('HDEL', KEYS[1], k)
  if redis.call('HINCRBY', KEYS[2], o, -1) <= 0 then redis.call('HDEL', KEYS[2], o) end
end
local function entries(only_owner)
  local flat, list = redis.call('HGETALL', KEYS[1]), {}
  for i = 1, #flat, 2 do
    local e = cjson.decode(flat[i + 1])
    if only_owner == nil or e.o == only_owner then
      if e.e >= 0 and e.e <= now then remove(flat[i], e.o) else table.insert(list, {flat[i], e}) end
    end
  end
  table.sort(list, function(a, b) return a[2].s < b[2].s end)
  return list
end
local function cheapest(list, up_to)
  local best_rank, best_count, chosen = nil, nil, nil
  for _, item in ipairs(list) do
    local e = item[2]
    if e.r ~= cjson.null and (up_to == nil or e.r <= up_to) then
      local count = -owned(e.o) - ((e.o == owner) and 1 or 0)
      if best_rank == nil or e.r < best_rank or (e.r == best_rank and count < best_count) then
        best_rank, best_count, chosen = e.r, count, item
      end
    end
  end
  return chosen
end
local existing = redis.call('HGET', KEYS[1], key)
if existing then
  local e = cjson.decode(existing)
  e.r = rank == nil and cjson.null or rank
  e.e = expires_at
  redis.call('HSET', KEYS[1], key, cjson.encode(e))
  return {}
end
local evicted = {}
if owned(owner) >= max_per_owner then
  local own = entries(owner)
  if owned(owner) >= max_per_owner then
    local victim = cheapest(own, rank)
    if victim then remove(victim[1], victim[2].o); table.insert(evicted, victim[1]) end
  end
end
if redis.call('HLEN', KEYS[1]) >= max_entries then
  local all = entries(nil)
  if redis.call('HLEN', KEYS[1]) >= max_entries then
    local victim = cheapest(all, nil)
    if not victim then return {'!full'} end
    remove(victim[1], victim[2].o)
    table.insert(evicted, victim[1])
  end
end
local entry = {o = owner, r = rank == nil and cjson.null or rank, s = redis.call('INCR', KEYS[3]), e = expires_at}
redis.call('HSET', KEYS[1], key, cjson.encode(entry))
redis.call('HINCRBY', KEYS[2], owner, 1)
return evicted
"""

# KEYS as above. ARGV: key, now. Returns 1 if the key is held and unexpired (an expired one is dropped).
_GET = """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 0 end
local e = cjson.decode(value)
if e.e >= 0 and e.e <= tonumber(ARGV[2]) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  if redis.call('HINCRBY', KEYS[2], e.o, -1) <= 0 then redis.call('HDEL', KEYS[2], e.o) end
  return 0
end
return 1
"""

_POP = """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 0 end
local e = cjson.decode(value)
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HINCRBY', KEYS[2], e.o, -1) <= 0 then redis.call('HDEL', KEYS[2], e.o) end
return 1
"""


class OwnedIndexFull(Exception):
    """No entry may be evicted to make room (every candidate is ranked None): OwnedTable's TableFull."""


class RedisOwnedIndex:
    """Owners, ranks and expiry of a bounded table's entries, under OwnedTable's policy (module docstring)."""

    def __init__(self, shared: SharedState, name: str, *, max_entries: int, max_per_owner: int) -> None:
        if max_entries < 1 or max_per_owner < 1:
            raise ValueError("max_entries and max_per_owner must be at least 1")
        self._shared = shared
        self._keys = [shared.key("owned", name, part) for part in ("entries", "owners", "sequence")]
        self._limits = [max_entries, max_per_owner]
        self._put = shared.register_script(_PUT)
        self._get = shared.register_script(_GET)
        self._pop = shared.register_script(_POP)

    async def put(self, key: str, owner: str, rank: int | None, expires_at: float, now: float) -> list[str]:
        """Hold `key` for `owner` (or update its rank and expiry); the keys evicted to make room.

        `expires_at` may be math.inf (never). Raises OwnedIndexFull, SharedStateUnavailable."""
        expiry = -1 if math.isinf(expires_at) else expires_at
        args: list[Any] = [key, owner, "" if rank is None else rank, json.dumps(expiry), json.dumps(now), *self._limits]
        evicted = await self._shared.run(lambda _: self._put(keys=self._keys, args=args))
        names = [item.decode() if isinstance(item, bytes) else str(item) for item in evicted]
        if names == ["!full"]:
            raise OwnedIndexFull
        return names

    async def holds(self, key: str, now: float) -> bool:
        """Whether `key` is held and unexpired. Raises SharedStateUnavailable."""
        args = [key, json.dumps(now)]
        return bool(await self._shared.run(lambda _: self._get(keys=self._keys, args=args)))

    async def pop(self, key: str) -> bool:
        """Forget `key`; False if it was not held. Raises SharedStateUnavailable."""
        return bool(await self._shared.run(lambda _: self._pop(keys=self._keys, args=[key])))

    async def owned_by(self, owner: str) -> int:
        """How many entries `owner` holds (expired ones included until room is needed)."""
        count = await self._shared.run(lambda client: client.hget(self._keys[1], owner))
        return int(count or 0)
