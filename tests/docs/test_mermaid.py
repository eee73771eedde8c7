"""Every Mermaid block in README.md and docs/*.md parses with the real Mermaid parser (Node, pinned in mermaid/).

Node and npm are required in CI (CI=true): there this test fails without them, because a diagram nobody
can parse is a diagram nobody checked. On a developer machine without Node it is skipped, loudly, so that
`make test` needs nothing but Python, make and git. The first run installs the pinned packages with `npm ci`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from tests.docs.markdown import ROOT, blocks, documentation_files

CHECKER = ROOT / "tests" / "docs" / "mermaid"

# A diagram that must be refused, and one that must be accepted, sent with the real ones every run:
# proof that the parser is really parsing (a stub that accepts everything would fail here).
BROKEN = "sequenceDiagram\n    participant A\n    A->>: an arrow without a target\n"
VALID = "flowchart LR\n    a[crm-mcp :8001] -->|token| b[(crm-api :8003)]\n"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None and not os.environ.get("CI"):
        pytest.skip(f"`{name}` is not on PATH: the Mermaid check needs Node.js 20+ with npm (CI runs it)")
    if path is None:
        pytest.fail(
            f"`{name}` is not on PATH. The Mermaid check needs Node.js 20+ with npm "
            "(https://nodejs.org); install it, then run `make test` again.",
            pytrace=False,
        )
    return path


def _installed() -> bool:
    """True if node_modules holds exactly the versions package.json pins."""
    pins = json.loads((CHECKER / "package.json").read_text(encoding="utf-8"))["dependencies"]
    for name, version in pins.items():
        manifest = CHECKER / "node_modules" / name / "package.json"
        if not manifest.is_file() or json.loads(manifest.read_text(encoding="utf-8"))["version"] != version:
            return False
    return True


def _install() -> None:
    """`npm ci` from the committed lock file, unless the pinned versions are installed (node_modules is git-ignored)."""
    if _installed():
        return
    completed = subprocess.run(
        [_tool("npm"), "ci", "--prefix", str(CHECKER), "--no-audit", "--no-fund"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if completed.returncode != 0:
        pytest.fail(f"npm ci in {CHECKER} failed:\n{completed.stderr[-3000:]}", pytrace=False)


def parse(diagrams: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Run tests/docs/mermaid/check.mjs over `diagrams` (name -> source); its verdict per name."""
    node = _tool("node")
    _install()
    payload = json.dumps([{"name": name, "text": text} for name, text in diagrams.items()])
    completed = subprocess.run(
        [node, str(CHECKER / "check.mjs")],
        input=payload,
        capture_output=True,
        text=True,
        cwd=CHECKER,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        pytest.fail(f"the Mermaid checker crashed:\n{completed.stderr[-3000:]}", pytrace=False)
    return {result["name"]: result for result in json.loads(completed.stdout)}


@pytest.fixture(scope="module")
def verdicts() -> dict[str, dict[str, Any]]:
    diagrams = {
        block.where: block.text
        for page in documentation_files()
        for block in blocks(page)
        if block.language == "mermaid"
    }
    return parse({**diagrams, "canary:broken": BROKEN, "canary:valid": VALID})


def test_the_parser_rejects_a_broken_diagram_and_accepts_a_valid_one(verdicts: dict[str, dict[str, Any]]) -> None:
    assert verdicts["canary:broken"]["ok"] is False
    assert "Parse error" in verdicts["canary:broken"]["error"]
    assert verdicts["canary:valid"] == {"name": "canary:valid", "ok": True, "type": "flowchart-v2"}


def test_every_documented_diagram_parses(verdicts: dict[str, dict[str, Any]]) -> None:
    failures = {
        name: result["error"]
        for name, result in verdicts.items()
        if not name.startswith("canary:") and not result["ok"]
    }
    assert failures == {}


def test_the_docs_have_the_promised_diagrams(verdicts: dict[str, dict[str, Any]]) -> None:
    """A topology diagram in the README and a sequence diagram on each pattern page."""
    kinds = {(name.split(":")[0], result.get("type")) for name, result in verdicts.items()}
    assert ("README.md", "flowchart-v2") in kinds
    for page in ("docs/api-key.md", "docs/client-credentials.md", "docs/token-cascade.md", "docs/third-party-oauth.md"):
        assert (page, "sequence") in kinds, f"{page} has no sequenceDiagram"
