"""Every Mermaid block in README.md and docs/*.md parses with the real Mermaid parser (Node, pinned in mermaid/).

Node and npm are required in CI (CI=true): there this test fails without them, because a diagram nobody
can parse is a diagram nobody checked. On a developer machine without Node it is skipped, loudly, so that
`make test` needs nothing but Python, make and git. The first run installs the pinned packages with `npm ci`.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.docs.markdown import ROOT, blocks, documentation_files
from tests.support.node import node_tool, npm_ci

CHECKER = ROOT / "tests" / "docs" / "mermaid"
PURPOSE = "The Mermaid check"

# A diagram that must be refused, and one that must be accepted, sent with the real ones every run:
# proof that the parser is really parsing (a stub that accepts everything would fail here).
BROKEN = "sequenceDiagram\n    participant A\n    A->>: an arrow without a target\n"
VALID = "flowchart LR\n    a[crm-mcp :8001] -->|token| b[(crm-api :8003)]\n"


def parse(diagrams: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Run tests/docs/mermaid/check.mjs over `diagrams` (name -> source); its verdict per name."""
    node = node_tool("node", PURPOSE)
    npm_ci(CHECKER, PURPOSE)
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
