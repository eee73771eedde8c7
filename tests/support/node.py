"""Node.js for the tests that need a real JavaScript tool (the Mermaid parser, oidc-provider).

Node and npm are required in CI (CI=true): there a test that needs them fails without them. On a developer
machine without Node such a test is skipped, loudly, so that `make test` needs nothing but Python, make and
git. Packages are pinned in a folder's package.json and package-lock.json and installed with `npm ci` on
first use (node_modules is git-ignored).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["node_tool", "npm_ci"]


def node_tool(name: str, purpose: str) -> str:
    """The path of `name` (node or npm); skips the test outside CI when it is missing, fails it in CI."""
    path = shutil.which(name)
    if path is None and not os.environ.get("CI"):
        pytest.skip(f"`{name}` is not on PATH: {purpose} needs Node.js 20+ with npm (CI runs it)")
    if path is None:
        pytest.fail(
            f"`{name}` is not on PATH. {purpose} needs Node.js 20+ with npm (https://nodejs.org); "
            "install it, then run `make test` again.",
            pytrace=False,
        )
    return path


def _installed(folder: Path) -> bool:
    """True if node_modules holds exactly the versions package.json pins."""
    pins = json.loads((folder / "package.json").read_text(encoding="utf-8"))["dependencies"]
    for name, version in pins.items():
        manifest = folder / "node_modules" / name / "package.json"
        if not manifest.is_file() or json.loads(manifest.read_text(encoding="utf-8"))["version"] != version:
            return False
    return True


def npm_ci(folder: Path, purpose: str) -> None:
    """`npm ci` in `folder` from its committed lock file, unless the pinned versions are installed."""
    if _installed(folder):
        return
    completed = subprocess.run(
        [node_tool("npm", purpose), "ci", "--prefix", str(folder), "--no-audit", "--no-fund"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if completed.returncode != 0:
        pytest.fail(f"npm ci in {folder} failed:\n{completed.stderr[-3000:]}", pytrace=False)
