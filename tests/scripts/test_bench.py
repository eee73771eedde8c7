"""`make bench` still runs end to end and prints every row (with tiny run counts; numbers are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROWS = (
    "validate JWT",
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


def test_bench_prints_a_row_for_every_measurement() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "scripts.bench", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    for row in ROWS:
        assert row in completed.stdout, f"no row for {row!r}"
    assert "p50 ms" in completed.stdout
