"""Runs the official MCP conformance suite (@modelcontextprotocol/conformance, pinned in package.json).

The suite is a Node.js 22 command-line tool: `client` starts its own mock authorization server and MCP
server for one scenario and runs a client command (one of adapters/) against them; `authorization` plays
an OAuth client against a real authorization server. Each run writes its checks to checks.json; a run
passes when the CLI exits 0 and no check failed. The suite's own output is kept to explain a failure.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.docs.markdown import ROOT
from tests.support.node import node_for, npm_ci

__all__ = ["ADAPTERS", "SUITE_DIR", "ConformanceSuite", "SuiteRun"]

SUITE_DIR = Path(__file__).parent
ADAPTERS = "tests.conformance.adapters"
PURPOSE = "The MCP conformance suite (@modelcontextprotocol/conformance)"
CLI = SUITE_DIR / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
NODE_MAJOR = 22  # the suite imports fs.globSync (Node.js 22+); its dependency content-type 3.1 asks for 22 too
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class SuiteRun:
    """One CLI run: its exit code, its output (colours removed) and the checks it wrote."""

    returncode: int
    output: str
    checks: list[dict[str, Any]]
    client_stderr: str = ""  # a client scenario's adapter: what it wrote to stderr (its traceback, if any)

    def failures(self) -> list[dict[str, Any]]:
        return [check for check in self.checks if check["status"] == "FAILURE"]

    def successes(self) -> list[dict[str, Any]]:
        return [check for check in self.checks if check["status"] == "SUCCESS"]

    def assert_passed(self) -> None:
        """Fails the test with the suite's own report unless every check passed (and at least one ran)."""
        if self.returncode != 0 or self.failures() or not self.successes():
            adapter = f"\n--- the adapter's stderr ---\n{self.client_stderr[-4000:]}" if self.client_stderr else ""
            pytest.fail(f"the conformance suite reports a failure (exit {self.returncode}):\n{self.output}{adapter}")


class ConformanceSuite:
    """The installed suite and the Node.js that runs it."""

    def __init__(self) -> None:
        npm_ci(SUITE_DIR, PURPOSE)
        self.node = node_for(SUITE_DIR, PURPOSE, minimum_major=NODE_MAJOR)

    def run(self, arguments: list[str], results: Path, *, timeout_seconds: float = 120) -> SuiteRun:
        """`conformance <arguments> -o <results>`, from the repository root; its checks from `results`."""
        completed = subprocess.run(
            [self.node, str(CLI), *arguments, "--output-dir", str(results)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_seconds,
            check=False,
        )
        output = _ANSI.sub("", completed.stdout + completed.stderr)
        checks = [check for found in sorted(results.rglob("checks.json")) for check in json.loads(found.read_text())]
        stderr = "".join(found.read_text() for found in sorted(results.rglob("stderr.txt")))
        return SuiteRun(completed.returncode, output, checks, stderr)

    def client(self, scenario: str, adapter: str, results: Path) -> SuiteRun:
        """A client scenario: the suite's mock servers against `python -m tests.conformance.adapters.<adapter>`."""
        # The CLI splits the command at spaces and runs it in a shell, so neither part may hold one.
        command = [sys.executable, "-m", f"{ADAPTERS}.{adapter}"]
        if any(" " in part for part in command):
            pytest.fail(f"the conformance CLI cannot run a command with a space in it: {command}")
        return self.run(["client", "--scenario", scenario, "--command", shlex.join(command)], results)

    def authorization(
        self,
        arguments: list[str],
        results: Path,
        *,
        authorization_endpoint: str,
        visit: Callable[[str], None],
        timeout_seconds: float = 60,
    ) -> SuiteRun:
        """`conformance authorization <arguments>`, every scenario in order (each gets the ones before's results).

        The authorization-code scenario prints an authorization URL for a person to open in a browser and
        waits for the redirect to its callback server; `visit(url)` plays that person (the project's
        headless login). The run is killed after `timeout_seconds` (the suite itself would wait 5 minutes).
        """
        command = [self.node, str(CLI), "authorization", *arguments, "--output-dir", str(results)]
        lines: list[str] = []
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        timed_out = threading.Event()

        def stop() -> None:
            timed_out.set()
            process.kill()

        watchdog = threading.Timer(timeout_seconds, stop)
        watchdog.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(_ANSI.sub("", line))
                if line.startswith(authorization_endpoint + "?"):
                    try:
                        visit(line.strip())
                    except Exception as error:  # reported with the suite's output, the suite stopped
                        lines.append(f"\n(the person at the browser failed: {error!r}; the suite was stopped)\n")
                        process.kill()
            returncode = process.wait()
        finally:
            watchdog.cancel()
            process.kill()
        if timed_out.is_set():
            lines.append(f"\n(killed: no end within {timeout_seconds:g} s)\n")
        checks = [check for found in sorted(results.rglob("checks.json")) for check in json.loads(found.read_text())]
        return SuiteRun(returncode, "".join(lines), checks)
