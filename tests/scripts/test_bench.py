"""`make bench` still runs and prints every row with its target and mark (tiny run counts; no timing checked)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROWS = (
    "validate JWT, repeated token (verified-token cache)",
    "validate JWT, bare PyJWT decode",
    "client-credentials token, from the token endpoint",
    "client-credentials token, cached",
    "tool get_weather",
    "tool list_customer_tickets",
    "tool search_customers (pattern 3",
    "tool customer_briefing",
    "10 concurrent callers",
    "tracing off",
    "tracing on",
)
# Ratio and count rows with a target: each must end with its mark.
TARGETED = (
    "shared validator vs bare PyJWT decode, first-seen token",
    "verified-token cache vs bare PyJWT decode, repeated token",
    "tool via crm-mcp vs bare MCP hop + direct crm-api call",
    "callers: this project vs naive client",
    "token-endpoint requests, 100 concurrent calls, fresh crm-mcp",
    "JWKS requests, next 100 concurrent calls (warm)",
)
INFORMATIVE = (
    "shared validator vs PyJWT + PyJWKClient key lookup, first-seen",
    "cached client-credentials token vs a token request per call",
    "naive client + token cache, vs naive",
    "naive client + connection reuse, vs naive",
    "naive client + session reuse, vs naive",
    "naive client + concurrent branches, vs naive",
    "naive client + all four choices, vs naive",
)


def test_bench_prints_every_row_target_and_mark() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "scripts.bench", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = completed.stdout
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "p50 ms" in output
    for row in (*ROWS, *INFORMATIVE):
        assert row in output, f"no row for {row!r}"
    for row in TARGETED:
        line = next((line for line in output.splitlines() if row in line), None)
        assert line is not None, f"no row for {row!r}"
        assert re.search(r"(<=|>=|==) [\d.]+\s+(met|NOT MET)$", line), f"no target and mark in {line!r}"
    for callers in (1, 2, 4, 8):
        assert re.search(rf"^\s+{callers}\s+\d+\s+\d+\s+[\d.]+x", output, re.MULTILINE), f"no scaling row {callers}"
    # The closing line counts exactly the NOT MET marks of the table.
    not_met = sum(line.endswith("NOT MET") for line in output.splitlines())
    assert (f"{not_met} target(s) NOT MET" in output) if not_met else ("Every target met." in output)
