"""Spans as OTLP JSON lines in a local file, and back: a trace you can read without a tracing backend.

`JsonLinesSpanExporter` appends one line per export batch, each an OTLP/JSON `ExportTraceServiceRequest`
(`{"resourceSpans": [...]}`, ids in hex as the OTLP JSON encoding requires), so the file can also be
replayed into any OTLP collector. `read_spans` turns the files of a directory back into flat `SpanRecord`s
for `make trace` and the tests.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["JsonLinesSpanExporter", "SpanRecord", "read_spans"]

# OTLP numbers span kinds from 1 (INTERNAL); the SDK's SpanKind enum from 0.
_OTLP_KIND_OFFSET = 1
KIND_NAMES = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [_any_value(item) for item in value]}}
    return {"stringValue": str(value)}


def _attributes(attributes: Any) -> list[dict[str, Any]]:
    return [{"key": key, "value": _any_value(value)} for key, value in (attributes or {}).items()]


def _span(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None
    encoded: dict[str, Any] = {
        "traceId": f"{context.trace_id:032x}",
        "spanId": f"{context.span_id:016x}",
        "name": span.name,
        "kind": span.kind.value + _OTLP_KIND_OFFSET,
        "startTimeUnixNano": str(span.start_time or 0),
        "endTimeUnixNano": str(span.end_time or 0),
        "attributes": _attributes(span.attributes),
        "status": {"code": span.status.status_code.value, "message": span.status.description or ""},
    }
    if span.parent is not None:
        encoded["parentSpanId"] = f"{span.parent.span_id:016x}"
    return encoded


def encode(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """An OTLP/JSON ExportTraceServiceRequest holding `spans` (grouped by resource, then scope)."""
    resources: dict[int, tuple[Any, dict[str, list[dict[str, Any]]]]] = {}
    for span in spans:
        _, scopes = resources.setdefault(id(span.resource), (span.resource, {}))
        scope = span.instrumentation_scope.name if span.instrumentation_scope else ""
        scopes.setdefault(scope, []).append(_span(span))
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes(resource.attributes)},
                "scopeSpans": [{"scope": {"name": name}, "spans": encoded} for name, encoded in scopes.items()],
            }
            for resource, scopes in resources.values()
        ]
    }


class JsonLinesSpanExporter(SpanExporter):
    """Appends each batch of finished spans to `path` as one OTLP/JSON line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        line = json.dumps(encode(spans), separators=(",", ":"))
        try:
            with self._lock, self.path.open("a", encoding="utf-8") as file:
                file.write(line + "\n")
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS


@dataclass(frozen=True)
class SpanRecord:
    """One span as read back from a trace file."""

    service: str
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status_code: int
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def _plain(value: dict[str, Any]) -> Any:
    if "arrayValue" in value:
        return [_plain(item) for item in value["arrayValue"].get("values", [])]
    if "intValue" in value:
        return int(value["intValue"])
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    return None


def _plain_attributes(attributes: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {item["key"]: _plain(item.get("value", {})) for item in attributes}


def _records(request: dict[str, Any]) -> Iterator[SpanRecord]:
    for resource_spans in request.get("resourceSpans", []):
        resource = _plain_attributes(resource_spans.get("resource", {}).get("attributes", []))
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                yield SpanRecord(
                    service=str(resource.get("service.name", "?")),
                    trace_id=span["traceId"],
                    span_id=span["spanId"],
                    parent_id=span.get("parentSpanId") or None,
                    name=span.get("name", ""),
                    kind=KIND_NAMES.get(int(span.get("kind", 1)), "internal"),
                    start_ns=int(span.get("startTimeUnixNano", 0)),
                    end_ns=int(span.get("endTimeUnixNano", 0)),
                    status_code=int(span.get("status", {}).get("code", 0)),
                    attributes=_plain_attributes(span.get("attributes", [])),
                )


def read_spans(directory: Path) -> list[SpanRecord]:
    """Every span in the `*.jsonl` files of `directory` (a line cut short by a running writer is skipped)."""
    spans: list[SpanRecord] = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                request = json.loads(line)
            except ValueError:
                continue
            spans.extend(_records(request))
    return spans
