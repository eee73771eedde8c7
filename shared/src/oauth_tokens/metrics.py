"""Prometheus metrics of the auth path, and the listener that serves them on a port of its own.

Every label value is drawn from a small fixed set (outcomes, OAuth error codes, grant types, pattern
names, a downstream's host:port, an MCP method or tool name): never a token, key, secret, subject or
URL query. The counters are process-wide and cost a dictionary lookup and an addition when nobody
scrapes them. `serve_metrics` exposes them at `/metrics` on a separate port, so the service's public
port never answers it; docker-compose.yml does not publish that port (see docs/observability.md).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram, disable_created_metrics, start_http_server

__all__ = [
    "DOWNSTREAM_DURATION",
    "DOWNSTREAM_REQUESTS",
    "JWKS_FETCHES",
    "MCP_SERVER_DURATION",
    "TOKEN_CACHE",
    "TOKEN_REQUESTS",
    "TOKEN_VALIDATIONS",
    "serve_metrics",
]

# Client side: the token requests this process made (crm-mcp's client credentials, a token exchange).
TOKEN_REQUESTS = Counter(
    "oauth_token_requests",
    "Token requests, by grant type and outcome (ok, or the OAuth error code). The auth-server counts "
    "the requests it answered with side=server, clients the requests they sent with side=client.",
    ["side", "grant", "outcome"],
)
TOKEN_CACHE = Counter(
    "oauth_token_cache_lookups",
    "Token cache lookups, by cache (client_credentials, exchange) and result (hit, miss).",
    ["cache", "result"],
)
JWKS_FETCHES = Counter(
    "oauth_jwks_fetches",
    "Fetches of the authorization server's signing keys (JWKS), by outcome (ok, failed).",
    ["outcome"],
)
TOKEN_VALIDATIONS = Counter(
    "oauth_token_validations",
    "Access tokens validated, by outcome (valid, refused) and RFC 6750 error (invalid_token, "
    "insufficient_scope; empty when valid).",
    ["outcome", "error"],
)
DOWNSTREAM_REQUESTS = Counter(
    "downstream_requests",
    "Outbound HTTP requests, by downstream (host:port), pattern and outcome (the status class, e.g. 2xx).",
    ["downstream", "pattern", "outcome"],
)
DOWNSTREAM_DURATION = Histogram(
    "downstream_request_duration_seconds",
    "Outbound HTTP request duration until the response headers arrived, by downstream and pattern.",
    ["downstream", "pattern"],
)
# OpenTelemetry semantic conventions for MCP: mcp.server.operation.duration, in seconds.
MCP_SERVER_DURATION = Histogram(
    "mcp_server_operation_duration_seconds",
    "MCP requests this server handled, by mcp.method.name, gen_ai.tool.name and error.type.",
    ["mcp_method_name", "gen_ai_tool_name", "error_type"],
)


def serve_metrics(host: str, port: int) -> None:
    """Serve every metric of this process at http://host:port/metrics from a daemon thread."""
    disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series: noise here
    start_http_server(port, addr=host)
