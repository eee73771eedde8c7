"""oauth_tokens.telemetry and trace_file: off by default, the httpx2 hooks, the OTLP JSON lines round trip.

The hooks are called with real httpx2 requests and responses; a tracer from a local TracerProvider stands
in for the global one so this process's global tracing stays off (the other tests rely on that).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from oauth_tokens import metrics, telemetry
from oauth_tokens.telemetry import configure_tracing, instrument_app, trace_http, tracing_enabled
from oauth_tokens.trace_file import JsonLinesSpanExporter, read_spans
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

pytestmark = pytest.mark.anyio


@pytest.fixture
def traces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Tracing on for this test only, into tmp_path/svc.jsonl."""
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(tmp_path / "svc.jsonl")))
    monkeypatch.setattr(telemetry, "_tracer", provider.get_tracer("test"))
    monkeypatch.setattr(telemetry, "_enabled", True)
    yield tmp_path
    provider.shutdown()


def test_off_by_default_installs_nothing() -> None:
    assert configure_tracing("svc") is False
    assert not tracing_enabled()
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    app = object()
    assert instrument_app(app) is app


async def test_hooks_without_tracing_add_no_header_but_count_the_request() -> None:
    client = trace_http(httpx2.AsyncClient(), pattern="api_key", credential="api_key")
    request = httpx2.Request("GET", "http://weather.test:8004/v1/current?city=Lisbon")
    counted = metrics.DOWNSTREAM_REQUESTS.labels("weather.test:8004", "api_key", "2xx")
    before = counted._value.get()
    await client.event_hooks["request"][-1](request)
    assert "traceparent" not in request.headers
    await client.event_hooks["response"][-1](httpx2.Response(200, request=request))
    assert counted._value.get() == before + 1
    await client.aclose()


async def test_client_span_injects_traceparent_and_names_the_credential(traces: Path) -> None:
    client = trace_http(httpx2.AsyncClient(), pattern="token_cascade", credential="user_token")
    request = httpx2.Request("GET", "http://crm.test:8003/customers?code=never-exported", headers={"X": "1"})
    await client.event_hooks["request"][-1](request)
    await client.event_hooks["response"][-1](httpx2.Response(403, request=request))
    (span,) = read_spans(traces)
    assert request.headers["traceparent"].startswith(f"00-{span.trace_id}-{span.span_id}-")
    assert (span.service, span.kind, span.name) == ("svc", "client", "GET /customers")
    assert span.attributes["auth.pattern"] == "token_cascade"
    assert span.attributes["auth.credential.kind"] == "user_token"
    assert span.attributes["http.response.status_code"] == 403
    assert span.status_code == 2
    assert "never-exported" not in (traces / "svc.jsonl").read_text()
    await client.aclose()


async def test_an_mcp_request_is_parented_by_the_trace_context_in_its_meta(traces: Path) -> None:
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "x", "_meta": {"traceparent": caller}},
    }
    client = trace_http(httpx2.AsyncClient(), pattern="client_credentials", credential="client_credentials")
    request = httpx2.Request("POST", "http://tickets.test:8002/mcp", content=json.dumps(body).encode())
    await client.event_hooks["request"][-1](request)
    await client.event_hooks["response"][-1](httpx2.Response(200, request=request))
    (span,) = read_spans(traces)
    assert (span.trace_id, span.parent_id) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    await client.aclose()


def test_trace_file_round_trip_keeps_links_kinds_and_attribute_types(traces: Path) -> None:
    tracer = telemetry._tracer
    attributes = {"n": 3, "ok": True, "x": 0.5, "l": ["a", "b"]}
    with (
        tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent,
        tracer.start_as_current_span("child", attributes=attributes),
    ):
        pass
    spans = {span.name: span for span in read_spans(traces)}
    assert spans["child"].parent_id == f"{parent.get_span_context().span_id:016x}"
    assert spans["parent"].parent_id is None
    assert (spans["parent"].kind, spans["child"].kind) == ("server", "internal")
    assert spans["child"].attributes == {"n": 3, "ok": True, "x": 0.5, "l": ["a", "b"]}
    assert spans["child"].end_ns >= spans["child"].start_ns > 0
