"""Shared state for replicas on Redis (`REDIS_URL`), with the in-process behaviour as the embedded default.

Every service with cross-request counters or short-lived shared items reads two settings
(`SharedStateSettings`): `REDIS_URL` (empty: everything stays in process, today's behaviour) and
`REDIS_KEY_PREFIX` (default: OTEL_SERVICE_NAME, else the service's name), which namespaces its keys.

Building blocks (redis-py's asyncio client; no hand-written protocol), each with the service's in-process
implementation behind the same calls:

- `connection`: `SharedState`, the client with short timeouts and the outage policy (log once per
  outage, probe again after a second), and `SharedStateUnavailable`;
- `limits`: `RedisFixedWindow` (weather-api), `RedisTokenBucket` (auth-server rate limits),
  `RedisFailureCounts` (login lockouts): atomic Lua scripts;
- `replay`: `RedisReplayCache` (`SET NX PXAT`; fails closed);
- `cache`: `SharedCache`, bytes by key with a lifetime (e.g. client metadata documents);
- `flight`: `SharedTokens`, cross-replica single flight for access tokens (a Redis lock and an
  AES-GCM-sealed shared cache).

Consistency, in short: counters are exact across replicas while Redis answers and per process while it
does not (a limit of L allows up to N x L on N replicas during an outage); replay checks are exact or
refused (503); caches may serve an entry until its own expiry, never after. Bounded tables that anonymous
callers grow (registrations, sign-ins in progress) are bounded where their rows live, in the database
(auth_server.owned_rows), so every replica sees one bound without Redis.

`ready(shared)` is the readiness probe's part: True when REDIS_URL is empty or Redis answers a PING.
"""

from __future__ import annotations

from oauth_tokens.shared_state.connection import (
    RETRY_AFTER_SECONDS,
    SharedState,
    SharedStateSettings,
    SharedStateUnavailable,
)

__all__ = [
    "RETRY_AFTER_SECONDS",
    "SharedState",
    "SharedStateSettings",
    "SharedStateUnavailable",
    "reachable",
]


async def reachable(shared: SharedState | None) -> bool:
    """True without Redis configured, else whether Redis answers now (never raises).

    Not a readiness check: every replica shares Redis, so failing readiness on it would take every
    replica out of the load balancer at once, for a dependency whose outage the callers degrade around.
    Services report it as `degraded` in `/health/ready` instead.
    """
    return True if shared is None else await shared.ping()
