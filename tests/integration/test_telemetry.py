"""Telemetry of the real topology: one trace per briefing across every hop, metrics that move, no secret.

The session topology runs traced (tests/integration/conftest.py): each service writes its spans as OTLP
JSON lines to the topology's traces directory, read back here exactly as `make trace` reads them. Spans
reach the files within a batch delay, so the tests poll for them (they never assert how long it took).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import anyio
import httpx2
import pytest
from devkit.topology import Topology
from oauth_tokens.trace_file import SpanRecord, read_spans
from prometheus_client.parser import text_string_to_metric_families

from scripts.trace import main as make_trace
from scripts.trace import pick_trace

pytestmark = pytest.mark.anyio

HOPS = {"crm-mcp", "crm-api", "tickets-mcp", "weather-api", "auth-server"}
POLL_SECONDS = 15.0


def _briefing_traces(topology: Topology) -> dict[str, list[SpanRecord]]:
    spans = read_spans(topology.traces_dir)
    ids = {
        s.trace_id for s in spans if s.kind == "server" and s.attributes.get("gen_ai.tool.name") == "customer_briefing"
    }
    return {trace_id: [s for s in spans if s.trace_id == trace_id] for trace_id in ids}


def metric(topology: Topology, service: str, name: str, **labels: str) -> float:
    """The value of one sample of `service`'s /metrics (0 when the labels were never counted)."""
    text = httpx2.get(topology.metrics_url(service), timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items()):
                return float(sample.value)
    return 0.0


@pytest.fixture(scope="module")
def fresh_crm_mcp(topology: Topology) -> Topology:
    """crm-mcp restarted, so its token cache is empty and the next briefing fetches a token."""
    topology.services["crm-mcp"].stop()
    topology.start("crm-mcp")
    return topology


async def _call_briefing(topology: Topology) -> None:
    async with topology.user_session("alice") as alice:
        result = await alice.call_tool("customer_briefing", {"customer_id": "cus_001"})
    assert not result.is_error


@pytest.fixture(scope="module")
def briefing(fresh_crm_mcp: Topology) -> list[SpanRecord]:
    """The spans of the one trace a customer_briefing call (the first tool call of this crm-mcp) made."""
    topology = fresh_crm_mcp
    before = set(_briefing_traces(topology))
    anyio.run(_call_briefing, topology)

    def new_traces() -> list[list[SpanRecord]]:
        return [spans for trace_id, spans in _briefing_traces(topology).items() if trace_id not in before]

    deadline = time.monotonic() + POLL_SECONDS
    while not (len(new := new_traces()) == 1 and _complete(new[0])):
        assert time.monotonic() < deadline, f"no complete briefing trace: {[len(t) for t in new]} new span(s)"
        time.sleep(0.2)
    return new[0]


def _complete(spans: list[SpanRecord]) -> bool:
    """Whether every span the tests below look for has arrived, not just some span of each hop.

    Each service exports its spans in batches as they end, so one hop's spans can arrive in two batches:
    tickets-mcp's session set-up first, its tool call's spans a batch later. Waiting for a span of each
    service was not enough (the tool call's spans were sometimes still on their way).
    """
    by_id = {span.span_id: span for span in spans}
    sent = {
        s.span_id
        for s in spans
        if (s.service, s.kind, s.name) == ("crm-mcp", "client", "MCP send tools/call list_tickets")
    }

    def has(service: str, where: Callable[[SpanRecord], bool]) -> bool:
        return any(s.service == service and s.kind == "server" and where(s) for s in spans)

    return (
        has("crm-mcp", lambda s: s.attributes.get("gen_ai.tool.name") == "customer_briefing")
        and has("tickets-mcp", lambda s: s.attributes.get("gen_ai.tool.name") == "list_tickets")
        and has("tickets-mcp", lambda s: s.name == "POST /mcp" and any(a.span_id in sent for a in _ancestors(s, by_id)))
        and has("crm-api", lambda _: True)
        and has("weather-api", lambda _: True)
        and has("auth-server", lambda s: s.name == "POST /token")
    )


def _one(spans: list[SpanRecord], service: str, kind: str, where: Callable[[SpanRecord], bool]) -> SpanRecord:
    found = [s for s in spans if s.service == service and s.kind == kind and where(s)]
    assert len(found) == 1, f"expected one {kind} span of {service}, found {[s.name for s in found]}"
    return found[0]


def _ancestors(span: SpanRecord, by_id: dict[str, SpanRecord]) -> list[SpanRecord]:
    chain = []
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        chain.append(span)
    return chain


async def test_one_briefing_is_one_trace_with_each_hop_under_its_caller(
    briefing: list[SpanRecord], fresh_crm_mcp: Topology
) -> None:
    by_id = {span.span_id: span for span in briefing}
    roots = [span for span in briefing if span.parent_id not in by_id]
    tool = _one(briefing, "crm-mcp", "server", lambda s: s.attributes.get("gen_ai.tool.name") == "customer_briefing")
    assert tool.attributes["mcp.method.name"] == "tools/call"
    assert tool.attributes["auth.credential.kind"] == "user_token"
    assert len(roots) == 1
    if roots[0] is not tool:
        # Usually the SDK runs the tool in the context of the HTTP request that carried it; now and then
        # it does not, and the tool's span is the root (docs/observability.md, "One trace per call").
        assert tool.parent_id == roots[0].span_id
        assert (roots[0].service, roots[0].kind, roots[0].name) == ("crm-mcp", "server", "POST /mcp")
        assert roots[0].attributes["auth.token.validation"] == "valid"
        assert roots[0].attributes["auth.credential.kind"] == "user_token"
    # The SDK's own MCP spans: tickets-mcp's tool span is the child of crm-mcp's MCP client span (via _meta).
    tickets_tool = _one(
        briefing, "tickets-mcp", "server", lambda s: s.attributes.get("gen_ai.tool.name") == "list_tickets"
    )
    sent = by_id[tickets_tool.parent_id or ""]
    assert (sent.service, sent.kind, sent.name) == ("crm-mcp", "client", "MCP send tools/call list_tickets")
    assert tool in _ancestors(sent, by_id)

    def hop(service: str, credential: str, where: Callable[[SpanRecord], bool] = lambda _: True) -> SpanRecord:
        """The server span of `service`, whose parent is crm-mcp's client span sending `credential`."""
        server = _one(briefing, service, "server", where)
        client = by_id[server.parent_id or ""]
        assert (client.service, client.kind) == ("crm-mcp", "client")
        assert client.attributes["auth.credential.kind"] == credential
        assert tool in _ancestors(client, by_id)
        return server

    crm_api = hop("crm-api", "user_token")
    assert crm_api.attributes["auth.token.validation"] == "valid"
    assert crm_api.attributes["auth.credential.kind"] == "user_token"
    assert fresh_crm_mcp.env["CRM_API_AUDIENCE"] in crm_api.attributes["auth.token.audience"]
    hop("weather-api", "api_key")
    token = hop("auth-server", "private_key_jwt", lambda s: s.name == "POST /token")
    assert token.attributes["auth.grant_type"] == "client_credentials"
    assert token.attributes["auth.token_outcome"] == "ok"
    tickets = hop("tickets-mcp", "client_credentials", lambda s: s.name == "POST /mcp" and sent in _ancestors(s, by_id))
    assert tickets.attributes["auth.token.validation"] == "valid"
    assert tickets.attributes["auth.credential.kind"] == "client_credentials"
    assert tickets.attributes["auth.token.audience"] == [fresh_crm_mcp.env["TICKETS_MCP_RESOURCE"]]


async def test_make_trace_draws_the_briefing_with_each_hops_credential(
    briefing: list[SpanRecord], fresh_crm_mcp: Topology, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pick_trace(read_spans(fresh_crm_mcp.traces_dir), briefing[0].trace_id[:12], "customer_briefing")
    assert make_trace(["--dir", str(fresh_crm_mcp.traces_dir), briefing[0].trace_id[:12]]) == 0
    picture = capsys.readouterr().out
    assert picture.startswith(f"Trace {briefing[0].trace_id}")
    for service in HOPS:
        assert f"\n{service:<12} " in picture
    for shown in (
        "sends user_token",
        "sends api_key",
        "sends private_key_jwt",
        "sends client_credentials",
        "issues client_credentials: ok",
        "token valid",
        "tools/call customer_briefing",
    ):
        assert shown in picture


async def test_metrics_count_tokens_fetched_cached_and_refused(
    briefing: list[SpanRecord], fresh_crm_mcp: Topology, capsys: pytest.CaptureFixture[str]
) -> None:
    topology = fresh_crm_mcp
    # The briefing (first call of this crm-mcp) fetched crm-mcp's token once; the auth-server issued it.
    fetched = {"side": "client", "grant": "client_credentials", "outcome": "ok"}
    assert metric(topology, "crm-mcp", "oauth_token_requests_total", **fetched) == 1
    issued = {"side": "server", "grant": "client_credentials", "outcome": "ok"}
    issued_before = metric(topology, "auth-server", "oauth_token_requests_total", **issued)
    assert issued_before >= 1
    hits = metric(topology, "crm-mcp", "oauth_token_cache_lookups_total", cache="client_credentials", result="hit")

    async with topology.user_session("alice") as alice:
        assert not (await alice.call_tool("list_customer_tickets", {"customer_id": "cus_001"})).is_error
    # Served from the cache: no new request, one more hit.
    assert metric(topology, "crm-mcp", "oauth_token_requests_total", **fetched) == 1
    assert metric(topology, "auth-server", "oauth_token_requests_total", **issued) == issued_before
    assert (
        metric(topology, "crm-mcp", "oauth_token_cache_lookups_total", cache="client_credentials", result="hit") > hits
    )
    assert metric(topology, "crm-mcp", "oauth_token_validations_total", outcome="valid", error="") >= 2
    assert metric(topology, "crm-mcp", "downstream_requests_total", pattern="api_key", outcome="2xx") >= 1
    duration = {"mcp_method_name": "tools/call", "gen_ai_tool_name": "customer_briefing", "error_type": ""}
    assert metric(topology, "crm-mcp", "mcp_server_operation_duration_seconds_count", **duration) == 1
    # `make trace` of that cached call names the briefing's trace as where the token was fetched.
    origin = f"in trace {briefing[0].trace_id}."
    deadline = time.monotonic() + POLL_SECONDS
    while True:
        make_trace(["--dir", str(topology.traces_dir), "--tool", "list_customer_tickets"])
        last_line = capsys.readouterr().out.strip().splitlines()[-1]
        if last_line.startswith("The client-credentials token came from crm-mcp's cache") and last_line.endswith(
            origin
        ):
            break
        assert time.monotonic() < deadline, last_line
        await anyio.sleep(0.2)

    # Refused: a token crm-api cannot verify, and a token request with a wrong client secret.
    refused = {"outcome": "refused", "error": "invalid_token"}
    refusals = metric(topology, "crm-api", "oauth_token_validations_total", **refused)
    response = httpx2.get(f"{topology.env['CRM_API_URL']}/customers", headers={"Authorization": "Bearer not.a.jwt"})
    assert response.status_code == 401
    assert metric(topology, "crm-api", "oauth_token_validations_total", **refused) == refusals + 1
    bad_client = {"side": "server", "grant": "client_credentials", "outcome": "invalid_client"}
    bad_before = metric(topology, "auth-server", "oauth_token_requests_total", **bad_client)
    response = httpx2.post(
        topology.env["AUTH_TOKEN_URL"],
        data={"grant_type": "client_credentials"},
        auth=(topology.env["CRM_MCP_CLIENT_ID"], "wrong-secret"),
    )
    assert response.status_code == 401
    assert metric(topology, "auth-server", "oauth_token_requests_total", **bad_client) == bad_before + 1


async def test_no_secret_in_any_span_or_metric(briefing: list[SpanRecord], fresh_crm_mcp: Topology) -> None:
    """Every trace file and every service's /metrics, after the whole integration suite ran traced."""
    topology = fresh_crm_mcp
    trace_files = sorted(topology.traces_dir.glob("*.jsonl"))
    # Every service the briefing crosses wrote spans (pattern 4's two run traced too, if a test used them).
    crossed = {"auth-server", "crm-mcp", "crm-api", "tickets-mcp", "weather-api"}
    assert crossed <= {path.stem for path in trace_files}, "a service the briefing crossed wrote no trace file"
    exported = [path.read_text(encoding="utf-8") for path in trace_files]
    exported += [httpx2.get(topology.metrics_url(name), timeout=5).text for name in topology.services]
    everything = "\n".join(exported)
    for name, value in topology.secrets.items():
        assert value not in everything, f"{name} appears in an exported span or metric"
    assert "eyJ" not in everything, "something JWT-shaped (a token) appears in an exported span or metric"
    # An Authorization header value ("Bearer <token>"); grant names such as ...:jwt-bearer are fine.
    assert re.search(r"\bbearer\s+[\w.~+/-]", everything, re.IGNORECASE) is None, (
        "an Authorization header value appears"
    )


def test_make_trace_lists_refused_tokens_with_the_reason(
    fresh_crm_mcp: Topology, capsys: pytest.CaptureFixture[str]
) -> None:
    response = httpx2.get(
        f"{fresh_crm_mcp.env['CRM_API_URL']}/customers", headers={"Authorization": "Bearer refused-for-this-test"}
    )
    assert response.status_code == 401
    topology = fresh_crm_mcp

    def listed() -> str:
        make_trace(["--dir", str(topology.traces_dir), "refused"])
        return capsys.readouterr().out

    deadline = time.monotonic() + POLL_SECONDS
    while "invalid_token: Token is not a JWS" not in (shown := listed()):
        assert time.monotonic() < deadline, shown
        time.sleep(0.2)
    assert "crm-api" in shown
    assert "refused-for-this-test" not in shown
