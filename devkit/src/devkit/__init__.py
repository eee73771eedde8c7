"""The dev kit: what `scripts/` (make up, demo, bench, soak) and `tests/` share, so neither imports the other.

- `services`: the one list of the topology's services (module, ports, data, database, role).
- `processes`, `topology`, `scaled`, `scaled_layout`, `local_servers`: real services on loopback, one
  process each or replicas behind HAProxy on PostgreSQL and Redis; `Topology.extra(...)` for one more.
- `sessions`: `mcp_session(url, token=…)`, `oauth_session(url, user, password)`; `headless_login` signs in.
- `client_credential`: crm-mcp's client credential, for code that acts as crm-mcp.
- `tokens`: an in-process token issuer; `clock`: a clock moved by hand.
"""
