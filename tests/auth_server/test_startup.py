"""Start-up failures are one clear line naming the missing setting, never showing a secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.auth_server.conftest import AuthTestEnv
from tests.support.processes import free_port

_SCRUBBED = ("AUTH_", "CRM_", "TICKETS_", "DEMO_", "TEST_")


def _start(env: dict[str, str], workdir: Path) -> subprocess.CompletedProcess[str]:
    base = {name: value for name, value in os.environ.items() if not name.startswith(_SCRUBBED)}
    return subprocess.run(
        [sys.executable, "-m", "auth_server"],
        cwd=workdir,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "missing", ["AUTH_ISSUER", "CRM_MCP_RESOURCE", "CRM_MCP_CLIENT_SECRET", "CRM_MCP_JWKS_URI", "DEMO_ALICE_PASSWORD"]
)
def test_a_missing_variable_stops_start_up_naming_it(tmp_path: Path, missing: str) -> None:
    env = AuthTestEnv(port=free_port(), workdir=tmp_path)
    variables = {**env.environment(), "AUTH_SERVER_PORT": str(env.port)}
    del variables["AUTH_SERVER_CONFIG"]  # the packaged default config
    del variables[missing]

    result = _start(variables, tmp_path)

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("auth-server: ")
    assert missing in last_line
    for secret in env.secrets():
        assert secret not in result.stderr


@pytest.mark.parametrize("damaged", ["keys.json", "pem"])
def test_a_damaged_key_file_names_the_file_and_the_fix(tmp_path: Path, damaged: str) -> None:
    env = AuthTestEnv(port=free_port(), workdir=tmp_path)
    variables = {**env.environment(), "AUTH_SERVER_PORT": str(env.port)}
    del variables["AUTH_SERVER_CONFIG"]  # the packaged default config
    keys_dir = tmp_path / "data" / "keys"
    keys_dir.mkdir(parents=True)
    if damaged == "keys.json":
        broken = keys_dir / "keys.json"
        broken.write_text("{not json")
    else:
        broken = keys_dir / "k1.pem"
        broken.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
        (keys_dir / "keys.json").write_text('{"keys": [{"kid": "k1", "created_at": 1}]}')

    result = _start(variables, tmp_path)

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"auth-server: The signing key file {broken} is damaged")
    assert "ValueError at" not in last_line
    assert f"delete the directory {keys_dir}" in last_line
    assert "make down" in last_line
