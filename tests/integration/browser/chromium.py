"""Debian's Chromium for the browser tests: found on PATH, installed from Debian's packages in CI, else skipped.

Playwright drives it through `executable_path`; Playwright's own browser download (`playwright install`)
is never used, because it fetches a browser build from outside the package registries. In CI (CI=true,
as root) a missing Chromium is installed with apt-get, and a failed install fails the tests: a page nobody
loaded in a browser is a page nobody checked. On a developer machine without it the tests are skipped,
loudly, so that `make test` needs nothing but Python, make and git.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

PACKAGE = "chromium"
INSTALL_HINT = "sudo apt-get update && sudo apt-get install -y chromium"


def _apt_get(*arguments: str) -> None:
    completed = subprocess.run(
        ["apt-get", *arguments],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    if completed.returncode != 0:
        pytest.fail(f"apt-get {' '.join(arguments)} failed:\n{completed.stderr[-3000:]}", pytrace=False)


def _install() -> None:
    """apt-get update, then install Debian's chromium package (CI runs as root)."""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.fail(
            f"Chromium is missing and cannot be installed here (needs apt-get as root). Run: {INSTALL_HINT}",
            pytrace=False,
        )
    _apt_get("update")
    _apt_get("install", "-y", PACKAGE)


def chromium_executable() -> str:
    """The path of Debian's Chromium; installed first in CI, skipped (with the reason) elsewhere."""
    path = shutil.which(PACKAGE)
    if path is None and not os.environ.get("CI"):
        pytest.skip(
            f"`{PACKAGE}` is not on PATH: the browser tests need Debian's Chromium ({INSTALL_HINT}); CI runs them"
        )
    if path is None:
        _install()
        path = shutil.which(PACKAGE)
    if path is None:
        pytest.fail(f"`{PACKAGE}` is still not on PATH after apt-get install {PACKAGE}", pytrace=False)
    return path
