"""`make trace`: draw one trace from the local trace files as a waterfall, with the credential of each hop.

Usage: python -m scripts.trace [TRACE_ID | refused] [--tool NAME] [--dir DIRECTORY]

Reads the OTLP JSON lines the services write to TRACES_DIR (.env; `make up` sets .run/traces) and prints
the latest trace of a `customer_briefing` call (or of --tool, or the trace whose id starts with
TRACE_ID): one line per span, indented under its parent, with its service, a bar placed on the trace's
time line, its duration, and what the auth attributes say about it (see docs/observability.md).
`refused` lists every refused token instead: when, which service, the RFC 6750 error, why, and the trace.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

from oauth_tokens.trace_file import SpanRecord, read_spans

from scripts.topology import Workspace, load_env
from scripts.topology_report import started_at

BAR_WIDTH = 32
NAME_WIDTH = 46


def traces_dir(workspace: Workspace) -> Path:
    """TRACES_DIR from .env (relative to the workspace), else .run/traces."""
    configured = load_env(workspace).get("TRACES_DIR") or ".run/traces"
    path = Path(configured)
    return path if path.is_absolute() else workspace.directory / path


def pick_trace(spans: list[SpanRecord], trace_id: str | None, tool: str) -> list[SpanRecord]:
    """The spans of the trace `trace_id` starts, else of the latest trace with an MCP server span for `tool`."""
    if trace_id:
        chosen = {span.trace_id for span in spans if span.trace_id.startswith(trace_id.lower())}
        if len(chosen) > 1:
            raise SystemExit(f"Trace id prefix {trace_id!r} matches {len(chosen)} traces; give more of it.")
    else:
        calls = [span for span in spans if span.kind == "server" and span.attributes.get("gen_ai.tool.name") == tool]
        chosen = {max(calls, key=lambda span: span.start_ns).trace_id} if calls else set()
    return [span for span in spans if span.trace_id in chosen]


def earlier_topology(spans: list[SpanRecord], topology_started: float | None) -> str | None:
    """A warning when the trace was recorded before the running topology started (kept by KEEP_DATA=1)."""
    recorded = min(span.start_ns for span in spans) / 1e9
    if topology_started is None or recorded >= topology_started:
        return None
    clock = "%Y-%m-%d %H:%M:%S"
    return (
        f"Note: an EARLIER topology's trace, recorded {time.strftime(clock, time.localtime(recorded))}, before "
        f"the running one started ({time.strftime(clock, time.localtime(topology_started))}). "
        "make demo records a fresh one."
    )


def credential(span: SpanRecord) -> str:
    """What this span says about credentials: sent (client), checked (server), issued or cached."""
    attributes = span.attributes
    facts: list[str] = []
    if "auth.credential.kind" in attributes:
        kind = attributes["auth.credential.kind"]
        facts.append(
            f"sends {kind if kind != 'none' else 'no credential'}" if span.kind == "client" else f"caller {kind}"
        )
    if "auth.token.validation" in attributes:
        facts.append(f"token {attributes['auth.token.validation']}")
    if attributes.get("auth.token.error"):
        facts.append(f"{attributes['auth.token.error']}: {attributes.get('auth.token.refused_reason', '')}")
    if "auth.grant_type" in attributes:
        facts.append(f"issues {attributes['auth.grant_type']}: {attributes.get('auth.token_outcome', '?')}")
    if "auth.token_cache" in attributes:
        facts.append(f"token cache {attributes['auth.token_cache']}")
    if "auth.jwks_fetch" in attributes:
        facts.append(f"JWKS fetch {attributes['auth.jwks_fetch']}")
    if attributes.get("auth.scopes.missing"):
        facts.append(f"missing scope {' '.join(attributes['auth.scopes.missing'])}")
    return ", ".join(facts)


def waterfall(spans: list[SpanRecord]) -> list[str]:
    """The lines of the picture: spans depth-first under their parents, children in start order."""
    ids = {span.span_id for span in spans}
    children: dict[str | None, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        children[span.parent_id if span.parent_id in ids else None].append(span)
    start = min(span.start_ns for span in spans)
    total = max(max(span.end_ns for span in spans) - start, 1)
    lines: list[str] = []

    def draw(span: SpanRecord, prefix: str, last: bool, depth: int) -> None:
        branch = "" if depth == 0 else ("└─ " if last else "├─ ")
        label = (prefix + branch + span.name)[:NAME_WIDTH]
        offset = round((span.start_ns - start) / total * BAR_WIDTH)
        width = max(1, round((span.end_ns - span.start_ns) / total * BAR_WIDTH))
        bar = (" " * offset + "█" * width)[:BAR_WIDTH].ljust(BAR_WIDTH)
        error = " ✗" if span.status_code == 2 else ""
        lines.append(
            f"{span.service:<12} {label:<{NAME_WIDTH}} {bar} {span.duration_ms:8.1f} ms{error}  {credential(span)}"
        )
        kids = sorted(children.get(span.span_id, []), key=lambda child: child.start_ns)
        extension = "" if depth == 0 else ("   " if last else "│  ")
        for index, child in enumerate(kids):
            draw(child, prefix + extension, index == len(kids) - 1, depth + 1)

    for root in sorted(children[None], key=lambda span: span.start_ns):
        draw(root, "", True, 0)
    return lines


def refusals(spans: list[SpanRecord]) -> list[str]:
    """One line per span that refused a token, oldest first: time, service, span, error, reason, trace id."""
    refused = sorted(
        (span for span in spans if span.attributes.get("auth.token.validation") == "refused"),
        key=lambda span: span.start_ns,
    )
    return [
        f"{time.strftime('%H:%M:%S', time.localtime(span.start_ns / 1e9))} {span.service:<12} {span.name:<24} "
        f"{span.attributes.get('auth.token.error', '')}: {span.attributes.get('auth.token.refused_reason', '')}"
        f"  (trace {span.trace_id})"
        for span in refused
    ]


# What a client presents at a token endpoint (TokenEndpoint.credential_kind).
CLIENT_CREDENTIAL_KINDS = ("client_secret", "private_key_jwt")


def token_origin(spans: list[SpanRecord], trace: list[SpanRecord]) -> tuple[str, list[SpanRecord]] | None:
    """For a trace that used a cached client-credentials token: where that token was fetched, if known.

    Returns a sentence naming that trace and the spans of the token request (crm-mcp's client span and
    everything under it, the auth-server's /token among them), so the token endpoint hop can be drawn too.
    """
    if any(span.attributes.get("auth.credential.kind") in CLIENT_CREDENTIAL_KINDS for span in trace):
        return None  # fetched in this very trace
    if not any(span.attributes.get("auth.token_cache") == "hit" for span in trace):
        return None
    start = min(span.start_ns for span in trace)
    fetches = [
        span
        for span in spans
        if span.kind == "client"
        and span.attributes.get("auth.credential.kind") in CLIENT_CREDENTIAL_KINDS
        and span.start_ns < start
    ]
    if not fetches:
        return None
    fetch = max(fetches, key=lambda span: span.start_ns)
    when = time.strftime("%H:%M:%S", time.localtime(fetch.start_ns / 1e9))
    hop, frontier = [fetch], {fetch.span_id}
    while frontier:
        below = [span for span in spans if span.trace_id == fetch.trace_id and span.parent_id in frontier]
        hop += below
        frontier = {span.span_id for span in below}
    sentence = (
        f"The client-credentials token came from {fetch.service}'s cache: fetched at {when} in trace {fetch.trace_id}."
    )
    return sentence, hop


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="make trace", description=__doc__.splitlines()[0])
    parser.add_argument("trace_id", nargs="?", help="a trace id (or its first characters), or refused")
    parser.add_argument("--tool", default="customer_briefing", help="the MCP tool whose latest call to draw")
    parser.add_argument("--dir", type=Path, help="the trace files' directory (default: TRACES_DIR from .env)")
    args = parser.parse_args(argv)
    workspace = Workspace.from_environment()
    directory = args.dir or traces_dir(workspace)
    if not directory.is_dir():
        print(f"No trace files in {directory}: set TRACES_DIR in .env, run make up, then make demo.")
        return 1
    if args.trace_id == "refused":
        lines = refusals(read_spans(directory))
        print("\n".join(lines) if lines else f"No refused token in {directory}.")
        return 0
    everything = read_spans(directory)
    spans = pick_trace(everything, args.trace_id, args.tool)
    if not spans and args.trace_id:
        print(
            f"Unknown trace id {args.trace_id!r}: no trace in {directory} starts with it. "
            f"`make trace` draws the latest {args.tool} call; `make trace TRACE=refused` lists refused tokens."
        )
        return 1
    if not spans:
        print(f"No call of {args.tool} in {directory}: run make demo first (spans are written within a second).")
        return 1
    duration = (max(span.end_ns for span in spans) - min(span.start_ns for span in spans)) / 1e6
    services = sorted({span.service for span in spans})
    print(f"Trace {spans[0].trace_id}: {len(spans)} spans across {', '.join(services)}, {duration:.1f} ms")
    if (note := earlier_topology(spans, started_at(workspace.settings_file))) is not None:
        print(note)
    print(f"{'service':<12} {'span':<{NAME_WIDTH}} {'time line':<{BAR_WIDTH}} {'duration':>11}  credential")
    print("\n".join(waterfall(spans)))
    if (origin := token_origin(everything, spans)) is not None:
        sentence, hop = origin
        print("The token endpoint hop, from the call that fetched the token this trace used from the cache:")
        print("\n".join(waterfall(hop)))
        print(sentence)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
