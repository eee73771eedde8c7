"""`make soak` runs end to end in a few seconds: every tool of patterns 1-4 is called (the calendar
connected once per user by the headless browser), no errors, memory per service, and crm-mcp's growth
checked against its bound (latencies are printed, never asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from devkit.services import SERVICES

from scripts.soak import CRM_MCP_GROWTH_BOUND_MIB, MIB, crm_mcp_growth

ROOT = Path(__file__).resolve().parents[2]
TOOLS = (
    "search_customers",
    "get_customer",
    "add_customer_note",
    "list_customer_tickets",
    "open_ticket",
    "get_weather",
    "customer_briefing",
    "list_my_meetings",
    "schedule_meeting",
)


def soak(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.soak", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_short_soak_calls_every_tool_without_errors_and_reports_memory() -> None:
    completed = soak(env={"SOAK_SECONDS": "3"})
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    output = completed.stdout
    assert "soaking for 3 s" in output
    for tool in TOOLS:
        row = re.search(rf"^{tool}\s+(\d+)\s+[\d.]+\s+[\d.]+$", output, re.MULTILINE)
        assert row is not None, f"no row for {tool}"
        assert int(row.group(1)) > 0
    assert re.search(r"^errors: 0$", output, re.MULTILINE)
    for service in SERVICES:
        assert re.search(rf"^{service.name}\s+[\d.]+\s+[\d.]+\s+[+-][\d.]+$", output, re.MULTILINE), service
    assert re.search(r"^crm-mcp RSS growth [+-][\d.]+ MiB, bound 10 MiB: met$", output, re.MULTILINE)


def test_crm_mcp_growth_at_or_over_the_bound_fails_the_soak() -> None:
    start = {"crm-mcp": 90 * MIB}
    under = {"crm-mcp": int((90 + CRM_MCP_GROWTH_BOUND_MIB - 0.1) * MIB)}
    at = {"crm-mcp": int((90 + CRM_MCP_GROWTH_BOUND_MIB) * MIB)}

    assert crm_mcp_growth(start, under) == (True, "crm-mcp RSS growth +9.9 MiB, bound 10 MiB: met")
    assert crm_mcp_growth(start, at) == (False, "crm-mcp RSS growth +10.0 MiB, bound 10 MiB: NOT MET")


def test_a_bad_duration_is_refused_before_anything_starts() -> None:
    completed = soak(env={"SOAK_SECONDS": "a minute"})
    assert completed.returncode == 2
    assert "SOAK_SECONDS must be a number of seconds" in completed.stderr
    assert soak("--seconds", "0").returncode == 2
