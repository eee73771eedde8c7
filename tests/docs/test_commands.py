"""Every command shown in README.md and docs/*.md is a real make target, is run here, or is allow-listed with a reason.

Commands come from fenced `bash`, `sh`, `shell` and `console` blocks (`console`: only `$ ` lines). They are
run as a reader would run them from the repository root after `make up`: in a directory holding a `.env`
with the topology's settings, in bash, with `.env` loaded (`set -a; . ./.env; set +a`, which the docs show
too), against seven real services started on free loopback ports. `localhost:<default port>` in a command
is rewritten to the test's port; nothing else is changed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from devkit.topology import Topology, running_topology

from scripts.demo import run_demo
from tests.docs.expected_output import RUN, Run
from tests.docs.markdown import ROOT, Block, blocks, documentation_files

SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "console"})
DEFAULT_PORTS = {
    9000: "AUTH_SERVER_PORT",
    8001: "CRM_MCP_PORT",
    8002: "TICKETS_MCP_PORT",
    8003: "CRM_API_PORT",
    8004: "WEATHER_API_PORT",
    9401: "CRM_MCP_METRICS_PORT",
}


@dataclass(frozen=True)
class Command:
    """One command as the docs show it (continuation lines joined) and where."""

    text: str
    where: str


def commands_in(block: Block) -> list[Command]:
    """The commands of a shell block: every non-comment line (`$ ` lines only in console blocks)."""
    commands: list[Command] = []
    pending = ""
    start = 0
    for offset, raw in enumerate(block.text.splitlines(), start=1):
        line = raw.strip()
        if block.language == "console":
            if not pending and not line.startswith("$ "):
                continue
            line = line.removeprefix("$ ")
        if not pending and (not line or line.startswith("#")):
            continue
        if not pending:
            start = offset
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        commands.append(Command(pending + line, f"{block.where}+{start}"))
        pending = ""
    return commands


def documented_commands() -> list[Command]:
    return [
        command
        for page in documentation_files()
        for block in blocks(page)
        if block.language in SHELL_LANGUAGES
        for command in commands_in(block)
    ]


def make_targets_of(command: str) -> list[str] | None:
    """The targets of a `make` command (variables and options dropped), or None if it is not one."""
    words = shlex.split(command, comments=True)
    if not words or words[0] != "make":
        return None
    return [word for word in words[1:] if "=" not in word and not word.startswith("-")]


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-zA-Z0-9_-]+):", text, flags=re.MULTILINE))


# Which test or CI step exercises each make target (a documented target must be listed here).
MAKE_TARGETS_EXERCISED_BY = {
    "help": "tests/docs/test_commands.py::test_make_help_output_matches_the_readme runs it",
    "install": "every other target depends on it; CI runs it through `make lint` and `make test` (.ci/run)",
    "up": "tests/scripts/test_topology.py runs what it runs locally (`python -m scripts.topology up`) in a "
    "scratch directory on free ports; the Docker path (`docker compose build`, then `up --wait`) is proven by hand; "
    "`REPLICAS=N` runs devkit.scaled_layout's layout, which tests/scaleout starts on free ports (make demo "
    "included: tests/scaleout/test_docs_commands.py)",
    "down": "tests/scripts/test_topology.py, as for `up`",
    "logs": "not run: `tail -F` never ends",
    "demo": "tests/docs/test_commands.py::test_make_demo_passes_against_a_fresh_topology runs "
    "scripts.demo.run_demo, what `make demo` runs, against a topology on free ports; "
    "tests/integration/test_token_exchange.py::test_make_demo_narrates_the_exchange runs it in exchange mode",
    "trace": "tests/integration/test_telemetry.py runs scripts.trace.main, what `make trace` runs, on the "
    "trace files of the traced test topology",
    "test": "CI: .ci/run",
    "lint": "CI: .ci/run",
    "fmt": "not run in CI (it rewrites files); `make lint` checks the same rules",
    "bench": "tests/scripts/test_bench.py runs it with tiny run counts (`--quick`); timings are never asserted",
    "soak": "tests/scripts/test_soak.py runs it for 3 seconds (SOAK_SECONDS=3) on its own topology",
    "rotate-keys": "what it runs, `python -m auth_server.keys rotate`, is run by tests/auth_server/test_rotation.py",
    "rotate-client": "what it runs, `python -m crm_mcp.client_keys rotate`, is run by "
    "tests/crm_mcp/test_client_identity.py",
    "clean": "not run: it deletes .venv",
}

SCALED = "needs the scaled topology: run against it by tests/scaleout/test_docs_commands.py"
# Commands the docs show that no test can run here, and why.
NOT_RUN = {
    "npx @modelcontextprotocol/inspector": "an interactive web UI that needs a browser and a person to click",
    "claude mcp add --transport http crm http://localhost:8001/mcp": "needs Claude Code installed and "
    "writes to the user's Claude Code configuration",
    "for i in 1 2 3 4; do curl -s -o /dev/null -D - http://localhost:8001/health | grep -i '^x-served-by'; done": (
        SCALED
    ),
    "curl -s 'http://localhost:8404/;csv' | cut -d, -f1,2,18 | grep '^crm-mcp,crm-mcp-'": SCALED,
    "docker run --rm -p 16686:16686 -p 4318:4318 jaegertracing/all-in-one": "needs Docker and pulls an image; "
    "the tests read the trace files instead (tests/integration/test_telemetry.py)",
    **{
        command: "needs Docker, kind or a Kubernetes cluster (none here); tests/deploy checks the manifests these "
        "commands apply: schemas, the renderer against kubectl kustomize, the security defaults, the migrate phase"
        for command in (
            "docker compose build",
            "kind create cluster --name mcp",
            "kind load docker-image --name mcp mcp-downstream-auth-auth-server mcp-downstream-auth-crm-mcp "
            "mcp-downstream-auth-tickets-mcp mcp-downstream-auth-crm-api mcp-downstream-auth-weather-api "
            "mcp-downstream-auth-calendar-api",
            "kubectl apply -k deploy/kubernetes/overlays/local -l mcp-downstream-auth/phase=migrate",
            "uv run --frozen python -m scripts.k8s_secrets | kubectl create -f -",
            "kubectl -n mcp wait --for=condition=complete job --all --timeout=300s",
            "kubectl apply -k deploy/kubernetes/overlays/local",
            "kubectl -n mcp rollout status deployment --timeout=300s",
            "kubectl -n mcp port-forward svc/auth-server 9000:9000 &",
            "kubectl -n mcp port-forward svc/crm-mcp 8001:8001 &",
            "kubectl -n mcp port-forward svc/calendar-auth-server 9001:9001 &",
            "kubectl apply -k deploy/kubernetes/overlays/production -l mcp-downstream-auth/phase=migrate",
            "kubectl -n mcp wait --for=condition=complete job --all --timeout=600s",
            "kubectl apply -k deploy/kubernetes/overlays/production",
            "kubectl -n mcp delete job -l app.kubernetes.io/name=migrate",
            "kubectl -n mcp exec deploy/auth-server -- python -m auth_server.keys rotate",
            "kubectl -n mcp exec deploy/crm-mcp -- python -m crm_mcp.client_keys rotate",
            "kubectl -n mcp rollout restart deployment/auth-server deployment/crm-mcp",
            "docker compose --profile scaled up --wait scaled-lb",
            "docker compose --profile scaled up",
        )
    },
    "uv run --frozen python -m scripts.k8s_manifests render deploy/kubernetes/overlays/production": "runs from the "
    "repository root (the commands' reader directory holds only .env); tests/deploy/test_manifests.py compares "
    "what it prints (scripts.k8s_manifests.render) with kubectl kustomize",
}


# --- Static checks (no services needed) ------------------------------------------------------------------


def test_every_documented_command_is_a_make_target_run_or_not_run_for_a_reason() -> None:
    unaccounted = [
        f"{command.where}: {command.text}"
        for command in documented_commands()
        if make_targets_of(command.text) is None and command.text not in RUN and command.text not in NOT_RUN
    ]
    assert unaccounted == [], "add each to RUN (with what it must show) or NOT_RUN (with why)"


def test_documented_make_targets_exist_and_say_how_they_are_exercised() -> None:
    existing = makefile_targets()
    for command in documented_commands():
        targets = make_targets_of(command.text)
        if targets is None:
            continue
        assert targets, f"{command.where}: `make` without a target"
        for target in targets:
            assert target in existing, f"{command.where}: no target {target!r} in the Makefile"
            assert target in MAKE_TARGETS_EXERCISED_BY, f"{command.where}: say what exercises `make {target}`"


def test_ci_runs_the_targets_said_to_run_in_ci() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for target, how in MAKE_TARGETS_EXERCISED_BY.items():
        if how.startswith("CI:"):
            assert re.search(rf"^make {re.escape(target)}$", ci, flags=re.MULTILINE), f"make {target} not in .ci/run"


def test_no_stale_entries() -> None:
    shown = {command.text for command in documented_commands()}
    assert set(RUN) - shown == set(), "RUN has commands the docs no longer show"
    assert set(NOT_RUN) - shown == set(), "NOT_RUN has commands the docs no longer show"
    assert set(MAKE_TARGETS_EXERCISED_BY) == makefile_targets(), "keep MAKE_TARGETS_EXERCISED_BY in step"


def test_command_extraction_joins_continuations_and_reads_console_prompts() -> None:
    bash = Block(ROOT / "x.md", 1, "bash", "# comment\ncurl -s \\\n  -d a=b \\\n  http://x\n\nmake up   # start\n")
    console = Block(ROOT / "x.md", 1, "console", "$ make test\noutput line\n$ make demo\n")
    assert [c.text for c in commands_in(bash)] == ["curl -s -d a=b http://x", "make up   # start"]
    assert [c.text for c in commands_in(console)] == ["make test", "make demo"]
    assert make_targets_of("make up USE_DOCKER=0   # local") == ["up"]
    assert make_targets_of("curl -s http://x") is None


def _make() -> str:
    make = shutil.which("make")
    if make is None:
        pytest.fail("`make` is not on PATH; the docs show make targets, so the check needs it", pytrace=False)
    return make


def test_make_help_output_matches_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = re.search(r"<!-- make help:[^>]*-->\s*```text\n(?P<body>.*?)\n```", readme, flags=re.DOTALL)
    assert shown is not None, "README.md lost its marked `make help` block"
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAKE")}
    completed = subprocess.run(
        [_make(), "--no-print-directory", "-s", "help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    actual = re.sub(r"\x1b\[[0-9;]*m", "", completed.stdout)
    assert [line.rstrip() for line in shown["body"].splitlines()] == [line.rstrip() for line in actual.splitlines()]


# --- Against a running topology ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    with running_topology(tmp_path_factory.mktemp("docs-topology")) as running:
        yield running


@pytest.fixture(scope="module")
def reader_directory(topology: Topology, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the commands run: like the repository root after `make up`, a `.env` with every setting."""
    directory = tmp_path_factory.mktemp("reader")
    (directory / ".env").write_text("".join(f"{key}={value}\n" for key, value in topology.env.items()))
    (directory / ".venv").symlink_to(ROOT / ".venv")  # the repository's virtualenv, as after `make up`
    return directory


@pytest.fixture(scope="module")
def alice_token(topology: Topology) -> str:
    """alice's access token for crm-mcp, from the real login flow (the docs ask the reader for ALICE_TOKEN)."""
    return anyio.run(topology.user_token, "alice")


def for_this_topology(command: str, env: dict[str, str]) -> str:
    for port, variable in DEFAULT_PORTS.items():
        command = command.replace(f"localhost:{port}", f"127.0.0.1:{env[variable]}")
    return command


@pytest.mark.parametrize("command", list(RUN), ids=[re.sub(r"\W+", "-", command)[:60].strip("-") for command in RUN])
def test_documented_command_works(command: str, topology: Topology, reader_directory: Path, alice_token: str) -> None:
    if command.startswith("curl") and shutil.which("curl") is None:
        pytest.fail("the docs show curl commands; install curl to check them", pytrace=False)
    script = f"set -a; . ./.env; set +a\n{for_this_topology(command, topology.env)}\n"
    env = {"PATH": os.environ["PATH"], "HOME": str(reader_directory), "ALICE_TOKEN": alice_token}
    completed = subprocess.run(
        ["bash", "-c", script], cwd=reader_directory, env=env, capture_output=True, text=True, timeout=30
    )
    RUN[command](Run(completed, topology))


def test_make_demo_passes_against_a_fresh_topology(topology: Topology, capsys: pytest.CaptureFixture[str]) -> None:
    anyio.run(run_demo, topology.env)  # raises DemoFailure if any check of the demo fails
    narration = capsys.readouterr().out
    assert narration.count("✓") >= 6
    assert "tickets-mcp refuses alice's token (wrong audience)" in narration
    assert "CRM_API_AUTH_MODE=cascade" in narration
    assert "make up CRM_API_AUTH_MODE=exchange" in narration
    assert "open_ticket adds one ticket on every run" in narration
    assert "Pattern 5 — enterprise-managed cross-app access" in narration
    assert "the same ID-JAG presented again is refused (jti replay)" in narration
    # The README's order, and in the cascade no "actor=None": what the missing actor means, said.
    headings = [narration.index(f"\nPattern {number} — ") for number in (1, 2, 3, 4, 5)]
    assert headings == sorted(headings)
    assert "actor=None" not in narration
    assert "which names no one acting for her" in narration
    # A second run says which tickets earlier runs left, so its counts do not drift unexplained.
    anyio.run(run_demo, topology.env)
    assert "1 of them opened by earlier make demo runs" in capsys.readouterr().out
