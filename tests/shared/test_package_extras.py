"""The services built without the MCP SDK (oauth-tokens[fastapi] only) import without it.

Their container images install only their own dependencies, so a shared module that pulls in `mcp`
through an import chain stops them at start-up (as `oauth_tokens.cors` -> `host_check` -> `mcp` once
did to the auth-server in compose). The workspace's .venv has `mcp` for the MCP services, so each check
runs in a fresh interpreter with `mcp` made unimportable.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

WITHOUT_MCP = ["auth_server.app", "auth_server.__main__", "crm_api.app", "weather_api.app", "calendar_api.app"]


@pytest.mark.parametrize("module", WITHOUT_MCP)
def test_a_service_without_the_mcp_extra_imports_without_the_sdk(module: str) -> None:
    # sys.modules["mcp"] = None makes every `import mcp...` raise ImportError, as if it were not installed.
    code = f"import sys; sys.modules['mcp'] = None; import importlib; importlib.import_module({module!r})"
    if module.endswith("__main__"):  # importing __main__ would start the server: import what it imports
        code = "import sys; sys.modules['mcp'] = None; import auth_server.settings, auth_server.keys"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_check_sees_an_import_of_the_sdk() -> None:
    """The blocking works: a module that needs the SDK fails under it."""
    code = "import sys; sys.modules['mcp'] = None; import oauth_tokens.host_check"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "mcp" in result.stderr
