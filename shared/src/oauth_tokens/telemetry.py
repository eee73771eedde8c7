"""OpenTelemetry tracing for every service: set up from settings, server spans, client spans, auth attributes.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT (OTLP over HTTP to a collector) or TRACES_DIR (OTLP JSON lines,
read by `make trace`) is set: then `configure_tracing` installs the SDK's TracerProvider, and from then on
the MCP SDK's own spans (client and server, trace context in `params._meta`, SEP-414) are recorded too.
Unset, no provider, processor or exporter exists, and every helper here returns after one flag test.

- `instrument_app` adds the maintained ASGI instrumentation to a service's app (server spans,
  `traceparent` extracted). The query string is hidden from it: a query can carry a code or a token.
- `trace_http` adds two event hooks to an httpx2 client, as there is no maintained httpx2 instrumentation:
  a CLIENT span per request with `traceparent` injected, plus the downstream metrics (always on). A request
  that gets no response (refused, timed out) leaves its span unfinished, so it is not exported; the
  caller's span records the error.
- `record_*` put the auth facts on the current span: credential kind, audience, scopes, cache hit or
  miss, validation outcome with the RFC 6750 error. Never a token, key, secret or password.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import httpx2
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, StatusCode

from oauth_tokens.logs import redact
from oauth_tokens.metrics import DOWNSTREAM_DURATION, DOWNSTREAM_REQUESTS, TOKEN_VALIDATIONS
from oauth_tokens.principal import Principal

__all__ = [
    "configure_tracing",
    "credential_kind",
    "instrument_app",
    "record_auth",
    "record_tool_auth",
    "record_validation",
    "trace_http",
    "tracing_enabled",
]

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]

# Attribute names of the auth facts (no OpenTelemetry convention covers them yet).
PATTERN = "auth.pattern"
CREDENTIAL = "auth.credential.kind"
_SPAN_KEY = "oauth_tokens.span"
_QUERY_KEY = "oauth_tokens.query_string"
# Batches are small and local: a short delay makes `make trace` right after `make demo` see everything.
_SCHEDULE_DELAY_MILLIS = 500

_tracer = trace.get_tracer("oauth_tokens")
_enabled = False


def tracing_enabled() -> bool:
    """True once `configure_tracing` installed an exporter in this process."""
    return _enabled


def configure_tracing(service: str, *, otlp_endpoint: str = "", traces_dir: str = "") -> bool:
    """Install the OpenTelemetry SDK for `service` if an exporter is configured; return whether it did.

    `otlp_endpoint` is a collector's base URL (spans go to <endpoint>/v1/traces, as the OTEL_* variable of
    the same name means); `traces_dir` gets <service>.jsonl. The rest of the SDK's OTEL_* variables
    (sampler, batch sizes, resource attributes) apply as usual.
    """
    global _enabled
    if not otlp_endpoint and not traces_dir:
        return False
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    exporters: list[SpanExporter] = []
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter(endpoint=otlp_endpoint.rstrip("/") + "/v1/traces"))
    if traces_dir:
        from oauth_tokens.trace_file import JsonLinesSpanExporter

        exporters.append(JsonLinesSpanExporter(Path(traces_dir) / f"{service}.jsonl"))
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=_SCHEDULE_DELAY_MILLIS))
    trace.set_tracer_provider(provider)
    _enabled = True
    return True


def instrument_app(app: Any) -> Any:
    """Add the OpenTelemetry ASGI middleware (one SERVER span per request) to a Starlette/FastAPI `app`.

    Added to the app's own middleware stack, so FastAPI sees it and does not trace a second time. Nothing
    is added when tracing is off.
    """
    if not _enabled:
        return app
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    app.add_middleware(_RestoreQuery)
    app.add_middleware(OpenTelemetryMiddleware, excluded_urls="/health", exclude_spans=["receive", "send"])
    app.add_middleware(_HideQuery)
    return app


class _HideQuery:
    """Hands the tracing middleware a request without its query string, which can carry codes or tokens."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            scope = {**scope, "query_string": b"", _QUERY_KEY: scope.get("query_string", b"")}
        await self.app(scope, receive, send)


class _RestoreQuery:
    """Gives the application the query string `_HideQuery` kept aside."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if _QUERY_KEY in scope:
            scope = {**scope, "query_string": scope[_QUERY_KEY]}
        await self.app(scope, receive, send)


def trace_http(client: httpx2.AsyncClient, *, pattern: str, credential: str) -> httpx2.AsyncClient:
    """`client`, with a CLIENT span (and `traceparent`) per request and the downstream metrics.

    `pattern` and `credential` name what the client sends (e.g. "api_key", "api_key"); they label the
    span and the metrics, so every hop of a trace says which credential it carried.
    """

    async def on_request(request: httpx2.Request) -> None:
        span = None
        if _enabled:
            span = _tracer.start_span(
                f"{request.method} {request.url.path}",
                context=_mcp_request_context(request),
                kind=SpanKind.CLIENT,
                attributes={
                    "http.request.method": request.method,
                    "server.address": request.url.host,
                    "server.port": request.url.port or (443 if request.url.scheme == "https" else 80),
                    "url.path": request.url.path,
                    PATTERN: pattern,
                    CREDENTIAL: credential,
                },
            )
            propagate.inject(request.headers, context=trace.set_span_in_context(span))
        request.extensions[_SPAN_KEY] = (span, time.perf_counter())

    async def on_response(response: httpx2.Response) -> None:
        span, started = response.request.extensions.pop(_SPAN_KEY, (None, None))
        url = response.request.url
        downstream = f"{url.host}:{url.port}" if url.port else url.host
        if started is not None:
            DOWNSTREAM_DURATION.labels(downstream, pattern).observe(time.perf_counter() - started)
        DOWNSTREAM_REQUESTS.labels(downstream, pattern, f"{response.status_code // 100}xx").inc()
        if span is not None:
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 400:
                span.set_attribute("error.type", str(response.status_code))
                span.set_status(StatusCode.ERROR)
            span.end()

    client.event_hooks["request"].append(on_request)
    client.event_hooks["response"].append(on_response)
    return client


def _mcp_request_context(request: httpx2.Request) -> Context | None:
    """The trace context an MCP request carries in `params._meta` (SEP-414), else None: the current one.

    The MCP SDK sends a session's HTTP requests from the task that holds the session, not from the
    caller's, so the current span there is not the caller's; the JSON-RPC body names the caller's span.
    """
    if b'"traceparent"' not in _body(request):
        return None
    try:
        meta = json.loads(request.content)["params"]["_meta"]
    except (ValueError, KeyError, TypeError):
        return None
    return propagate.extract(meta) if isinstance(meta, dict) else None


def _body(request: httpx2.Request) -> bytes:
    try:
        return request.content
    except httpx2.RequestNotRead:
        return b""


def credential_kind(claims: Mapping[str, Any], client_id: str | None, subject: str | None) -> str:
    """user_token, exchanged_token (RFC 8693 `act` claim) or client_credentials (the client is the subject)."""
    if isinstance(claims.get("act"), dict):
        return "exchanged_token"
    if client_id is not None and client_id == subject:
        return "client_credentials"
    return "user_token"


def record_auth(**attributes: str | bool | int | list[str]) -> None:
    """Put auth attributes (`auth.<name>`) on the current span; nothing when tracing is off."""
    if _enabled:
        trace.get_current_span().set_attributes({f"auth.{name}": value for name, value in attributes.items()})


def record_tool_auth(
    claims: Mapping[str, Any],
    client_id: str | None,
    subject: str | None,
    required: Sequence[str],
    missing: Sequence[str],
) -> None:
    """Describe on the MCP tool's span the caller's credential and the scopes the tool required."""
    if _enabled:
        record_auth(
            **{"credential.kind": credential_kind(claims, client_id, subject), "token.client_id": client_id or ""},
            **{"scopes.required": list(required), "scopes.missing": list(missing)},
        )


def record_validation(principal: Principal | None, error: str = "", reason: str = "") -> None:
    """Count a token validation and describe it on the current span (the server span of this hop).

    `error` is the RFC 6750 error code of a refusal, `reason` the validator's explanation (redacted again
    here, as it can quote a claim). A valid token's audience, scopes, client and credential kind are kept.
    """
    TOKEN_VALIDATIONS.labels("valid" if principal is not None else "refused", error).inc()
    if not _enabled:
        return
    if principal is not None:
        record_auth(
            **{
                "token.validation": "valid",
                "credential.kind": credential_kind(principal.claims, principal.client_id, principal.subject),
            },
            **{"token.audience": list(principal.audiences), "token.scopes": sorted(principal.scopes)},
            **{"token.client_id": principal.client_id or ""},
        )
    else:
        record_auth(**{"token.validation": "refused", "token.error": error, "token.refused_reason": redact(reason)})
