"""serve(): a bad setting, or a ValueError while building the app, is a one-line exit that never quotes a value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# A service in miniature: its settings, an app factory, and main() calling serve(). The address
# callback only runs once the app is built, so reaching it means the bad value went unnoticed.
SERVICE = """
import sys
from oauth_tokens.serve import serve
from oauth_tokens.settings import TrustSettings


class DemoSettings(TrustSettings):
    demo_api_audience: str = "http://localhost:8003"


def create_app(settings):
    settings.validator_config([settings.demo_api_audience])
    if "raise" in sys.argv:
        raise ValueError("Unsupported value 'hunter2' for something")


serve("demo-api", DemoSettings, "__main__:create_app", lambda settings: sys.exit("reached uvicorn"))
"""


def _run_service(tmp_path: Path, environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AUTH_", "DEMO_"))}
    env.update(environment)
    return subprocess.run(
        [sys.executable, "-c", SERVICE, *args],
        cwd=tmp_path,  # no .env here
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [("AUTH_ALGORITHMS", "RS256,HS256"), ("AUTH_ALGORITHMS", "none"), ("AUTH_JWKS_URL", "hunter2.example/jwks")],
)
def test_bad_trust_setting_exits_with_one_line_naming_it(variable: str, value: str, tmp_path: Path) -> None:
    result = _run_service(tmp_path, {"AUTH_ISSUER": "http://localhost:9000", variable: value})

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"demo-api: Invalid setting {variable}: ")
    assert value not in result.stderr
    assert "hunter2" not in result.stderr


def test_value_error_while_building_the_app_exits_with_one_line(tmp_path: Path) -> None:
    result = _run_service(tmp_path, {"AUTH_ISSUER": "http://localhost:9000"}, "raise")

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("demo-api: Invalid configuration: ValueError at <string>:")
    assert "in create_app" in lines[0]
    assert "hunter2" not in result.stderr
