"""`make bench` still runs and prints every row with its target and mark, and its profiles (tiny run counts;
no timing checked); `--repeat` prints each ratio's figures over the runs and how many met the target."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.bench.__main__ import parse_arguments
from scripts.bench.measure import Count, Ratio, Target
from scripts.bench.report import print_spread

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
    "bare MCP hop, search_customers' result vs no-op (the SDK's)",
    "tool via crm-mcp vs same-result bare hop + direct call",
    "cached client-credentials token vs a token request per call",
    "naive client + token cache, vs naive",
    "naive client + connection reuse, vs naive",
    "naive client + session reuse, vs naive",
    "naive client + concurrent branches, vs naive",
    "naive client + all four choices, vs naive",
)


def test_bench_prints_every_row_target_and_mark() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "scripts.bench", "--quick", "--profile"],
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
    # Each profile: calls per operation, then cProfile's table (its header row and at least one function).
    for title in ("shared validator, first-seen tokens", "bare PyJWT jwt.decode", "crm-mcp", "bare server"):
        assert re.search(
            rf"^  {re.escape(title)}: \d+ function calls .*\n\s+ncalls\s+tottime.*\n\s+\d", output, re.M
        ), f"no profile of {title}"
    # The closing line counts exactly the NOT MET marks of the table.
    not_met = sum(line.endswith("NOT MET") for line in output.splitlines())
    assert (f"{not_met} target(s) NOT MET" in output) if not_met else ("Every target met." in output)


TARGET = Target("<=", 1.2)


def _ratio(value: float, target: Target | None = TARGET) -> Ratio:
    return Ratio("targeted" if target else "informative", 1.0, 1.0, "ms", value, target)


def test_repeat_prints_every_runs_figure_the_spread_and_the_runs_met(capsys: pytest.CaptureFixture[str]) -> None:
    runs = [[_ratio(1.10), _ratio(0.5, None)], [_ratio(1.25), _ratio(0.7, None)], [_ratio(1.18), _ratio(0.6, None)]]
    counts = [[Count("token requests", 1, Target("==", 1))], [Count("token requests", 2, Target("==", 1))]] * 2
    print_spread(runs, counts[:3])
    lines = capsys.readouterr().out.splitlines()
    assert "Over 3 runs" in lines[1]
    assert re.search(r"1\.10x  1\.25x  1\.18x  spread 1\.10x-1\.25x  target <= 1\.2: met in 2 of 3 runs$", lines[2])
    assert lines[3].endswith("0.50x  0.70x  0.60x  spread 0.50x-0.70x")  # informative: no target, no count
    assert lines[4].endswith("1  2  1  target == 1: met in 2 of 3 runs")


def test_make_bench_passes_repeat_and_profile() -> None:
    dry_run = subprocess.run(
        ["make", "-n", "bench", "REPEAT=3", "PROFILE=1"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "python -m scripts.bench --repeat 3 --profile" in dry_run
    assert parse_arguments(["--repeat", "3"]).repeat == 3
    with pytest.raises(SystemExit):
        parse_arguments(["--repeat", "0"])
