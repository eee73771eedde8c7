"""docs/scale-out.md's commands against the scaled topology, and `make demo` (scripts.demo) through HAProxy.

tests/docs/test_commands.py runs the other pages' commands against the single-instance topology and
lists these as run here (NOT_RUN, reason SCALED); this module runs every non-`make` command of
docs/scale-out.md as a reader would after `make up REPLICAS=3`, ports rewritten to the test's.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

import anyio
import pytest
from devkit.scaled import ScaledTopology

from scripts.demo import run_demo
from tests.docs.markdown import ROOT, blocks
from tests.docs.test_commands import NOT_RUN, SCALED, commands_in, make_targets_of

PAGE = ROOT / "docs" / "scale-out.md"
PORTS = {8001: "CRM_MCP_PORT", 8404: "HAPROXY_STATS_PORT"}


def page_commands() -> list[str]:
    return [
        command.text
        for block in blocks(PAGE)
        if block.language in ("bash", "sh", "shell", "console")
        for command in commands_in(block)
        if make_targets_of(command.text) is None
    ]


def run(command: str, scaled: ScaledTopology, directory: Path) -> subprocess.CompletedProcess[str]:
    for port, variable in PORTS.items():
        command = command.replace(f"localhost:{port}", f"127.0.0.1:{scaled.env[variable]}")
    env = {"PATH": os.environ["PATH"], "HOME": str(directory)}
    return subprocess.run(["bash", "-c", command], cwd=directory, env=env, capture_output=True, text=True, timeout=30)


def test_every_command_of_the_page_is_listed_as_run_here() -> None:
    assert page_commands(), "docs/scale-out.md lost its commands"
    assert all(NOT_RUN.get(command) == SCALED for command in page_commands())


def test_the_page_shows_round_robin_and_haproxys_view(scaled: ScaledTopology, tmp_path: Path) -> None:
    served, stats = (run(command, scaled, tmp_path) for command in page_commands())
    assert served.returncode == 0, served.stderr
    names = [line.split(":", 1)[1].strip() for line in served.stdout.splitlines()]
    assert len(names) == 4
    assert set(names) <= {"crm-mcp-1", "crm-mcp-2", "crm-mcp-3"}
    assert all(a != b for a, b in itertools.pairwise(names)), names
    assert stats.returncode == 0, stats.stderr
    assert stats.stdout.split() == ["crm-mcp,crm-mcp-1,UP", "crm-mcp,crm-mcp-2,UP", "crm-mcp,crm-mcp-3,UP"]


def test_make_demo_passes_against_the_scaled_topology(
    scaled: ScaledTopology, capsys: pytest.CaptureFixture[str]
) -> None:
    anyio.run(run_demo, scaled.env)  # what `make demo` runs; raises DemoFailure if any of its checks fails
    assert capsys.readouterr().out.count("✓") >= 6
